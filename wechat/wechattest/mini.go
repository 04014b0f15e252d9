package wechattest

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// TestCodePrefix starts every js_code /sns/jscode2session accepts: a Mini
// Program's wx.login() code in a test is any string beginning with "test",
// e.g. "test-alice". The same code gives the same OpenID every time (per
// app), so a test can log the same user in twice; any other code is 40029
// "invalid code".
const TestCodePrefix = "test"

// OpenIDForCode returns the OpenID /sns/jscode2session gives appID's user
// who logged in with code.
func OpenIDForCode(appID, code string) string {
	h := sha256.Sum256([]byte("openid\x00" + appID + "\x00" + code))
	return "o" + base64.RawURLEncoding.EncodeToString(h[:])[:27]
}

// serveJSCode2Session answers GET /sns/jscode2session (code2Session) for
// a Mini Program or Mini Game: appid, secret, js_code and
// grant_type=authorization_code in the query, no access_token. Errors:
// 40002, 41002, 40013 (also for an official account's AppID), 41004,
// the wrong-secret code, 41008 missing js_code, 40029 a code not starting
// with TestCodePrefix.
func (p *Platform) serveJSCode2Session(w http.ResponseWriter, r *http.Request) {
	const path = PathJSCode2Session
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	id, secret, code := q.Get("appid"), q.Get("secret"), q.Get("js_code")
	a := p.apps[id]
	switch {
	case q.Get("grant_type") != "authorization_code":
		p.fail(w, path, 40002, "")
	case id == "":
		p.fail(w, path, 41002, "")
	case a == nil:
		p.fail(w, path, 40013, "")
	case !a.kind.mini():
		p.fail(w, path, 40013, "invalid appid, "+id+" is not a Mini Program or Mini Game")
	case secret == "":
		p.fail(w, path, 41004, "")
	case secret != a.secret:
		p.fail(w, path, p.badSecretCode, "")
	case code == "":
		p.fail(w, path, 41008, "")
	case !strings.HasPrefix(code, TestCodePrefix):
		p.fail(w, path, 40029, "")
	default:
		writeJSON(w, struct {
			OpenID     string `json:"openid"`
			SessionKey string `json:"session_key"`
		}{OpenIDForCode(id, code), base64.StdEncoding.EncodeToString(randomBytes(16))})
	}
}

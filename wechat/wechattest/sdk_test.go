package wechattest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// nodeSDK calls the platform the way co-wechat-api (the Node SDK) does:
// plain HTTP, the token in the query, every answer parsed as JSON, an
// errcode turned into an error, and one refetch-and-retry when the answer
// says the token is invalid (40001) or expired (42001). Media downloads are
// the one answer that is not JSON: it looks at the Content-Type.
type nodeSDK struct {
	t           *testing.T
	base        string
	appID, key  string
	hc          *http.Client
	token       string
	nonJSON     int // answers that were not JSON, downloads excluded
	tokenCalls  int
	retriedCall int
}

func (s *nodeSDK) getAccessToken() {
	s.t.Helper()
	s.tokenCalls++
	var r struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := s.do("GET", "/cgi-bin/token?grant_type=client_credential&appid="+s.appID+"&secret="+s.key, nil, "", &r); err != nil {
		s.t.Fatalf("getAccessToken: %v", err)
	}
	s.token = r.AccessToken
}

// do sends one request and decodes the JSON answer into v.
func (s *nodeSDK) do(method, path string, body []byte, ct string, v any) error {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || resp.StatusCode != 200 {
		s.nonJSON++
		return fmt.Errorf("%s %s: HTTP %d %q is not JSON: %.80s", method, path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var e struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		s.nonJSON++
		return fmt.Errorf("%s %s: %v", method, path, err)
	}
	if e.Errcode != 0 {
		return &apiErr{e.Errcode, e.Errmsg}
	}
	if v != nil {
		return json.Unmarshal(raw, v)
	}
	return nil
}

type apiErr struct {
	code int
	msg  string
}

func (e *apiErr) Error() string { return fmt.Sprintf("errcode %d: %s", e.code, e.msg) }

// call makes a business call with the token, refetching it and retrying
// once on 40001 or 42001.
func (s *nodeSDK) call(method, path string, body []byte, ct string, v any) error {
	s.t.Helper()
	if s.token == "" {
		s.getAccessToken()
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	err := s.do(method, path+sep+"access_token="+s.token, body, ct, v)
	if e, ok := err.(*apiErr); ok && (e.code == 40001 || e.code == 42001) {
		s.retriedCall++
		s.getAccessToken()
		err = s.do(method, path+sep+"access_token="+s.token, body, ct, v)
	}
	return err
}

func (s *nodeSDK) postJSON(path string, v any, out any) error {
	b, _ := json.Marshal(v)
	return s.call("POST", path, b, "application/json", out)
}

// TestNodeSDKStyle drives the platform as co-wechat-api does, through
// token, menu create/get, user info, custom send, media upload and media
// get, across a token expiry, and checks that no answer but the download
// is anything other than JSON.
func TestNodeSDKStyle(t *testing.T) {
	srv := newTestServer(t, WithTokenLifetime(10*time.Second), WithGrace(2*time.Second))
	sdk := &nodeSDK{t: t, base: srv.URL, appID: testApp, key: testSecret, hc: srv.Client()}

	menu := map[string]any{"button": []any{map[string]any{"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"}}}
	if err := sdk.postJSON("/cgi-bin/menu/create", menu, nil); err != nil {
		t.Fatalf("createMenu: %v", err)
	}
	var got struct {
		Menu struct {
			Button []struct{ Name string } `json:"button"`
		} `json:"menu"`
	}
	if err := sdk.call("GET", "/cgi-bin/menu/get", nil, "", &got); err != nil || len(got.Menu.Button) != 1 || got.Menu.Button[0].Name != "今日歌曲" {
		t.Fatalf("getMenu: %+v %v", got, err)
	}

	srv.Advance(10 * time.Second) // the token expires: the SDK refetches and retries
	var user struct {
		Subscribe int    `json:"subscribe"`
		OpenID    string `json:"openid"`
	}
	if err := sdk.call("GET", "/cgi-bin/user/info?openid="+DefaultOpenID+"&lang=zh_CN", nil, "", &user); err != nil || user.OpenID != DefaultOpenID || user.Subscribe != 1 {
		t.Fatalf("getUser: %+v %v", user, err)
	}
	if sdk.retriedCall != 1 || sdk.tokenCalls != 2 {
		t.Errorf("retries %d, token fetches %d; want 1, 2", sdk.retriedCall, sdk.tokenCalls)
	}
	if err := sdk.postJSON("/cgi-bin/message/custom/send", map[string]any{"touser": DefaultOpenID, "msgtype": "text",
		"text": map[string]any{"content": "Hello world"}}, nil); err != nil {
		t.Fatalf("sendText: %v", err)
	}
	var e *apiErr
	if err := sdk.postJSON("/cgi-bin/message/custom/send", map[string]any{"touser": "nobody", "msgtype": "text",
		"text": map[string]any{"content": "x"}}, nil); !asAPIErr(err, &e) || e.code != 40003 {
		t.Errorf("sendText to a bad OpenID: %v, want errcode 40003", err)
	}

	// uploadMedia: multipart with the file in "media", as formstream builds it.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("media", "photo.jpg")
	pic := append([]byte("\xff\xd8\xff\xdb"), bytes.Repeat([]byte("jpeg"), 300)...)
	fw.Write(pic)
	mw.Close()
	var up struct {
		Type      string `json:"type"`
		MediaID   string `json:"media_id"`
		CreatedAt int64  `json:"created_at"`
	}
	if err := sdk.call("POST", "/cgi-bin/media/upload?type=image", form.Bytes(), mw.FormDataContentType(), &up); err != nil || up.MediaID == "" || up.Type != "image" {
		t.Fatalf("uploadMedia: %+v %v", up, err)
	}

	// getMedia: the file itself, told apart from an error by Content-Type.
	resp, err := sdk.hc.Get(srv.URL + "/cgi-bin/media/get?access_token=" + sdk.token + "&media_id=" + url.QueryEscape(up.MediaID))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !bytes.Equal(b, pic) ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), up.MediaID) {
		t.Errorf("getMedia: %q %q, %d bytes", resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), len(b))
	}
	if err := sdk.call("GET", "/cgi-bin/media/get?media_id=missing", nil, "", nil); !asAPIErr(err, &e) || e.code != 40007 {
		t.Errorf("getMedia of an unknown id: %v, want errcode 40007", err)
	}
	// Paths the platform does not model still answer JSON.
	if err := sdk.postJSON("/cgi-bin/message/mass/sendall", map[string]any{"filter": map[string]any{"is_to_all": true}}, nil); err != nil {
		t.Errorf("mass/sendall: %v", err)
	}
	if err := sdk.call("GET", "/no/such/api", nil, "", nil); !asAPIErr(err, &e) || e.code != 40066 {
		t.Errorf("unknown path: %v, want errcode 40066", err)
	}
	if sdk.nonJSON != 0 {
		t.Errorf("%d answers were not JSON", sdk.nonJSON)
	}
}

func asAPIErr(err error, e **apiErr) bool {
	x, ok := err.(*apiErr)
	*e = x
	return ok
}

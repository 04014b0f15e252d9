package wechattest

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

func stable(t *testing.T, srv *Server, force bool) reply {
	t.Helper()
	body := fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q,"force_refresh":%v}`, testApp, testSecret, force)
	return call(t, srv, "POST", PathStableToken, nil, body)
}

func TestStableTokenNormalMode(t *testing.T) {
	srv := newTestServer(t)
	a := stable(t, srv, false)
	if a.Errcode != 0 || a.ExpiresIn != 7200 || len(a.AccessToken) < 100 {
		t.Fatalf("first call: %+v", a)
	}
	srv.Advance(100 * time.Second)
	if r := stable(t, srv, false); r.AccessToken != a.AccessToken || r.ExpiresIn != 7100 {
		t.Fatalf("within validity: same token %v, expires_in %d; want same token, 7100", r.AccessToken == a.AccessToken, r.ExpiresIn)
	}
	srv.Advance(7100*time.Second - 301*time.Second)
	if r := stable(t, srv, false); r.AccessToken != a.AccessToken || r.ExpiresIn != 301 {
		t.Fatalf("301 s left: same token %v, expires_in %d", r.AccessToken == a.AccessToken, r.ExpiresIn)
	}
	srv.Advance(time.Second)
	b := stable(t, srv, false)
	if b.AccessToken == a.AccessToken || b.ExpiresIn != 7200 {
		t.Fatalf("in the last 300 s: renewed %v, expires_in %d; want a new token, 7200", b.AccessToken != a.AccessToken, b.ExpiresIn)
	}
	if business(t, srv, a.AccessToken) != 0 || business(t, srv, b.AccessToken) != 0 {
		t.Fatal("old and new stable tokens must both work right after a renewal")
	}
	srv.Advance(300 * time.Second)
	if code := business(t, srv, a.AccessToken); code != 42001 {
		t.Errorf("old stable token at its expiry: errcode %d, want 42001", code)
	}
	if tok, valid := srv.StableToken(testApp); tok != b.AccessToken || !valid {
		t.Errorf("StableToken() does not report the renewed token")
	}
	st := srv.Stats()
	if st.Fetches[PathStableToken] != 4 || st.Issued[PathStableToken] != 2 {
		t.Errorf("Fetches %d, Issued %d; want 4, 2", st.Fetches[PathStableToken], st.Issued[PathStableToken])
	}
}

func TestStableTokenForce(t *testing.T) {
	srv := newTestServer(t, WithDailyQuota(QuotaStableForce, 3))
	a := stable(t, srv, false).AccessToken
	b := stable(t, srv, true).AccessToken
	if b == a {
		t.Fatal("force_refresh returned the same token")
	}
	if business(t, srv, a) != 0 {
		t.Error("the token a force refresh replaced must work for the grace period")
	}
	srv.Advance(29 * time.Second)
	if r := stable(t, srv, true); r.AccessToken != b || r.Errcode != 0 {
		t.Fatalf("force 29 s after the last: errcode %d, same %v; want the current token, no error", r.Errcode, r.AccessToken == b)
	}
	srv.Advance(time.Second)
	c := stable(t, srv, true).AccessToken
	if c == b {
		t.Fatal("force 30 s after the last did not refresh")
	}
	// Two slots: c current, b previous, a evicted.
	if code := business(t, srv, a); code != 40001 {
		t.Errorf("token two force refreshes old: errcode %d, want 40001 (leak handling)", code)
	}
	if business(t, srv, b) != 0 || business(t, srv, c) != 0 {
		t.Error("previous and current stable tokens must both work")
	}
	srv.Advance(300 * time.Second)
	if code := business(t, srv, b); code != 40001 {
		t.Errorf("previous token after grace: errcode %d, want 40001", code)
	}
	if got := srv.Used(testApp, QuotaStableForce); got != 2 {
		t.Errorf("force budget used %d, want 2 (the ignored call is free)", got)
	}
	stable(t, srv, true)
	srv.Advance(30 * time.Second)
	if r := stable(t, srv, true); r.Errcode != 45009 {
		t.Fatalf("4th force with a budget of 3: errcode %d, want 45009", r.Errcode)
	}
	if r := stable(t, srv, false); r.Errcode != 0 {
		t.Errorf("normal mode after the force budget is spent: errcode %d", r.Errcode)
	}
}

func TestStableTokenLimits(t *testing.T) {
	t.Run("minute", func(t *testing.T) {
		srv := newTestServer(t, WithStableMinuteLimit(3))
		// t0 is on a minute boundary.
		for range 3 {
			if r := stable(t, srv, false); r.Errcode != 0 {
				t.Fatalf("errcode %d", r.Errcode)
			}
		}
		srv.Advance(59 * time.Second)
		if r := stable(t, srv, false); r.Errcode != 45011 {
			t.Fatalf("4th call in a minute: errcode %d, want 45011", r.Errcode)
		}
		srv.Advance(time.Second)
		if r := stable(t, srv, false); r.Errcode != 0 {
			t.Fatalf("next minute: errcode %d", r.Errcode)
		}
	})
	t.Run("day", func(t *testing.T) {
		srv := newTestServer(t, WithDailyQuota(PathStableToken, 2))
		stable(t, srv, false)
		stable(t, srv, false)
		if r := stable(t, srv, false); r.Errcode != 45009 {
			t.Fatalf("3rd call with a quota of 2: errcode %d, want 45009", r.Errcode)
		}
		srv.Advance(14 * time.Hour)
		if r := stable(t, srv, false); r.Errcode != 0 {
			t.Fatalf("next day: errcode %d", r.Errcode)
		}
	})
}

func TestStableTokenRequestErrors(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		name, method, body string
		want               int
	}{
		{"GET", "GET", "", 43002},
		{"not JSON", "POST", "grant_type=client_credential", 47001},
		{"empty", "POST", " ", 44002},
		{"grant type", "POST", `{"grant_type":"x","appid":"` + testApp + `","secret":"` + testSecret + `"}`, 40002},
		{"no appid", "POST", `{"grant_type":"client_credential","secret":"` + testSecret + `"}`, 41002},
		{"unknown appid", "POST", `{"grant_type":"client_credential","appid":"wxno","secret":"s"}`, 40013},
		{"no secret", "POST", `{"grant_type":"client_credential","appid":"` + testApp + `"}`, 41004},
		{"wrong secret", "POST", `{"grant_type":"client_credential","appid":"` + testApp + `","secret":"no"}`, 40125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := call(t, srv, tt.method, PathStableToken, nil, tt.body); r.Errcode != tt.want {
				t.Errorf("errcode %d (%s), want %d", r.Errcode, r.Errmsg, tt.want)
			}
		})
	}
	// Query-string credentials are not read (JSON body only).
	q := url.Values{"grant_type": {"client_credential"}, "appid": {testApp}, "secret": {testSecret}}
	if r := call(t, srv, "POST", PathStableToken, q, "{}"); r.Errcode != 40002 {
		t.Errorf("credentials in the query: errcode %d, want 40002", r.Errcode)
	}
	if got := srv.Stats().Fetches[PathStableToken]; got != 0 {
		t.Errorf("Fetches = %d after only errors", got)
	}
}

func TestStableIndependentOfToken(t *testing.T) {
	srv := newTestServer(t, WithGrace(0))
	s := stable(t, srv, false).AccessToken
	c := getToken(t, srv).AccessToken
	getToken(t, srv) // supersedes c at once (zero grace)
	if s == c {
		t.Fatal("stable_token and token share a token")
	}
	if code := business(t, srv, s); code != 0 {
		t.Errorf("stable token after /cgi-bin/token fetches: errcode %d", code)
	}
	if code := business(t, srv, c); code != 40001 {
		t.Errorf("superseded classic token: errcode %d, want 40001", code)
	}
	stable(t, srv, true)
	if tok, valid := srv.Token(testApp); !valid || tok == "" {
		t.Error("a stable force refresh touched the /cgi-bin/token token")
	}
}

func TestStableShortLifetime(t *testing.T) {
	// A lifetime shorter than twice the renewal window still gives a token
	// that survives a few calls (the window shrinks to half the lifetime).
	srv := newTestServer(t, WithTokenLifetime(10*time.Second))
	a := stable(t, srv, false)
	if a.ExpiresIn != 10 {
		t.Fatalf("expires_in %d, want 10", a.ExpiresIn)
	}
	srv.Advance(4 * time.Second)
	if r := stable(t, srv, false); r.AccessToken != a.AccessToken {
		t.Error("renewed with 6 of 10 s left")
	}
	srv.Advance(time.Second)
	if r := stable(t, srv, false); r.AccessToken == a.AccessToken {
		t.Error("not renewed with 5 of 10 s left")
	}
}

package wechattest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	tokenURL := func(srv *Server) string {
		return srv.URL + PathToken + "?" + url.Values{
			"grant_type": {"client_credential"}, "appid": {testApp}, "secret": {testSecret}}.Encode()
	}
	tests := []struct {
		name  string
		fault Fault
		// check inspects the faulty answer (resp is nil if err != nil).
		check func(t *testing.T, resp *http.Response, body string, err error)
	}{
		{"errcode", Fault{Errcode: -1}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(body, `{"errcode":-1,"errmsg":"system error rid: `) {
				t.Errorf("got %v %q", err, body)
			}
		}},
		{"errcode with message", Fault{Errcode: 89503, Errmsg: "need admin confirm"}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || !strings.Contains(body, `"errcode":89503,"errmsg":"need admin confirm rid: `) {
				t.Errorf("got %v %q", err, body)
			}
		}},
		{"status", Fault{Status: 502}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || resp.StatusCode != 502 || !strings.Contains(body, "502 Bad Gateway") {
				t.Errorf("got %v %v %q", err, resp, body)
			}
		}},
		{"status with body", Fault{Status: 503, Body: "busy"}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || resp.StatusCode != 503 || body != "busy" {
				t.Errorf("got %v %q", err, body)
			}
		}},
		{"malformed body", Fault{Body: `{"access_token":`}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || resp.StatusCode != 200 || body != `{"access_token":` {
				t.Errorf("got %v %q", err, body)
			}
		}},
		{"html body", Fault{Body: "<html>maintenance</html>"}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html" {
				t.Errorf("got %v %v", err, resp)
			}
		}},
		{"drop", Fault{Drop: true}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err == nil {
				t.Errorf("a dropped connection answered HTTP %d %q", resp.StatusCode, body)
			}
		}},
		{"delay", Fault{Delay: 30 * time.Millisecond}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || !strings.Contains(body, `"access_token"`) {
				t.Errorf("a pure delay must answer normally: %v %q", err, body)
			}
		}},
		{"delay then errcode", Fault{Delay: 10 * time.Millisecond, Errcode: 45009}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || !strings.Contains(body, `"errcode":45009`) {
				t.Errorf("got %v %q", err, body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t)
			srv.Fail(PathToken, tt.fault)
			// A fresh connection per request: net/http retries a GET
			// whose reused connection closes without an answer.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			start := time.Now()
			resp, err := client.Get(tokenURL(srv))
			var body string
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
			}
			if elapsed := time.Since(start); elapsed < tt.fault.Delay {
				t.Errorf("answered after %v, before the %v delay", elapsed, tt.fault.Delay)
			}
			tt.check(t, resp, body, err)
			// The fault applied once; the next call is normal.
			if r := getToken(t, srv); r.Errcode != 0 {
				t.Errorf("call after the fault: errcode %d", r.Errcode)
			}
			st := srv.Stats()
			if tt.fault.Errcode != 0 && st.Errors[PathToken][tt.fault.Errcode] != 1 {
				t.Errorf("Errors = %v, want the injected errcode counted", st.Errors)
			}
			wantFetches := 1
			if tt.fault.Errcode == 0 && tt.fault.Status == 0 && tt.fault.Body == "" && !tt.fault.Drop {
				wantFetches = 2
			}
			if st.Fetches[PathToken] != wantFetches {
				t.Errorf("Fetches = %d, want %d", st.Fetches[PathToken], wantFetches)
			}
		})
	}
}

func TestFaultTimesAndQueue(t *testing.T) {
	srv := newTestServer(t)
	srv.Fail(PathToken, Fault{Times: 2, Errcode: -1})
	srv.Fail(PathToken, Fault{Errcode: 40164})
	srv.Fail(PathAPIDomainIP, Fault{Errcode: -1})
	want := []int{-1, -1, 40164, 0, 0}
	for i, w := range want {
		if r := getToken(t, srv); r.Errcode != w {
			t.Errorf("call %d: errcode %d, want %d", i+1, r.Errcode, w)
		}
	}
	if st := srv.Stats(); st.Errors[PathToken][-1] != 2 || st.Errors[PathToken][40164] != 1 {
		t.Errorf("Errors = %v", st.Errors)
	}
}

func TestFaultDelayRespectsContext(t *testing.T) {
	srv := newTestServer(t)
	srv.Fail(PathToken, Fault{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+PathToken, nil)
	_, err := srv.Client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}
	// The handler gave up too: Close does not wait an hour, and the
	// delayed call issued nothing.
	srv.Close()
	if got := srv.Stats().Fetches[PathToken]; got != 0 {
		t.Errorf("Fetches = %d after an abandoned call", got)
	}
}

func TestCloseAbortsDelay(t *testing.T) {
	srv := NewServer(WithApp(testApp, testSecret))
	srv.Fail(PathToken, Fault{Delay: time.Hour})
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + PathToken)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Wait until the request is being delayed: the fault is consumed.
	for {
		srv.mu.Lock()
		n := len(srv.faults)
		srv.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	srv.Close()
	<-done
}

package wechattest

import (
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

func BenchmarkBusinessCall(b *testing.B) {
	p := NewPlatform(WithApp(testApp, testSecret), WithDailyQuota(PathCallbackIP, 0))
	tok := p.IssueToken(testApp)
	req := httptest.NewRequest("GET", PathCallbackIP+"?access_token="+url.QueryEscape(tok), nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkTokenFetch(b *testing.B) {
	p := NewPlatform(WithApp(testApp, testSecret), WithDailyQuota(PathToken, 0))
	req := httptest.NewRequest("GET", PathToken+"?"+url.Values{
		"grant_type": {"client_credential"}, "appid": {testApp}, "secret": {testSecret}}.Encode(), nil)
	b.ReportAllocs()
	for b.Loop() {
		p.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// TestConcurrentFetches hammers the platform from many goroutines over
// real HTTP: the counts must add up and exactly one token survive a
// zero grace period.
func TestConcurrentFetches(t *testing.T) {
	srv := newTestServer(t, WithGrace(0))
	const workers, each = 8, 10
	tokens := make(chan string, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				tokens <- getToken(t, srv).AccessToken
				business(t, srv, "")
			}
		})
	}
	wg.Wait()
	close(tokens)
	valid := 0
	seen := map[string]bool{}
	for tok := range tokens {
		if seen[tok] {
			t.Fatal("the same token was issued twice")
		}
		seen[tok] = true
		if business(t, srv, tok) == 0 {
			valid++
		}
	}
	if valid != 1 {
		t.Errorf("%d tokens valid, want exactly the last one", valid)
	}
	st := srv.Stats()
	if st.Fetches[PathToken] != workers*each || st.Issued[PathToken] != workers*each || st.Rejected[41001] != workers*each {
		t.Errorf("Stats = %+v", st)
	}
}

package central

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// The sentinels a caller tests for with errors.Is.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrRateLimited", wechat.ErrRateLimited},
	{"ErrQuotaExhausted", wechat.ErrQuotaExhausted},
	{"ErrCooldown", wechat.ErrCooldown},
	{"ErrNoToken", wechat.ErrNoToken},
	{"ErrClosed", wechat.ErrClosed},
}

// A refresh refused by the keeper's guards gives the same errors.Is
// answers through wechat.NewRemote, over the admin API on real HTTP, as
// on the keeper itself: a rate-limited, a quota-exhausted and a cooldown
// refresh. Each case first puts the keeper in its state, then asks the
// keeper and the Remote the same passive refresh, which both refuse
// without a fetch, so the state is the same for both.
//
// The Remote's half (mapping the body's "reason" back to the sentinel) is
// wechat/remote.go's; this test checks both halves.
func TestRemoteErrorsMatchKeeper(t *testing.T) {
	tests := []struct {
		name string
		want error
		// setup puts the keeper, holding stale, in the refused state.
		setup func(t *testing.T, fake *wechattest.Server, k *wechat.Wechat, stale string)
	}{
		{"rate limited", wechat.ErrRateLimited, func(t *testing.T, fake *wechattest.Server, k *wechat.Wechat, stale string) {
			// The token was just fetched: another fetch within
			// MinFetchInterval is refused.
		}},
		{"quota exhausted", wechat.ErrQuotaExhausted, func(t *testing.T, fake *wechattest.Server, k *wechat.Wechat, stale string) {
			fake.Advance(time.Minute)
			fake.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 45009})
			if _, err := k.Refresh(t.Context(), stale); !errors.Is(err, wechat.ErrQuotaExhausted) {
				t.Fatalf("refresh answered 45009: %v, want ErrQuotaExhausted", err)
			}
			fake.Advance(time.Minute)
		}},
		{"cooldown", wechat.ErrCooldown, func(t *testing.T, fake *wechattest.Server, k *wechat.Wechat, stale string) {
			fake.Advance(time.Minute)
			fake.Fail(wechattest.PathToken, wechattest.Fault{Errcode: 40164, Errmsg: "invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist"})
			if _, err := k.Refresh(t.Context(), stale); err == nil {
				t.Fatal("refresh answered 40164 succeeded")
			}
			fake.Advance(time.Second) // within the cooldown
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAdminEnv(t)
			fake, k, srv := e.fake, e.keeper, e.srv
			stale, err := k.AccessToken(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(t, fake, k, stale)
			fetches := fake.Stats().Attempts[wechattest.PathToken]

			_, local := k.Refresh(t.Context(), stale)
			// The admin API's half: the body carries the keeper's reason.
			code, body, raw := e.do(t, "POST", "/v1/token/refresh", testKey, "application/json", `{"stale":"`+stale+`"}`)
			if code != http.StatusServiceUnavailable || body["reason"] != wechat.ErrorReason(local) {
				t.Errorf("the admin API's answer: %d %s, want 503 with reason %q", code, raw, wechat.ErrorReason(local))
			}
			// A cooldown says when it ends; the other refusals do not.
			if got, want := refreshRetryAfter(t, srv.URL, stale) != "", tt.want == wechat.ErrCooldown; got != want {
				t.Errorf("Retry-After present: %v, want %v", got, want)
			}
			remote, err := wechat.NewRemote(srv.URL, testKey, wechat.RemoteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, viaRemote := remote.Refresh(t.Context(), stale)
			if n := fake.Stats().Attempts[wechattest.PathToken]; n != fetches {
				t.Fatalf("the refused refreshes fetched (%d attempts, want %d): the state changed between them", n, fetches)
			}
			if !errors.Is(local, tt.want) {
				t.Fatalf("the keeper's refresh: %v, want %v", local, tt.want)
			}
			if viaRemote == nil {
				t.Fatal("the Remote's refresh succeeded")
			}
			for _, s := range sentinels {
				if l, r := errors.Is(local, s.err), errors.Is(viaRemote, s.err); l != r {
					t.Errorf("errors.Is(_, %s): keeper %v, Remote %v\nkeeper: %v\nRemote: %v", s.name, l, r, local, viaRemote)
				}
			}
			if l, r := wechat.ErrorReason(local), wechat.ErrorReason(viaRemote); l != r {
				t.Errorf("ErrorReason: keeper %q, Remote %q", l, r)
			}
		})
	}
}

// refreshRetryAfter asks the admin API at base for a passive refresh of
// stale and returns the answer's Retry-After header.
func refreshRetryAfter(t *testing.T, base, stale string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/token/refresh", strings.NewReader(`{"stale":"`+stale+`"}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Retry-After")
}

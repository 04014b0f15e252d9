package wechat

import (
	"testing"
	"time"
)

func BenchmarkAccessTokenCached(b *testing.B) {
	e := newEnv(b, newFake(b))
	e.opts.Clock = nil // the system clock, as in production
	w, err := New(b.Context(), e.opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := w.AccessToken(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestAccessTokenCachedAllocs(t *testing.T) {
	e := newEnv(t, newFake(t))
	w, err := New(t.Context(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if n := testing.AllocsPerRun(100, func() { w.AccessToken(ctx) }); n != 0 {
		t.Errorf("cached AccessToken allocates %v times per call, want 0", n)
	}
}

// BenchmarkRefresh measures one passive refresh round trip against the
// fake over HTTP: lock, load, fetch, save (wechat.txt), unlock.
func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b, newFake(b))
	e.opts.MaxFetchesPerHour = 1 << 30
	e.opts.DailyBudget = 1 << 30
	w, err := New(b.Context(), e.opts)
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := w.AccessToken(b.Context())
	b.ReportAllocs()
	for b.Loop() {
		e.srv.Advance(time.Hour) // past MinFetchInterval; new hour and, now and then, day
		if tok, err = w.Refresh(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

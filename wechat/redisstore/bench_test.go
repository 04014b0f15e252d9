package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/redistest"
)

func BenchmarkLoad(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, srv.URL(), "wxbench")
	ctx := context.Background()
	now := time.Now()
	if err := s.Save(ctx, wechat.KindAccessToken, wechat.Credential{Value: "token", FetchedAt: now, ExpiresAt: now.Add(2 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(ctx, wechat.KindAccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLockUnlock(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, srv.URL(), "wxbench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		unlock, err := s.Lock(ctx)
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}

func BenchmarkAddCount(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, srv.URL(), "wxbench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AddCount(ctx, wechat.Counter{API: wechat.APIToken, Day: "2026-11-05"}, 1); err != nil {
			b.Fatal(err)
		}
	}
}

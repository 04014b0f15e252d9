package sqlstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/internal/sqltest"
	"github.com/wxcentral/wxcentral/wechat/sqlstore"
	"github.com/wxcentral/wxcentral/wechat/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// engines are the servers every test runs on.
var engines = []struct {
	name  string
	start func(testing.TB) *sqltest.Server
}{
	{"MariaDB", sqltest.MariaDB},
	{"PostgreSQL", sqltest.Postgres},
}

// forEach runs f as a subtest on each engine's server.
func forEach(t *testing.T, f func(t *testing.T, srv *sqltest.Server)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { f(t, e.start(t)) })
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open opens a DB on srv, closed when the test ends.
func open(t testing.TB, url string, opts ...sqlstore.Option) *sqlstore.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqlstore.Open(ctx, url, append([]sqlstore.Option{sqlstore.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func store(t testing.TB, db *sqlstore.DB, appID string) *sqlstore.Store {
	t.Helper()
	s, err := db.Store(appID)
	if err != nil {
		t.Fatalf("Store(%q): %v", appID, err)
	}
	return s
}

var apps atomic.Int64

// newAppID returns an app ID no other test uses.
func newAppID() string { return fmt.Sprintf("wxtest%d_%d", time.Now().UnixNano()%1e6, apps.Add(1)) }

// TestContract runs the store contract on both engines: every backing is
// a fresh app ID on the shared tables, and every handle a Store on a DB
// of its own (a host of its own).
func TestContract(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		storetest.Run(t, func(t *testing.T) storetest.Factory {
			appID := newAppID()
			return func(t *testing.T) wechat.Store {
				return store(t, open(t, srv.URL()), appID)
			}
		})
	})
}

// TestCountsPruned: counting a new day deletes the app's counts of days
// more than a week before it, and no other app's.
func TestCountsPruned(t *testing.T) {
	forEach(t, func(t *testing.T, srv *sqltest.Server) {
		db := open(t, srv.URL())
		s, other := store(t, db, newAppID()), store(t, db, newAppID())
		today := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
		old := wechat.DayCounter(wechat.APIToken, today.AddDate(0, 0, -8))
		kept := wechat.HourCounter(wechat.APIToken, today.AddDate(0, 0, -7))
		ctx := testCtx(t)
		for _, c := range []wechat.Counter{old, kept} {
			for _, st := range []*sqlstore.Store{s, other} {
				if _, err := st.AddCount(ctx, c, 1); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := s.AddCount(ctx, wechat.DayCounter(wechat.APIToken, today), 1); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			s    *sqlstore.Store
			c    wechat.Counter
			want int
		}{
			{s, old, 0},
			{s, kept, 1},
			{other, old, 1},
			{other, kept, 1},
		} {
			if n, err := tt.s.Count(ctx, tt.c); err != nil || n != tt.want {
				t.Errorf("Count(%v) = %d, %v; want %d", tt.c, n, err, tt.want)
			}
		}
	})
}

package sqlstore_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/wechat/sqlstore"
)

func TestIsURL(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"mysql://u:p@h:3306/db", true},
		{"MySQL://h/db", true},
		{"mariadb://h/db", true},
		{"postgres://h/db", true},
		{"PostgreSQL://h/db?sslmode=require", true},
		{"redis://h:6379", false},
		{"wechat.txt", false},
		{"/var/lib/wechat.txt", false},
		{"mysql:/h/db", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := sqlstore.IsURL(tt.in); got != tt.want {
			t.Errorf("IsURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mysql://wx:s3cret@db:3306/wx", "mysql://wx:xxxxx@db:3306/wx"},
		{"postgres://wx:s3cret@db/wx?sslmode=require", "postgres://wx:xxxxx@db/wx?sslmode=require"},
		{"postgres://wx@db/wx?password=s3cret&sslmode=disable", "postgres://wx@db/wx?password=xxxxx&sslmode=disable"},
		{"postgres://db/wx?sslpassword=s3cret#frag", "postgres://db/wx?sslpassword=xxxxx#frag"},
		{"mysql://wx:s3c@ret@db:3306/wx", "mysql://wx:xxxxx@db:3306/wx"},
		{"mysql://wx@db/wx", "mysql://wx@db/wx"},
		{"mysql://db/wx", "mysql://db/wx"},
		{"mysql://wx:s3cret@db:bad port/wx", "mysql://wx:xxxxx@db:bad port/wx"},
	}
	for _, tt := range tests {
		if got := sqlstore.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestOpenErrors: a URL that cannot be used fails Open with an error that
// says why and never holds the password.
func TestOpenErrors(t *testing.T) {
	const pw = "PW-must-not-leak"
	tests := []struct{ url, want string }{
		{"redis://:" + pw + "@h:6379", "not a database URL"},
		{"mysql://wx:" + pw + "@h:3306", "one database"},
		{"mysql://wx:" + pw + "@h:3306/wx?bogus=1", `unknown option "bogus"`},
		{"mysql://wx:" + pw + "@h:3306/wx?read_timeout=soon", "read_timeout"},
		{"mysql://wx:" + pw + "@h:3306/wx?max_open_conns=0", "max_open_conns"},
		{"mysql://wx:" + pw + "@h:port/wx", "port"},
		{"mysql://wx:" + pw + "@/wx", "no host"},
		{"postgres://wx:" + pw + "@h/wx?sslmode=sometimes", "sslmode"},
		{"postgres://wx:" + pw + "@h/wx?dial_timeout=never", "dial_timeout"},
		{"postgres://wx:" + pw + "@h/wx?table_prefix=Bad-", "table_prefix"},
		{"mysql://wx:" + pw + "@h/wx?table_prefix=", "table_prefix"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		db, err := sqlstore.Open(ctx, tt.url, sqlstore.WithLogger(quiet))
		cancel()
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", sqlstore.Redact(tt.url))
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("Open(%q) error contains the password: %v", sqlstore.Redact(tt.url), err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q) = %v, want an error about %q", sqlstore.Redact(tt.url), err, tt.want)
		}
	}
}

// TestPingUnreachable: Open does not contact the database, so it succeeds
// on one that nobody serves; Ping then fails at once with an error that
// says what it was doing and never holds the password.
func TestPingUnreachable(t *testing.T) {
	const pw = "PW-must-not-leak"
	for _, url := range []string{
		// Nothing listens on port 1: the dial fails, at once.
		"postgres://wx:" + pw + "@127.0.0.1:1/wx?sslmode=disable",
		"mysql://wx:" + pw + "@127.0.0.1:1/wx",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		db, err := sqlstore.Open(ctx, url, sqlstore.WithLogger(quiet))
		if err != nil {
			cancel()
			t.Errorf("Open(%q) = %v, want no error: it must not contact the database", sqlstore.Redact(url), err)
			continue
		}
		err = db.Ping(ctx)
		switch {
		case err == nil:
			t.Errorf("Ping on %q succeeded, want an error", sqlstore.Redact(url))
		case ctx.Err() != nil:
			t.Errorf("Ping on %q = %v: it waited for its context to end", sqlstore.Redact(url), err)
		case strings.Contains(err.Error(), pw):
			t.Errorf("Ping on %q error contains the password: %v", sqlstore.Redact(url), err)
		case !strings.Contains(err.Error(), "prepare the tables") || !strings.Contains(err.Error(), sqlstore.Redact(url)):
			t.Errorf("Ping on %q = %v, want an error about preparing the tables of the database", sqlstore.Redact(url), err)
		}
		if got := db.Errors(); got != 1 {
			t.Errorf("DB.Errors = %d after a failed Ping, want 1", got)
		}
		db.Close()
		cancel()
	}
}

// TestNewRejects: New refuses options and arguments it cannot work with,
// before it touches the database.
func TestNewRejects(t *testing.T) {
	db, err := sql.Open("pgx", "postgres://127.0.0.1:1/x")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tests := []struct {
		name    string
		db      *sql.DB
		dialect sqlstore.Dialect
		opts    []sqlstore.Option
		want    string
	}{
		{"NilDB", nil, sqlstore.Postgres, nil, "nil"},
		{"Dialect", db, "oracle", nil, "unknown dialect"},
		{"PrefixCase", db, sqlstore.Postgres, []sqlstore.Option{sqlstore.WithPrefix("WX_")}, "prefix"},
		{"PrefixQuote", db, sqlstore.Postgres, []sqlstore.Option{sqlstore.WithPrefix("wx';--")}, "prefix"},
		{"PrefixDigit", db, sqlstore.Postgres, []sqlstore.Option{sqlstore.WithPrefix("1wx_")}, "prefix"},
		{"PrefixEmpty", db, sqlstore.Postgres, []sqlstore.Option{sqlstore.WithPrefix("")}, "prefix"},
		{"PrefixLong", db, sqlstore.Postgres, []sqlstore.Option{sqlstore.WithPrefix(strings.Repeat("x", 41))}, "prefix"},
		{"LockTTL", db, sqlstore.Postgres, []sqlstore.Option{sqlstore.WithLockTTL(time.Millisecond)}, "lock TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := sqlstore.New(t.Context(), tt.db, tt.dialect, tt.opts...)
			if err == nil {
				d.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// table_prefix in the URL names the tables, as WithPrefix does, and an
// explicit WithPrefix wins over it.
func TestTablePrefixOption(t *testing.T) {
	for _, tt := range []struct {
		url  string
		opts []sqlstore.Option
		want string
	}{
		{"postgres://h/wx?table_prefix=acme_wx_", nil, "acme_wx_locks[wx1]"},
		{"mysql://h/wx?table_prefix=acme_wx_&max_open_conns=2", nil, "acme_wx_locks[wx1]"},
		{"postgres://h/wx?table_prefix=acme_wx_", []sqlstore.Option{sqlstore.WithPrefix("mine_")}, "mine_locks[wx1]"},
		{"postgres://h/wx", nil, sqlstore.DefaultPrefix + "locks[wx1]"},
	} {
		db, err := sqlstore.Open(t.Context(), tt.url, tt.opts...)
		if err != nil {
			t.Fatalf("Open(%q): %v", tt.url, err)
		}
		s, err := db.Store("wx1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(s.String(), tt.want) {
			t.Errorf("Open(%q): store %q, want it to end in %q", tt.url, s, tt.want)
		}
		db.Close()
	}
}

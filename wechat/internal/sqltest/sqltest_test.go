package sqltest

import (
	"database/sql"
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestServers starts both servers, stops and restarts each, and checks
// that it answers queries with its data kept.
func TestServers(t *testing.T) {
	for _, start := range []func(testing.TB) *Server{MariaDB, Postgres} {
		s := start(t)
		t.Run(s.Dialect, func(t *testing.T) {
			driver, dsn := s.dsn("")
			if s.Dialect == "mysql" {
				driver, dsn = s.dsn("wxtest")
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE kept (n INT)"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO kept VALUES (7)"); err != nil {
				t.Fatal(err)
			}
			s.Stop()
			if err := db.Ping(); err == nil {
				t.Fatal("Ping succeeded on a stopped server")
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRow("SELECT n FROM kept").Scan(&n); err != nil || n != 7 {
				t.Fatalf("after a restart: n = %d, %v; want 7", n, err)
			}
		})
	}
}

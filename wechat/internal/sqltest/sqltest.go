// Package sqltest starts real database servers for tests: a MariaDB (or
// MySQL) server and a PostgreSQL server, each in a temporary directory on a
// free local port. A test package starts each server at most once, on
// first use (MariaDB, Postgres), and stops it when its tests are done
// (Main, from TestMain). Stop and Start give outage tests a server that
// goes away and comes back on the same port with the same data.
//
// When the server's binaries are not installed the test is skipped with a
// message, unless the environment variable CI is "true": then it fails, so
// that a CI machine without the databases cannot pass by skipping.
//
// PostgreSQL refuses to run as root, so when the tests run as root (as CI
// does) initdb and postgres run as the "postgres" system user, in a
// temporary directory given to that user.
package sqltest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the MariaDB server's readiness check
	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL server's readiness check
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 30 * time.Second

// Password is the password in the URLs of the servers: the servers accept
// any (MariaDB runs with --skip-grant-tables, PostgreSQL with trust
// authentication), so it is there only for tests of its redaction.
const Password = "s3cret-db-password"

// A Server is one database server process.
type Server struct {
	// Dialect is "mysql" for MariaDB, "postgres" for PostgreSQL.
	Dialect string
	// Addr is the server's host:port.
	Addr string

	name     string // for messages: "mariadbd", "postgres"
	dir      string // the temporary directory, removed by Close
	bin      string
	args     []string
	cred     *syscall.Credential // whom the server runs as, or nil
	logf     string
	stopWith os.Signal

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// URL returns a URL of the server's test database with user and Password:
// mysql://wx:…@127.0.0.1:port/wxtest or postgres://postgres:…@127.0.0.1:port/postgres.
func (s *Server) URL() string {
	if s.Dialect == "mysql" {
		return "mysql://wx:" + Password + "@" + s.Addr + "/wxtest"
	}
	return "postgres://postgres:" + Password + "@" + s.Addr + "/postgres?sslmode=disable"
}

// dsn is the driver's data source name for the readiness check.
func (s *Server) dsn(db string) (driver, dsn string) {
	if s.Dialect == "mysql" {
		return "mysql", "wx@tcp(" + s.Addr + ")/" + db + "?timeout=1s"
	}
	return "pgx", "postgres://postgres@" + s.Addr + "/postgres?sslmode=disable&connect_timeout=1"
}

var servers struct {
	sync.Mutex
	started []*Server
	once    map[string]*sync.Once
	byName  map[string]*Server
	errs    map[string]error
}

// MariaDB returns the test package's MariaDB server, started on first use
// with an empty database wxtest. It skips t (fails it when CI=true) if
// mariadbd or mariadb-install-db is missing, and fails t if the server
// cannot start.
func MariaDB(t testing.TB) *Server {
	t.Helper()
	return shared(t, "mariadb", startMariaDB)
}

// Postgres returns the test package's PostgreSQL server, started on first
// use. It skips t (fails it when CI=true) if initdb or postgres is missing
// (they are looked for in /usr/lib/postgresql/*/bin and on PATH), and
// fails t if the server cannot start.
func Postgres(t testing.TB) *Server {
	t.Helper()
	return shared(t, "postgres", startPostgres)
}

// errMissing marks a server whose binaries are not installed.
var errMissing = errors.New("not installed")

func shared(t testing.TB, name string, start func() (*Server, error)) *Server {
	t.Helper()
	servers.Lock()
	if servers.once == nil {
		servers.once = map[string]*sync.Once{}
		servers.byName = map[string]*Server{}
		servers.errs = map[string]error{}
	}
	once := servers.once[name]
	if once == nil {
		once = new(sync.Once)
		servers.once[name] = once
	}
	servers.Unlock()
	once.Do(func() {
		s, err := start()
		servers.Lock()
		defer servers.Unlock()
		servers.byName[name], servers.errs[name] = s, err
		if s != nil {
			servers.started = append(servers.started, s)
		}
	})
	servers.Lock()
	s, err := servers.byName[name], servers.errs[name]
	servers.Unlock()
	if errors.Is(err, errMissing) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sqltest: %v, and CI=true forbids skipping", err)
		}
		t.Skipf("sqltest: %v; install it to run this test", err)
	}
	if err != nil {
		t.Fatalf("sqltest: %v", err)
	}
	return s
}

// Main runs the tests of m, stops the servers they started and returns
// the exit code: call it from TestMain as os.Exit(sqltest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	servers.Lock()
	started := servers.started
	servers.started = nil
	servers.Unlock()
	for _, s := range started {
		s.Close()
	}
	return code
}

func startMariaDB() (*Server, error) {
	bin, err := findBinary("mariadbd", "mysqld")
	if err != nil {
		return nil, err
	}
	install, err := findBinary("mariadb-install-db", "mysql_install_db")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sqltest-mariadb-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	root := os.Geteuid() == 0
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if root {
		args = append(args, "--user=root")
	}
	if out, err := exec.Command(install, args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %v: %s", install, err, lastLines(string(out), 5))
	}
	s := &Server{Dialect: "mysql", name: "mariadbd", dir: dir, bin: bin, logf: filepath.Join(dir, "error.log"), stopWith: os.Kill}
	err = s.startOnFreePort(func(port int) []string {
		// Commits reach the OS at once (flush=2), so a killed server
		// keeps them, as a real one would; only fsync is skipped.
		a := []string{
			"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
			"--socket=" + filepath.Join(dir, "mysqld.sock"), "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
			"--log-error=" + s.logf, "--skip-grant-tables", "--skip-name-resolve", "--skip-log-bin",
			"--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=2", "--innodb-log-file-size=16M",
			"--max-connections=500",
		}
		if root {
			a = append(a, "--user=root")
		}
		return a
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	db, err := sql.Open(s.dsn(""))
	if err == nil {
		_, err = db.Exec("CREATE DATABASE IF NOT EXISTS wxtest CHARACTER SET utf8mb4")
		db.Close()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("mariadbd: create the test database: %v", err)
	}
	return s, nil
}

func startPostgres() (*Server, error) {
	bin, err := findBinary("postgres")
	if err != nil {
		return nil, err
	}
	initdb, err := findBinary("initdb")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sqltest-postgres-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dialect: "postgres", name: "postgres", dir: dir, bin: bin, logf: filepath.Join(dir, "postgres.log"),
		// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster kills
		// its backends and exits without a checkpoint, as in a crash.
		stopWith: syscall.SIGQUIT}
	if os.Geteuid() == 0 {
		cred, err := systemUser("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres refuses to run as root, and %w", err)
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.cred = cred
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %v: %s", initdb, err, lastLines(string(out), 5))
	}
	err = s.startOnFreePort(func(port int) []string {
		// fsync is off for speed, but synchronous_commit stays on: a
		// commit reaches the OS before it returns, so an immediate
		// shutdown (a crash) keeps it, as a real server would.
		return []string{
			"-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + dir,
			"-c", "fsync=off", "-c", "full_page_writes=off",
			"-c", "max_connections=300", "-c", "shared_buffers=32MB",
		}
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// systemUser returns the credential of the system user name.
func systemUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("there is no %q user to run it as: %v", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %q: %v", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// findBinary returns the first of names found on PATH, in the newest
// /usr/lib/postgresql/*/bin (where Debian puts PostgreSQL's) or in
// /usr/sbin.
func findBinary(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	dirs = append(dirs, "/usr/sbin") // mariadbd, off a non-root PATH
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s is %w (Debian: apt-get install mariadb-server postgresql)", strings.Join(names, " or "), errMissing)
}

// version is the major version in /usr/lib/postgresql/<version>/bin.
func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// startOnFreePort starts the server with args(port) on a free port,
// trying a few ports in case another process takes one meanwhile.
func (s *Server) startOnFreePort(args func(port int) []string) error {
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = args(port)
		if lastErr = s.Start(); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

// Start starts a stopped server again, on the same port with the same
// data, and waits until it accepts connections. Starting a running server
// does nothing.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	log, err := os.OpenFile(s.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return err
	}
	defer log.Close()
	if s.cred != nil {
		os.Chown(s.logf, int(s.cred.Uid), int(s.cred.Gid))
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %v", s.name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()

	driver, dsn := s.dsn("")
	db, err := sql.Open(driver, dsn)
	if err != nil {
		cmd.Process.Kill()
		<-exited
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(s.logf)
			return fmt.Errorf("%s on %s exited (%v): %s", s.name, s.Addr, waitErr, lastLines(string(out), 5))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s on %s did not accept connections within %v: %v", s.name, s.Addr, startTimeout, err)
		}
	}
}

// Stop stops the server abruptly, as a crash or an outage would (MariaDB
// is killed, PostgreSQL shut down in immediate mode), and waits until it
// has exited. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(s.stopWith)
	select {
	case <-s.exited:
	case <-time.After(startTimeout):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Stop()
	os.RemoveAll(s.dir)
}

// freePort returns a local port that is free.
func freePort() (int, error) {
	for range 100 {
		p := 20000 + rand.IntN(20000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("sqltest: no free port found")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

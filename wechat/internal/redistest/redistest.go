// Package redistest starts real redis-server processes for tests: a single
// node, a Redis Cluster of several masters, or a Sentinel watching a node.
// Each runs in a temporary directory on a free local port and is stopped
// when the test ends.
//
// When redis-server is not installed the test is skipped with a message,
// unless the environment variable CI is "true": then it fails, so that a CI
// machine without Redis cannot pass by skipping.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 10 * time.Second

// A Server is one redis-server process.
type Server struct {
	// Addr is the server's host:port.
	Addr string

	t    testing.TB
	bin  string
	args []string
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a redis-server with no persistence and waits until it
// answers PING. The server is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, "server")
}

func start(t testing.TB, name string, extra ...string) *Server {
	t.Helper()
	bin := binary(t, "redis-server")
	dir := t.TempDir()
	var lastErr error
	for range 5 {
		port := freePort(t)
		args := append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--daemonize", "no", "--protected-mode", "no",
			"--logfile", filepath.Join(dir, name+".log"),
		}, extra...)
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, bin: bin, args: args, dir: dir}
		if lastErr = s.run(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redistest: cannot start redis-server: %v", lastErr)
	return nil
}

// binary finds name on PATH, or skips (fails when CI=true) the test.
func binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: %s is not installed, and CI=true forbids skipping: install Redis (apt-get install redis-server)", name)
		}
		t.Skipf("redistest: %s is not installed; install Redis to run this test", name)
	}
	return p
}

// run starts the process and waits for PING.
func (s *Server) run() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := Do(s.Addr, "PING"); err == nil {
			s.cmd = cmd
			return nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(s.logfile())
			return fmt.Errorf("redis-server on %s exited (%v): %s", s.Addr, err, lastLines(string(log), 5))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s did not answer PING within %v", s.Addr, startTimeout)
		}
	}
}

func (s *Server) logfile() string {
	for i, a := range s.args {
		if a == "--logfile" && i+1 < len(s.args) {
			return s.args[i+1]
		}
	}
	return ""
}

// URL returns redis://Addr.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Stop kills the server, as a crash or an outage would. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	// Wait is called by the goroutine started in run; wait for the port to
	// close so that a restart can bind it.
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd = nil
}

// Restart starts a stopped server again on the same port, with an empty
// data set. It fails the test if the server cannot start.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.run(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Do sends one command to addr over a new connection and returns the reply
// as text (bulk strings, integers and status replies; arrays are joined by
// newlines). A Redis error reply is returned as an error.
func Do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("redistest: empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("redistest: unexpected reply %q", line)
}

// freePort returns a local port that is free, and whose cluster bus port
// (port+10000) is free too.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + rand.IntN(20000)
		if portFree(p) && portFree(p+10000) {
			return p
		}
	}
	t.Fatal("redistest: no free port found")
	return 0
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// A Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	// Nodes are the cluster's masters.
	Nodes []*Server
}

// StartCluster starts n (at least 3) cluster-enabled servers, joins them
// with redis-cli --cluster create and waits for cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	cli := binary(t, "redis-cli")
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for i := range n {
		name := "node" + strconv.Itoa(i)
		s := start(t, name, "--cluster-enabled", "yes",
			"--cluster-config-file", name+".conf", "--cluster-node-timeout", "5000")
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, s := range c.Nodes {
		for {
			info, err := Do(s.Addr, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster node %s not ok within %v: %v %s", s.Addr, startTimeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// URL returns redis+cluster://host:port,host:port,… naming every node.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// StartSentinel starts a Sentinel that monitors master under the name
// masterName, and waits until it reports the master's address.
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(master.Addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	// Sentinel rewrites its configuration file, so it must be writable.
	body := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
		masterName, host, port, masterName)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := binary(t, "redis-server")
	var lastErr error
	for range 5 {
		p := freePort(t)
		s := &Server{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), t: t, bin: bin, dir: dir,
			args: []string{conf, "--sentinel", "--port", strconv.Itoa(p), "--bind", "127.0.0.1",
				"--daemonize", "no", "--protected-mode", "no", "--logfile", filepath.Join(dir, "sentinel.log")},
		}
		if lastErr = s.run(); lastErr != nil {
			continue
		}
		t.Cleanup(s.Stop)
		deadline := time.Now().Add(startTimeout)
		for {
			got, err := Do(s.Addr, "SENTINEL", "get-master-addr-by-name", masterName)
			if err == nil && got == host+"\n"+port {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: sentinel does not report master %s: %q %v", masterName, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Fatalf("redistest: cannot start sentinel: %v", lastErr)
	return nil
}

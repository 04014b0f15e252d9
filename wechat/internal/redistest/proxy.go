package redistest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// A Proxy forwards TCP connections to a server, and can hold back the
// replies on the connection that sends a given command, so that a test
// sees a client wait on a slow reply without any sleep. It is closed when
// the test ends.
type Proxy struct {
	// Addr is the proxy's host:port.
	Addr string

	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]bool
	trap   *trap   // armed, until a request contains its marker
	traps  []*trap // every trap, released by Close
	closed bool
	wg     sync.WaitGroup
}

type trap struct {
	marker  []byte
	caught  chan struct{}
	release chan struct{}
	once    sync.Once
}

// StartProxy starts a Proxy to the server at addr (host:port).
func StartProxy(t testing.TB, addr string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, target: addr, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// URL returns redis://Addr.
func (p *Proxy) URL() string { return "redis://" + p.Addr }

// Hold arms a trap: the first request, from then on, whose bytes contain
// marker (a command name, a script's SHA1) is forwarded, but every reply
// on its connection is held back until release is called. caught is
// closed when that request has been seen. release may be called more than
// once; Close releases too.
func (p *Proxy) Hold(marker string) (caught <-chan struct{}, release func()) {
	tr := &trap{marker: []byte(marker), caught: make(chan struct{}), release: make(chan struct{})}
	p.mu.Lock()
	p.trap = tr
	p.traps = append(p.traps, tr)
	p.mu.Unlock()
	return tr.caught, tr.free
}

func (tr *trap) free() { tr.once.Do(func() { close(tr.release) }) }

// CloseConns closes every connection the proxy forwards, and refuses new
// ones from then on: the server looks gone to its clients.
func (p *Proxy) CloseConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops the proxy: it releases any held replies, closes every
// connection and waits for its goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	for _, tr := range p.traps {
		tr.free()
	}
	p.mu.Unlock()
	p.CloseConns()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		var held atomic.Pointer[trap]
		p.wg.Go(func() { p.requests(c, s, &held) })
		p.wg.Go(func() { p.replies(s, c, &held) })
	}
}

// requests copies the client's bytes to the server, springing the armed
// trap on this connection before forwarding the request that matches it.
func (p *Proxy) requests(c, s net.Conn, held *atomic.Pointer[trap]) {
	defer s.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if tr := p.trap; tr != nil && bytes.Contains(buf[:n], tr.marker) {
				p.trap = nil
				held.Store(tr)
				close(tr.caught)
			}
			p.mu.Unlock()
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// replies copies the server's bytes to the client, waiting first for the
// release of a trap sprung on this connection.
func (p *Proxy) replies(s, c net.Conn, held *atomic.Pointer[trap]) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if tr := held.Load(); tr != nil {
				<-tr.release
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

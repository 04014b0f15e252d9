package wechattest

import (
	"net/http"
	"net/http/httptest"
)

// A Server is a Platform listening on a loopback port, in the spirit of
// httptest.Server. Point the code under test at URL in place of
// https://api.weixin.qq.com.
type Server struct {
	*Platform

	// URL is the base URL, http://127.0.0.1:port, with no trailing slash.
	URL string

	ts *httptest.Server
}

// NewServer starts a Platform configured by opts on 127.0.0.1 and a free
// port. The caller must Close it.
func NewServer(opts ...Option) *Server {
	p := NewPlatform(opts...)
	ts := httptest.NewServer(p)
	return &Server{Platform: p, URL: ts.URL, ts: ts}
}

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Close aborts pending delayed answers, shuts the server down and blocks
// until all its requests have finished.
func (s *Server) Close() {
	s.Platform.shutdown()
	s.ts.Close()
}

// shutdown ends every Fault.Delay in progress.
func (p *Platform) shutdown() {
	p.once.Do(func() { close(p.stop) })
}

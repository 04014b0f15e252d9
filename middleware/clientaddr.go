package middleware

import (
	"net/http"
	"net/netip"
)

// ClientAddr returns the address of the client that sent r, read the way
// WithTrustedProxies describes: from X-Forwarded-For or X-Real-IP when r
// comes directly from an address inside one of trusted, else r.RemoteAddr.
// It is for the logs of handlers outside Verify that sit behind the same
// proxies, such as the central server's admin API. Invalid prefixes are
// ignored.
func ClientAddr(r *http.Request, trusted []netip.Prefix) string {
	var s settings
	valid := make([]netip.Prefix, 0, len(trusted))
	for _, p := range trusted {
		if p.IsValid() {
			valid = append(valid, p)
		}
	}
	WithTrustedProxies(valid)(&s)
	a, _ := s.clientAddr(r)
	return a
}

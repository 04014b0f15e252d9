package middleware

import (
	"net/http"
	"net/netip"
	"strings"
)

// WithTrustedProxies names the reverse proxies in front of the server, by
// the address prefixes they connect from (for one host, a /32 or /128).
// When a request comes directly from an address inside one of them, the
// middleware takes the client's address from the headers that proxy sets,
// and logs it as "remote" (with the proxy's own address as "peer"):
//
//   - X-Forwarded-For, read from the right: each proxy appends the address
//     it was connected from, so the client is the rightmost hop that is not
//     itself a trusted proxy. Hops to the left of it were written by the
//     client and are ignored. If every hop is trusted, the leftmost is
//     taken; a hop that is not an IP address ends the walk at the trusted
//     hop to its right.
//   - Without X-Forwarded-For, X-Real-IP, if it holds an IP address.
//
// X-Forwarded-For wins because most proxies (Caddy, Traefik, HAProxy's
// option forwardfor, cloud load balancers) append to it and pass on
// whatever X-Real-IP the client sent; preferring X-Real-IP would let the
// client choose its address through them. So every trusted proxy must
// append the address it was connected from to X-Forwarded-For (or
// replace the header); a proxy that sets only X-Real-IP and passes the
// client's X-Forwarded-For on unchanged lets the client choose. With
// nginx:
//
//	proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
//	proxy_set_header X-Real-IP       $remote_addr;
//
// A request from any other peer is logged with r.RemoteAddr, whatever
// headers it carries: anyone can send X-Forwarded-For. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d) are compared as IPv4. The default, as with an
// empty list, trusts no proxy. Verify panics if a prefix is invalid (the
// zero netip.Prefix).
//
// The address only feeds logs; no decision of the middleware depends on it.
func WithTrustedProxies(prefixes []netip.Prefix) Option {
	return func(s *settings) {
		s.trusted = make([]netip.Prefix, 0, len(prefixes))
		for _, p := range prefixes {
			if !p.IsValid() {
				s.badOption = "WithTrustedProxies: invalid prefix " + p.String()
				return
			}
			s.trusted = append(s.trusted, ProxyPrefix(p))
		}
	}
}

// ProxyPrefix returns p as WithTrustedProxies compares addresses with it:
// masked, and an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/n, n >= 96) as the
// IPv4 prefix it covers (a.b.c.d/n-96). A configuration that refuses a
// prefix trusting every address checks Bits() == 0 on this form: the
// mapped ::ffff:0.0.0.0/96 is 0.0.0.0/0. An invalid p is returned as is.
func ProxyPrefix(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return p
	}
	// Masked first: a mapped-looking prefix shorter than 96 bits is an
	// IPv6 prefix (its ffff part is masked away), not an IPv4 one.
	p = p.Masked()
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
	}
	return p
}

// clientAddr returns the address to log as the request's remote end, and
// whether it came from a trusted proxy's header rather than r.RemoteAddr.
func (s *settings) clientAddr(r *http.Request) (string, bool) {
	if len(s.trusted) == 0 {
		return r.RemoteAddr, false
	}
	peer, ok := parseAddr(r.RemoteAddr)
	if !ok || !s.trusts(peer) {
		return r.RemoteAddr, false
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		client := peer
		for i := len(xff) - 1; i >= 0; i-- {
			line := xff[i]
			for line != "" {
				var hop string
				if j := strings.LastIndexByte(line, ','); j >= 0 {
					hop, line = line[j+1:], line[:j]
				} else {
					hop, line = line, ""
				}
				hop = strings.TrimSpace(hop)
				if hop == "" {
					continue
				}
				a, ok := parseAddr(hop)
				if !ok {
					return s.found(r, peer, client)
				}
				if !s.trusts(a) {
					return a.String(), true
				}
				client = a
			}
		}
		return s.found(r, peer, client)
	}
	if a, ok := parseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); ok {
		return a.String(), true
	}
	return r.RemoteAddr, false
}

// found returns client, or r.RemoteAddr when client is the peer itself.
func (s *settings) found(r *http.Request, peer, client netip.Addr) (string, bool) {
	if client == peer {
		return r.RemoteAddr, false
	}
	return client.String(), true
}

func (s *settings) trusts(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr parses an IP address, with or without a port (as in
// r.RemoteAddr, or a hop some proxies write as host:port), unmapped and
// without a zone.
func parseAddr(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

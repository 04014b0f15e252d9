package middleware_test

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/wxcentral/wxcentral/middleware"
)

func TestClientAddr(t *testing.T) {
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tt := range []struct {
		peer    string
		trusted []netip.Prefix
		want    string
	}{
		{"10.1.2.3:4000", proxy, "203.0.113.9"},
		{"192.0.2.1:4000", proxy, "192.0.2.1:4000"}, // not a proxy: the header is not believed
		{"10.1.2.3:4000", nil, "10.1.2.3:4000"},
		{"10.1.2.3:4000", []netip.Prefix{{}}, "10.1.2.3:4000"}, // an invalid prefix is ignored
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.peer
		r.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
		if got := middleware.ClientAddr(r, tt.trusted); got != tt.want {
			t.Errorf("peer %s, trusted %v: %q, want %q", tt.peer, tt.trusted, got, tt.want)
		}
	}
}

package util

import (
	"strings"
	"testing"
)

func TestParseHTTPURL(t *testing.T) {
	for _, tc := range []struct {
		in        string
		url, base bool
	}{
		{"https://api.weixin.qq.com", true, true},
		{"http://127.0.0.1:3101/prefix/", true, true},
		{"HTTPS://Example.com/page?x=1#top", true, false},
		{"https://example.com/?", true, false},
		{"https://u:secret@example.com", true, false},
		{"ftp://example.com", false, false},
		{"example.com/page", false, false},
		{"https:///nohost", false, false},
		{"http://[::1", false, false},
		{"", false, false},
	} {
		_, err := ParseHTTPURL(tc.in)
		if (err == nil) != tc.url {
			t.Errorf("ParseHTTPURL(%q) = %v, want ok %v", tc.in, err, tc.url)
		}
		_, err = ParseHTTPBase(tc.in)
		if (err == nil) != tc.base {
			t.Errorf("ParseHTTPBase(%q) = %v, want ok %v", tc.in, err, tc.base)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseHTTPBase(%q) error %q quotes the URL", tc.in, err)
		}
	}
}

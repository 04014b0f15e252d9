package config_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxcentral/wxcentral/config"
)

func TestTrustedProxiesAndAdminHosts(t *testing.T) {
	c, err := config.Load(env{
		"WECHAT_TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ,fd00::/8,,::1",
		"WECHAT_ADMIN_HOSTS":     "WXCentral.internal, [::1], 10.1.2.3",
	}.lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("::1/128")}
	if got := c.TrustedProxyPrefixes(); !slices.Equal(got, want) {
		t.Errorf("TrustedProxyPrefixes = %v, want %v", got, want)
	}
	if got := c.AdminHostList(); !slices.Equal(got, []string{"wxcentral.internal", "::1", "10.1.2.3"}) {
		t.Errorf("AdminHostList = %q", got)
	}
	if err := c.Validate(config.NeedCallback); err == nil || strings.Contains(err.Error(), "TRUSTED") || strings.Contains(err.Error(), "ADMIN_HOSTS") {
		t.Errorf("Validate: %v (only WECHAT_TOKEN should be missing)", err)
	}
	if d := config.Default(); d.TrustedProxies != "" || d.AdminHosts != "" || d.TrustedProxyPrefixes() != nil {
		t.Errorf("defaults trust something: %v", d)
	}

	for _, tt := range []struct{ env, value, want string }{
		{"WECHAT_TRUSTED_PROXIES", "10.0.0.0/33", "not a CIDR"},
		{"WECHAT_TRUSTED_PROXIES", "proxy.internal", "neither an address nor a CIDR"},
		{"WECHAT_TRUSTED_PROXIES", "0.0.0.0/0", "trusts every address"},
		{"WECHAT_TRUSTED_PROXIES", "10.0.0.1, ::/0", "trusts every address"},
		{"WECHAT_TRUSTED_PROXIES", "::ffff:0.0.0.0/96", "trusts every address"}, // IPv4's 0.0.0.0/0, mapped
		{"WECHAT_TRUSTED_PROXIES", "::ffff:1.2.3.4/96", "trusts every address"},
		{"WECHAT_ADMIN_HOSTS", "http://wx.internal", "not a host name"},
		{"WECHAT_ADMIN_HOSTS", "wx.internal:3101", "has a port"},
		{"WECHAT_ADMIN_HOSTS", "a b", "not a host name"},
	} {
		_, err := config.Load(env{tt.env: tt.value}.lookup, nil)
		if got := varNames(err); !slices.Equal(got, []string{tt.env}) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%q: %v, want an error naming %s saying %q", tt.env, tt.value, err, tt.env, tt.want)
		}
	}
}

// JSON logs write durations as Go duration strings, not nanoseconds.
func TestLoggerDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		c := config.Default()
		c.LogFormat = format
		c.NewLogger(&buf).Info("m", "wait", 1500*time.Millisecond, slog.Group("g", "d", 2*time.Minute), "cfg", c)
		out := buf.String()
		if strings.Contains(out, "1500000000") || strings.Contains(out, "120000000000") || strings.Contains(out, "300000000000") {
			t.Errorf("%s log writes nanoseconds: %s", format, out)
		}
		if format == "json" {
			var m struct {
				Wait string `json:"wait"`
				G    struct {
					D string `json:"d"`
				} `json:"g"`
				Cfg struct {
					TimestampWindow string
				} `json:"cfg"`
			}
			if err := json.Unmarshal([]byte(out), &m); err != nil || m.Wait != "1.5s" || m.G.D != "2m0s" || m.Cfg.TimestampWindow != "5m0s" {
				t.Errorf("json log: %+v %v\n%s", m, err, out)
			}
		} else if !strings.Contains(out, "wait=1.5s") || !strings.Contains(out, "g.d=2m0s") {
			t.Errorf("text log: %s", out)
		}
	}
}

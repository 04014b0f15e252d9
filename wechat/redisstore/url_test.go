package redisstore

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestParseURL(t *testing.T) {
	defaults := func(c clientConfig) *clientConfig {
		if c.dialTimeout == 0 {
			c.dialTimeout = DefaultDialTimeout
		}
		if c.readTimeout == 0 {
			c.readTimeout = DefaultReadTimeout
		}
		if c.writeTimeout == 0 {
			c.writeTimeout = DefaultWriteTimeout
		}
		if c.maxRetries == 0 {
			c.maxRetries = defaultMaxRetries
		}
		return &c
	}
	tests := []struct {
		url  string
		want *clientConfig
	}{
		{"redis://localhost", defaults(clientConfig{mode: "single", addrs: []string{"localhost:6379"}})},
		{"redis://:s3cret@10.0.0.1:6380/2", defaults(clientConfig{mode: "single", addrs: []string{"10.0.0.1:6380"}, password: "s3cret", db: 2})},
		{"rediss://app:p%40ss%2Fw@redis.example.com:6380", defaults(clientConfig{mode: "single", tls: true, addrs: []string{"redis.example.com:6380"}, username: "app", password: "p@ss/w"})},
		{"redis://[::1]:7000", defaults(clientConfig{mode: "single", addrs: []string{"[::1]:7000"}})},
		{"redis://h?dial_timeout=5&read_timeout=250ms&write_timeout=2s&pool_size=4&max_retries=-1",
			&clientConfig{mode: "single", addrs: []string{"h:6379"}, dialTimeout: 5 * time.Second, readTimeout: 250 * time.Millisecond, writeTimeout: 2 * time.Second, poolSize: 4, maxRetries: -1}},
		{"redis+sentinel://s1,s2:26380/mymaster", defaults(clientConfig{mode: "sentinel", addrs: []string{"s1:26379", "s2:26380"}, master: "mymaster"})},
		{"rediss+sentinel://:pw@s1:26379/mymaster/3?sentinel_password=spw&sentinel_username=su&skip_verify=true",
			defaults(clientConfig{mode: "sentinel", tls: true, skipVerify: true, addrs: []string{"s1:26379"}, password: "pw", master: "mymaster", db: 3, sentinelUser: "su", sentinelPass: "spw"})},
		{"redis+cluster://h1:7000,h2:7001,h3:7002", defaults(clientConfig{mode: "cluster", addrs: []string{"h1:7000", "h2:7001", "h3:7002"}})},
		{"REDIS+CLUSTER://u:p@h1:7000/", defaults(clientConfig{mode: "cluster", addrs: []string{"h1:7000"}, username: "u", password: "p"})},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := parseURL(tt.url)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseURL =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestParseURLErrorsHidePassword(t *testing.T) {
	const pw = "Hunter2pw"
	tests := []struct {
		url  string
		want string // in the message
	}{
		{"redis//:" + pw + "@h", "no scheme"},
		{"http://:" + pw + "@h", "unknown Redis URL scheme"},
		{"redis://:" + pw + "@", "no host"},
		{"redis://:" + pw + "@h1,h2", "one host"},
		{"redis://:" + pw + "@h:99999", "bad port"},
		{"redis://:" + pw + "@h:port", "bad port"},
		{"redis://:" + pw + "@h/zero", "not a database number"},
		{"redis://:" + pw + "@h/1/2", "too many parts"},
		{"redis://:" + pw + "@h?dial_timeout=soon", "dial_timeout"},
		{"redis://:" + pw + "@h?pool_size=-2", "pool_size"},
		{"redis://:" + pw + "@h?password=x", "unknown Redis URL option"},
		{"redis://:" + pw + "@h?sentinel_password=" + pw, "redis+sentinel:// only"},
		{"redis://:%zz" + pw + "@h", "password"},
		{"redis://:" + pw + "@h#frag", "fragment"},
		{"redis+sentinel://:" + pw + "@s1", "must name the master"},
		{"redis+cluster://:" + pw + "@h1/0", "no path"},
		{"redis+cluster://:" + pw + "@h1,,h2", "empty host"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := NewClient(tt.url)
			if err == nil {
				t.Fatalf("NewClient succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://:pw@h:1/2?dial_timeout=1", "redis+sentinel://a,b/m/1", "redis+cluster://[::1]:7000,h:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseURL(s)
		if err != nil {
			if c != nil {
				t.Fatal("config with error")
			}
			return
		}
		if len(c.addrs) == 0 {
			t.Fatalf("parseURL(%q) returned no address", s)
		}
	})
}

// NewClient builds the client each URL form names; a cluster URL with a
// single seed address is still a Cluster client.
func TestNewClientKind(t *testing.T) {
	tests := []struct {
		url     string
		cluster bool
	}{
		{"redis://127.0.0.1:6379/2", false},
		{"rediss://:pw@127.0.0.1:6380", false},
		{"redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster", false},
		{"redis+cluster://127.0.0.1:7000", true},
		{"redis+cluster://127.0.0.1:7000,127.0.0.1:7001", true},
	}
	for _, tt := range tests {
		c, err := NewClient(tt.url)
		if err != nil {
			t.Errorf("NewClient(%q): %v", tt.url, err)
			continue
		}
		_, isCluster := c.(*redis.ClusterClient)
		_, isSingle := c.(*redis.Client)
		if isCluster != tt.cluster || isSingle == tt.cluster {
			t.Errorf("NewClient(%q) = %T, want a cluster client: %v", tt.url, c, tt.cluster)
		}
		c.Close()
	}
}

package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of clients built by NewClient and Open: a Redis outage must turn
// into an error within seconds, not hang a refresh.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = time.Second
	DefaultWriteTimeout = time.Second
	defaultMaxRetries   = 1
)

// A clientConfig is a parsed Redis URL.
type clientConfig struct {
	mode         string // "single", "sentinel" or "cluster"
	tls          bool
	skipVerify   bool
	addrs        []string
	username     string
	password     string
	master       string
	db           int
	sentinelUser string
	sentinelPass string
	dialTimeout  time.Duration
	readTimeout  time.Duration
	writeTimeout time.Duration
	poolSize     int
	maxRetries   int
}

// NewClient returns a Redis client for rawURL (see the package doc for the
// forms): a single-node, Sentinel-backed or Cluster client. The caller
// closes it. It does not contact Redis.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	c, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if c.tls {
		host, _, _ := net.SplitHostPort(c.addrs[0])
		tc = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, InsecureSkipVerify: c.skipVerify}
	}
	// NewUniversalClient picks the kind of client: Sentinel-backed when a
	// master name is given, Cluster when asked for (even with one seed
	// address), a single node otherwise.
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:            c.addrs,
		MasterName:       c.master, // "" unless sentinel
		IsClusterMode:    c.mode == "cluster",
		SentinelUsername: c.sentinelUser,
		SentinelPassword: c.sentinelPass,
		Username:         c.username,
		Password:         c.password,
		DB:               c.db, // ignored by a Cluster client
		TLSConfig:        tc,
		DialTimeout:      c.dialTimeout,
		DialerRetries:    1,
		ReadTimeout:      c.readTimeout,
		WriteTimeout:     c.writeTimeout,
		PoolSize:         c.poolSize,
		MaxRetries:       c.maxRetries,
	}), nil
}

// parseURL parses the forms listed in the package doc. Its errors never
// quote the URL, which may hold a password.
func parseURL(rawURL string) (*clientConfig, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New("redisstore: the Redis URL has no scheme: use redis://, rediss://, redis+sentinel:// or redis+cluster://")
	}
	c := &clientConfig{
		dialTimeout:  DefaultDialTimeout,
		readTimeout:  DefaultReadTimeout,
		writeTimeout: DefaultWriteTimeout,
		maxRetries:   defaultMaxRetries,
	}
	switch strings.ToLower(scheme) {
	case "redis":
		c.mode = "single"
	case "rediss":
		c.mode, c.tls = "single", true
	case "redis+sentinel":
		c.mode = "sentinel"
	case "rediss+sentinel":
		c.mode, c.tls = "sentinel", true
	case "redis+cluster":
		c.mode = "cluster"
	case "rediss+cluster":
		c.mode, c.tls = "cluster", true
	default:
		return nil, fmt.Errorf("redisstore: unknown Redis URL scheme %q: use redis://, rediss://, redis+sentinel:// or redis+cluster://", scheme)
	}

	rest, rawQuery, _ := strings.Cut(rest, "?")
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, errors.New("redisstore: the Redis URL must not have a fragment (#)")
	}
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo := authority[:i]
		authority = authority[i+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if c.username, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("redisstore: the user name in the Redis URL is not properly escaped")
		}
		if hasPass {
			if c.password, err = url.PathUnescape(pass); err != nil {
				return nil, errors.New("redisstore: the password in the Redis URL is not properly escaped (use %XX for special characters)")
			}
		}
	}

	defaultPort := "6379"
	if c.mode == "sentinel" {
		defaultPort = "26379"
	}
	if authority == "" {
		return nil, errors.New("redisstore: the Redis URL names no host")
	}
	hosts := strings.Split(authority, ",")
	if c.mode == "single" && len(hosts) > 1 {
		return nil, errors.New("redisstore: a redis:// URL names one host; use redis+cluster:// or redis+sentinel:// for several")
	}
	for _, h := range hosts {
		addr, err := hostPort(h, defaultPort)
		if err != nil {
			return nil, err
		}
		c.addrs = append(c.addrs, addr)
	}

	segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	switch c.mode {
	case "sentinel":
		if len(segs) == 0 {
			return nil, errors.New("redisstore: a redis+sentinel:// URL must name the master: redis+sentinel://host:26379/mymaster")
		}
		var err error
		if c.master, err = url.PathUnescape(segs[0]); err != nil {
			return nil, errors.New("redisstore: the master name in the Redis URL is not properly escaped")
		}
		segs = segs[1:]
	case "cluster":
		if len(segs) > 0 {
			return nil, errors.New("redisstore: a redis+cluster:// URL has no path: Redis Cluster has only database 0")
		}
	}
	switch len(segs) {
	case 0:
	case 1:
		db, err := strconv.Atoi(segs[0])
		if err != nil || db < 0 {
			return nil, fmt.Errorf("redisstore: the Redis URL path %q is not a database number", segs[0])
		}
		c.db = db
	default:
		return nil, errors.New("redisstore: the Redis URL path has too many parts")
	}

	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errors.New("redisstore: the query of the Redis URL is malformed")
	}
	for key, vals := range q {
		v := vals[len(vals)-1]
		var err error
		switch key {
		case "dial_timeout":
			c.dialTimeout, err = parseDuration(v)
		case "read_timeout":
			c.readTimeout, err = parseDuration(v)
		case "write_timeout":
			c.writeTimeout, err = parseDuration(v)
		case "pool_size":
			c.poolSize, err = strconv.Atoi(v)
			if err == nil && c.poolSize < 0 {
				err = errors.New("must not be negative")
			}
		case "max_retries":
			c.maxRetries, err = strconv.Atoi(v)
		case "skip_verify":
			c.skipVerify, err = strconv.ParseBool(v)
		case "sentinel_username", "sentinel_password":
			if c.mode != "sentinel" {
				return nil, fmt.Errorf("redisstore: the Redis URL option %s applies to redis+sentinel:// only", key)
			}
			if key == "sentinel_username" {
				c.sentinelUser = v
			} else {
				c.sentinelPass = v
			}
			continue // never quote a credential
		default:
			return nil, fmt.Errorf("redisstore: unknown Redis URL option %q (known: dial_timeout, read_timeout, write_timeout, pool_size, max_retries, skip_verify, sentinel_username, sentinel_password)", key)
		}
		if err != nil {
			return nil, fmt.Errorf("redisstore: Redis URL option %s=%q: %w", key, v, err)
		}
	}
	return c, nil
}

// hostPort validates one host[:port] of a Redis URL.
func hostPort(h, defaultPort string) (string, error) {
	if h == "" {
		return "", errors.New("redisstore: the Redis URL has an empty host in its host list")
	}
	host, port := h, defaultPort
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			if !strings.HasPrefix(h, "[") || !strings.HasSuffix(h, "]") {
				return "", fmt.Errorf("redisstore: the Redis URL host %q is not host:port", h)
			}
			host, port = strings.Trim(h, "[]"), defaultPort
		}
	}
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return "", fmt.Errorf("redisstore: the Redis URL host %q is not a host name", h)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", fmt.Errorf("redisstore: the Redis URL host %q has a bad port", h)
	}
	return net.JoinHostPort(host, port), nil
}

// parseDuration accepts a Go duration or a number of seconds.
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("must not be negative")
	}
	return d, err
}

package sqlstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Defaults of the pools Open builds: an outage of the database must turn
// into an error within seconds, not hang a refresh.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 2 * time.Second
	DefaultWriteTimeout = 2 * time.Second
	// DefaultMaxOpenConns bounds the connections of one DB, shared by all
	// its apps' stores: every operation is one short statement or
	// transaction.
	DefaultMaxOpenConns = 10
)

// IsURL reports whether s names a database this package opens: a URL
// with the scheme mysql, mariadb, postgres or postgresql (in any case).
func IsURL(s string) bool {
	_, ok := dialectOf(s)
	return ok
}

// dialectOf returns the dialect of rawURL's scheme.
func dialectOf(rawURL string) (Dialect, bool) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return "", false
	}
	switch strings.ToLower(scheme) {
	case "mysql", "mariadb":
		return MySQL, true
	case "postgres", "postgresql":
		return Postgres, true
	}
	return "", false
}

// Redact returns rawURL with its password replaced by xxxxx: the password
// of the user information and the value of any query parameter whose name
// ends in "password". It works on text that is no valid URL too, so that
// an error about a malformed URL can show it.
func Redact(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		scheme, rest = "", rawURL
	} else {
		scheme += "://"
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if user, _, ok := strings.Cut(authority[:at], ":"); ok {
			authority = user + ":xxxxx" + authority[at:]
		}
	}
	if q := strings.IndexByte(tail, '?'); q >= 0 {
		query, frag := tail[q+1:], ""
		if h := strings.IndexByte(query, '#'); h >= 0 {
			query, frag = query[:h], query[h:]
		}
		params := strings.Split(query, "&")
		for i, p := range params {
			if k, _, ok := strings.Cut(p, "="); ok && strings.HasSuffix(strings.ToLower(k), "password") {
				params[i] = k + "=xxxxx"
			}
		}
		tail = tail[:q+1] + strings.Join(params, "&") + frag
	}
	return scheme + authority + tail
}

// A connConfig is a parsed database URL.
type connConfig struct {
	dialect      Dialect
	maxOpenConns int
	tablePrefix  string        // table_prefix; "" for the default
	mysql        *mysql.Config // for MySQL
	pgx          *pgx.ConnConfig
}

// parseURL parses rawURL into a driver configuration. Its errors never
// contain the password.
func parseURL(rawURL string) (*connConfig, error) {
	d, ok := dialectOf(rawURL)
	if !ok {
		return nil, fmt.Errorf("sqlstore: %q is not a database URL: want mysql://, mariadb://, postgres:// or postgresql://", Redact(rawURL))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("sqlstore: database URL %s: %v", Redact(rawURL), scrub(err, rawURL))
	}
	c := &connConfig{dialect: d, maxOpenConns: DefaultMaxOpenConns}
	q := u.Query()
	if v := q.Get("max_open_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("sqlstore: database URL %s: max_open_conns=%q is not a positive integer", Redact(rawURL), v)
		}
		c.maxOpenConns = n
	}
	q.Del("max_open_conns")
	if v, ok := q["table_prefix"]; ok {
		if err := checkPrefix(v[0]); err != nil {
			return nil, fmt.Errorf("sqlstore: database URL %s: table_prefix: %v", Redact(rawURL), err)
		}
		c.tablePrefix = v[0]
	}
	q.Del("table_prefix")
	if d == MySQL {
		c.mysql, err = mysqlConfig(u, q)
	} else {
		c.pgx, err = pgxConfig(u, q)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: database URL %s: %v", Redact(rawURL), scrub(err, rawURL))
	}
	return c, nil
}

// mysqlConfig is the go-sql-driver configuration of a mysql:// URL.
func mysqlConfig(u *url.URL, q url.Values) (*mysql.Config, error) {
	c := mysql.NewConfig()
	c.Net = "tcp"
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	c.Addr = net.JoinHostPort(u.Hostname(), port)
	c.User = u.User.Username()
	c.Passwd, _ = u.User.Password()
	c.DBName = strings.TrimPrefix(u.Path, "/")
	if c.DBName == "" || strings.Contains(c.DBName, "/") {
		return nil, fmt.Errorf("the path must name one database, as in mysql://user:password@host:3306/wxcentral")
	}
	c.Timeout, c.ReadTimeout, c.WriteTimeout = DefaultDialTimeout, DefaultReadTimeout, DefaultWriteTimeout
	// Arguments are quoted by the driver (safe with utf8mb4), so that a
	// statement is one round trip rather than prepare, execute and close.
	c.InterpolateParams = true
	for k, vs := range q {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "dial_timeout":
			c.Timeout, err = parseDuration(v)
		case "read_timeout":
			c.ReadTimeout, err = parseDuration(v)
		case "write_timeout":
			c.WriteTimeout, err = parseDuration(v)
		case "tls":
			switch v {
			case "true", "false", "skip-verify", "preferred":
				c.TLSConfig = v
			default:
				err = errors.New("want true, false, skip-verify or preferred")
			}
		default:
			return nil, fmt.Errorf("unknown option %q (want dial_timeout, read_timeout, write_timeout, tls, max_open_conns, table_prefix)", k)
		}
		if err != nil {
			return nil, fmt.Errorf("option %s=%q: %v", k, v, err)
		}
	}
	if c.TLSConfig != "" {
		// Resolve the named TLS configuration now, as FormatDSN/ParseDSN
		// would, so that an unusable one fails here.
		parsed, err := mysql.ParseDSN(c.FormatDSN())
		if err != nil {
			return nil, err
		}
		c = parsed
	}
	return c, nil
}

// pgxConfig is the pgx configuration of a postgres:// URL: pgx reads the
// URL itself (sslmode, connect_timeout, application_name, …), with a
// connect timeout of DefaultDialTimeout unless the URL sets one.
func pgxConfig(u *url.URL, q url.Values) (*pgx.ConnConfig, error) {
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	if v := q.Get("dial_timeout"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("option dial_timeout=%q: %v", v, err)
		}
		q.Del("dial_timeout")
		q.Set("connect_timeout", strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))))
	}
	v := *u
	v.Scheme = "postgres"
	v.RawQuery = q.Encode()
	c, err := pgx.ParseConfig(v.String())
	if err != nil {
		return nil, err
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultDialTimeout
	}
	return c, nil
}

// scrub returns err's text with password (if any, in rawURL) replaced, in
// case a driver repeats it.
func scrub(err error, rawURL string) string {
	msg := err.Error()
	u, perr := url.Parse(rawURL)
	if perr != nil || u.User == nil {
		return msg
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
		msg = strings.ReplaceAll(msg, url.QueryEscape(p), "xxxxx")
	}
	return msg
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("not a Go duration such as 2s")
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

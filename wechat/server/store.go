package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/wxcentral/wxcentral/config"
	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/redisstore"
)

// checkStore checks, before serving, what can be checked of the token
// store named by WECHAT_STORE: for a file path, symbolic links resolved as
// the file store resolves them (wechat.FileStore.Path: it writes next to
// the real file), that it does not name a directory, that its directory
// exists and that a file can be created there (the store writes a new file
// and renames it, and keeps a lock file next to it). A Redis URL is not
// checked: an unreachable Redis is a run-time condition the keeper
// retries. A problem is a *config.VarError naming WECHAT_STORE.
func checkStore(store string) error {
	if config.IsRedisStore(store) || config.IsSQLStore(store) {
		return nil
	}
	bad := func(format string, args ...any) error {
		return &config.VarError{Var: "WECHAT_STORE", Flag: "store", Err: fmt.Errorf(format, args...)}
	}
	// The path the store will use; a link that cannot be resolved is
	// used as given, as the store does.
	if real := wechat.NewFileStore(store, nil).Path(); real != store {
		if abs, err := filepath.Abs(store); err != nil || abs != real {
			if err := checkStoreFile(real, bad); err != nil {
				return bad("%q is a link to %q: %w", store, real, errors.Unwrap(err))
			}
			return nil
		}
	}
	return checkStoreFile(store, bad)
}

// checkStoreFile is checkStore for the path the store uses.
func checkStoreFile(store string, bad func(string, ...any) error) error {
	if fi, err := os.Stat(store); err == nil && fi.IsDir() {
		return bad("%q is a directory: name the file, e.g. %s", store, filepath.Join(store, config.DefaultStore))
	} else if err == nil && !fi.Mode().IsRegular() {
		return bad("%q is not a regular file", store)
	} else if err == nil {
		f, err := os.Open(store)
		if err != nil {
			return bad("the store file cannot be read: %v", errors.Unwrap(err))
		}
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return bad("%v", err)
	}
	dir := filepath.Dir(store)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad("the directory %q does not exist: create it, or name a file in an existing one", dir)
	case err != nil:
		return bad("the directory %q: %v", dir, errors.Unwrap(err))
	case !fi.IsDir():
		return bad("%q is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".wxcentral-check-*")
	if err != nil {
		return bad("cannot create files in the directory %q (%v): the store saves by writing a new file and renaming it, next to a lock file", dir, errors.Unwrap(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// openStore opens the token store named by WECHAT_STORE: a Redis URL
// (redis://, rediss://, redis+sentinel://, redis+cluster:// and their
// rediss+ forms) through redisstore.Open, anything else as the path of a
// wechat.FileStore. The returned function releases the store.
func openStore(store, appID string, log *slog.Logger) (wechat.Store, func(), error) {
	if config.IsRedisStore(store) {
		s, err := redisstore.Open(store, appID, redisstore.WithLogger(log))
		if err != nil {
			return nil, nil, fmt.Errorf("server: WECHAT_STORE: %w", err)
		}
		return s, func() { s.Close() }, nil
	}
	return wechat.NewFileStore(store, log), func() {}, nil
}

// dedupeFor returns the middleware option that shares retry dedupe through
// the token store's Redis, so that WeChat's re-delivery of a push to
// another host behind the load balancer does not run the handler twice.
// A file store (one host) keeps the middleware's in-memory default.
func dedupeFor(store wechat.Store, appID string) (middleware.Option, bool) {
	rs, ok := store.(*redisstore.Store)
	if !ok {
		return nil, false
	}
	d := redisstore.NewDedupe(rs.Client())
	d.Prefix = redisstore.DefaultDedupePrefix + "{" + appID + "}:"
	return middleware.WithDedupe(d), true
}

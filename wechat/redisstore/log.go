package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// libraryLogs records that go-redis's global logger was routed to slog.
// go-redis v9 has one logger per program (redis.SetLogger), not one per
// client, so this is the package's only global state.
var libraryLogs atomic.Bool

// routeLibraryLogs routes go-redis's own log lines to l, unless an earlier
// store did.
func routeLibraryLogs(l *slog.Logger) {
	if libraryLogs.CompareAndSwap(false, true) {
		redis.SetLogger(slogPrinter{l})
	}
}

// slogPrinter is go-redis's logging interface on a *slog.Logger.
type slogPrinter struct{ l *slog.Logger }

// Printf logs one go-redis line as a WARN record: go-redis logs only what
// went wrong (a failed dial, a lost sentinel, a pool that gave up).
func (p slogPrinter) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	msg = strings.TrimPrefix(msg, "redis: ")
	p.l.Log(ctx, slog.LevelWarn, "go-redis: "+msg, "component", "go-redis")
}

package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/tidwall/gjson"

	"github.com/wxcentral/wxcentral/util"
)

// fileLockPoll is how often a FileStore retries a lock held by another
// process. flock(2) has no wait-with-timeout, so waiting is polling.
const fileLockPoll = 2 * time.Millisecond

// keepDays is how many quota days of fetch counters a FileStore keeps per
// API; older days are dropped on the next write.
const keepDays = 3

// A FileStore keeps credentials in one JSON file, by default wechat.txt, in
// the format the original Koa app reads and writes:
//
//	{"access_token":"…","expires_in":1767225600000, …}
//
// expires_in is the absolute expiry in Unix epoch milliseconds. FileStore
// adds its own keys (fetched_at, tickets, fetches) and keeps any other key
// it finds, so the old Node process and wxcentral can share the file.
//
// Writes are atomic (a temporary file renamed over the old one, mode 0600),
// so a reader never sees a half-written file, even if the writer is killed.
// The cross-process lock is a flock(2) on the sidecar file path+".lock".
//
// Save and AddFetches rewrite the whole file: call them while holding Lock,
// as the keeper does, or a concurrent writer in another process may lose an
// update (the file still always parses). Within one process they are safe
// for concurrent use.
type FileStore struct {
	path   string
	logger *slog.Logger

	sem chan struct{} // the in-process half of Lock

	mu      sync.Mutex // serialises read-modify-write within the process
	corrupt bool       // the last read found a corrupt file (and logged it)
}

// NewFileStore returns a Store on the file at path (which need not exist
// yet). A nil logger discards the store's log lines.
func NewFileStore(path string, logger *slog.Logger) *FileStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FileStore{path: path, logger: logger, sem: make(chan struct{}, 1)}
}

// Path returns the path of the file s keeps.
func (s *FileStore) Path() string { return s.path }

// Lock takes the cross-process lock on path+".lock", waiting until it is free
// or ctx is done.
func (s *FileStore) Lock(ctx context.Context) (func(), error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wechat: lock %s: %w", s.path, ctx.Err())
	}
	fl := flock.New(s.path+".lock", flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, fileLockPoll)
	if err != nil || !ok {
		<-s.sem
		fl.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("wechat: lock %s.lock: %w", s.path, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := fl.Unlock(); err != nil {
				s.logger.Error("wechat: unlock file store", "path", s.path+".lock", "err", err)
			}
			fl.Close()
			<-s.sem
		})
	}, nil
}

// Load returns the stored credential of kind. A missing, empty or corrupt
// file is the zero Credential; a corrupt one is logged once.
func (s *FileStore) Load(ctx context.Context, kind Kind) (Credential, error) {
	if err := ctx.Err(); err != nil {
		return Credential{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.read()
	if err != nil {
		return Credential{}, err
	}
	return credentialFrom(doc, kind), nil
}

// Save stores c as the credential of kind, or returns ErrSuperseded if the
// file holds one of that kind fetched later.
func (s *FileStore) Save(ctx context.Context, kind Kind, c Credential) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch kind {
	case KindAccessToken, KindJSAPITicket, KindCardTicket, KindCooldown:
	default:
		return fmt.Errorf("wechat: file store %s: unknown credential kind %q", s.path, kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.read()
	if err != nil {
		return err
	}
	if old := credentialFrom(doc, kind); old.FetchedAt.After(c.FetchedAt) {
		return ErrSuperseded
	}
	return s.write(doc, kind, &c, "", "", 0)
}

// AddFetches adds n to the count of fetches of api on day and returns the
// new count.
func (s *FileStore) AddFetches(ctx context.Context, api, day string, n int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.read()
	if err != nil {
		return 0, err
	}
	count := int(doc.Get("fetches." + gjsonEscape(api) + "." + gjsonEscape(day)).Int())
	if n == 0 {
		return count, nil
	}
	count += n
	return count, s.write(doc, "", nil, api, day, count)
}

// read returns the parsed file; a missing, empty or corrupt file is an
// empty document.
func (s *FileStore) read() (gjson.Result, error) {
	data, err := util.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return gjson.Result{}, nil
	}
	if err != nil {
		return gjson.Result{}, fmt.Errorf("wechat: file store: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 || !gjson.ValidBytes(data) || !gjson.ParseBytes(data).IsObject() {
		if !s.corrupt {
			s.corrupt = true
			s.logger.Warn("wechat: file store holds no valid JSON object; treating it as empty, the next save overwrites it",
				"path", s.path, "size", len(data))
		}
		return gjson.Result{}, nil
	}
	s.corrupt = false
	return gjson.ParseBytes(data), nil
}

// credentialFrom extracts the credential of kind from doc.
func credentialFrom(doc gjson.Result, kind Kind) Credential {
	var v, exp, fetched gjson.Result
	if kind == KindAccessToken {
		v, exp, fetched = doc.Get("access_token"), doc.Get("expires_in"), doc.Get("fetched_at")
	} else {
		t := doc.Get("tickets." + gjsonEscape(string(kind)))
		v, exp, fetched = t.Get("ticket"), t.Get("expires_at"), t.Get("fetched_at")
	}
	if v.Type != gjson.String || v.Str == "" || exp.Type != gjson.Number {
		return Credential{}
	}
	c := Credential{Value: v.Str, ExpiresAt: time.UnixMilli(exp.Int())}
	if fetched.Type == gjson.Number && fetched.Int() > 0 {
		c.FetchedAt = time.UnixMilli(fetched.Int())
	}
	return c
}

// write rewrites the file from doc with one change: the credential c of
// kind (if c != nil), or the fetch count of api on day (if api != "").
// access_token and expires_in always come first, at the top level.
func (s *FileStore) write(doc gjson.Result, kind Kind, c *Credential, api, day string, count int) error {
	tok := credentialFrom(doc, KindAccessToken)
	if c != nil && kind == KindAccessToken {
		tok = *c
	}
	var b bytes.Buffer
	b.WriteString(`{"access_token":`)
	writeJSONString(&b, tok.Value)
	b.WriteString(`,"expires_in":`)
	b.WriteString(strconv.FormatInt(msOrZero(tok.ExpiresAt), 10))
	if !tok.FetchedAt.IsZero() {
		b.WriteString(`,"fetched_at":`)
		b.WriteString(strconv.FormatInt(tok.FetchedAt.UnixMilli(), 10))
	}

	// Tickets, by kind.
	tickets := map[string]Credential{}
	doc.Get("tickets").ForEach(func(k, _ gjson.Result) bool {
		if cr := credentialFrom(doc, Kind(k.String())); !cr.IsZero() {
			tickets[k.String()] = cr
		}
		return true
	})
	if c != nil && kind != KindAccessToken {
		tickets[string(kind)] = *c
	}
	if len(tickets) > 0 {
		b.WriteString(`,"tickets":{`)
		for i, k := range sortedKeys(tickets) {
			if i > 0 {
				b.WriteByte(',')
			}
			t := tickets[k]
			writeJSONString(&b, k)
			b.WriteString(`:{"ticket":`)
			writeJSONString(&b, t.Value)
			fmt.Fprintf(&b, `,"expires_at":%d,"fetched_at":%d}`, msOrZero(t.ExpiresAt), msOrZero(t.FetchedAt))
		}
		b.WriteByte('}')
	}

	// Fetch counters, by api and day; only the latest keepDays days.
	fetches := map[string]map[string]int64{}
	doc.Get("fetches").ForEach(func(a, days gjson.Result) bool {
		days.ForEach(func(d, n gjson.Result) bool {
			if fetches[a.String()] == nil {
				fetches[a.String()] = map[string]int64{}
			}
			fetches[a.String()][d.String()] = n.Int()
			return true
		})
		return true
	})
	if api != "" {
		if fetches[api] == nil {
			fetches[api] = map[string]int64{}
		}
		fetches[api][day] = int64(count)
	}
	if len(fetches) > 0 {
		b.WriteString(`,"fetches":{`)
		for i, a := range sortedKeys(fetches) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, a)
			b.WriteString(":{")
			days := sortedKeys(fetches[a])
			if len(days) > keepDays {
				days = days[len(days)-keepDays:]
			}
			for j, d := range days {
				if j > 0 {
					b.WriteByte(',')
				}
				writeJSONString(&b, d)
				b.WriteByte(':')
				b.WriteString(strconv.FormatInt(fetches[a][d], 10))
			}
			b.WriteByte('}')
		}
		b.WriteByte('}')
	}

	// Keys written by someone else are kept as they were.
	doc.ForEach(func(k, v gjson.Result) bool {
		switch k.String() {
		case "access_token", "expires_in", "fetched_at", "tickets", "fetches":
		default:
			b.WriteByte(',')
			writeJSONString(&b, k.String())
			b.WriteByte(':')
			b.WriteString(v.Raw)
		}
		return true
	})
	b.WriteString("}\n")
	if err := util.WriteFileAtomic(s.path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("wechat: file store: %w", err)
	}
	return nil
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always marshals
	b.Write(q)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// gjsonEscape escapes the characters gjson's path syntax gives a meaning.
func gjsonEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', '*', '?', '|', '#', '@', '\\', '!', '=', '<', '>', '%':
			if b == nil {
				b = append(make([]byte, 0, len(s)+4), s[:i]...)
			}
			b = append(b, '\\')
		}
		if b != nil {
			b = append(b, s[i])
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tidwall/gjson"

	"github.com/wxcentral/wxcentral/util"
)

// fileLockPoll is how often a FileStore retries a lock held by another
// process. flock(2) has no wait-with-timeout, so waiting is polling.
const fileLockPoll = 2 * time.Millisecond

// keepDays is how many quota days of fetch counters a FileStore keeps per
// API; older days are dropped on the next write.
const keepDays = 3

// Suffixes of the files a FileStore keeps next to its store file.
const (
	// lockSuffix names the lock file: wechat.txt.lock.
	lockSuffix = ".lock"
	// stateSuffix names the state file: wechat.txt.state.
	stateSuffix = ".state"
	// guardSuffix names the lock's guard file: wechat.txt.lock.guard.
	guardSuffix = lockSuffix + ".guard"
)

// tokenLife is the lifetime WeChat gives an access token. A token that
// another program wrote without fetched_at is taken to have been fetched
// this long before its expiry.
const tokenLife = 7200 * time.Second

// A FileStore keeps credentials in one JSON file, by default wechat.txt, in
// the format the original Koa app reads and writes:
//
//	{"access_token":"…","expires_in":1767225600000,"fetched_at":1767218400000}
//
// expires_in is the absolute expiry in Unix epoch milliseconds. FileStore
// adds fetched_at and keeps any other key it finds, so the old Node process
// and wxcentral can share the file. A token the original app wrote has no
// fetched_at; FileStore takes it to have been fetched 7200 s before its
// expiry, which is how WeChat issues tokens, so a slower fetch of ours
// cannot overwrite the newer token (Save's fence).
//
// A file holding an access_token in a shape FileStore does not read
// (expires_in in seconds or as a string, camelCase keys such as
// accessToken/expireTime, a token nested under another key) loads as no
// token, and is logged once per shape as a warning naming the shape (never
// the token): the keeper is about to fetch, which ends the token of the
// program that wrote the file.
//
// # The state file
//
// Everything the original app would erase when it rewrites wechat.txt
// lives in the state file path+".state" (mode 0600): the tickets, any
// other Kind (the credential cooldown, …) and the daily and hourly fetch
// counts. wechat.txt is read for the access token alone. Counts and
// tickets that an older version of wxcentral kept in wechat.txt (under
// "fetches" and "tickets") are still honoured, the larger count and the
// later ticket winning, and move to the state file on the next save of the
// token.
//
// Writes are atomic (a temporary file in the same directory renamed over
// the old one, mode 0600), so a reader never sees a half-written file, even
// if the writer is killed. A file over 1 MiB (util.MaxFileSize) is not a
// store: it is treated like a corrupt one (logged once, read as empty,
// replaced by the next save).
//
// # Symbolic links and the lock
//
// NewFileStore resolves symbolic links in path once: when wechat.txt is a
// link (or sits in a linked directory), the data, the temporary files, the
// state file and the lock all live next to the real file, so processes that
// reach it through different links share one token and one lock. A link
// created after NewFileStore is not followed: the next save replaces it.
//
// The cross-process lock is a flock(2) on path+".lock" (next to the real
// file). A lock file that is a symbolic link is refused, not followed. A
// lock file deleted while held does not split the lock: after taking the
// flock the store checks that the path still names the locked file, and
// on unix a new lock file is created only while no process holds this
// store's lock: every holder keeps a shared flock on the guard file
// path+".lock.guard" (mode 0600, created next to the lock file, never
// followed if a link), which excludes the creator's exclusive one. The
// guard is the store's own, so stores sharing a directory never wait for
// each other, and another user cannot open it to block the lock. Deleting
// the guard is harmless; deleting both the lock file and the guard while
// the lock is held can split it. The lock needs a local file system.
//
// Save and AddCount rewrite whole files: call them while holding Lock,
// as the keeper does, or a concurrent writer in another process may lose an
// update (the files still always parse). Within one process they are safe
// for concurrent use.
type FileStore struct {
	path      string // the real store file: symlinks resolved by NewFileStore
	lockPath  string
	guardPath string // guards the creation of the lock file (unix)
	statePath string
	logger    *slog.Logger

	sem chan struct{} // the in-process half of Lock

	mu      sync.Mutex      // serialises read-modify-write within the process
	corrupt map[string]bool // files whose corruption was logged, until they parse again
	shapes  map[string]bool // foreign token shapes already logged
}

// NewFileStore returns a Store on the file at path (which need not exist
// yet). Symbolic links in path are resolved now, once (see FileStore). A
// nil logger discards the store's log lines.
func NewFileStore(path string, logger *slog.Logger) *FileStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	real, err := resolvePath(path)
	if err != nil {
		logger.Warn("wechat: file store: cannot resolve symbolic links; using the path as given",
			"path", path, "err", err)
		real = path
	}
	return &FileStore{
		path: real, lockPath: real + lockSuffix, guardPath: real + guardSuffix, statePath: real + stateSuffix,
		logger: logger, sem: make(chan struct{}, 1),
		corrupt: map[string]bool{}, shapes: map[string]bool{},
	}
}

// maxLinks bounds the symbolic links resolvePath follows, as the kernel's
// ELOOP does.
const maxLinks = 40

// resolvePath returns the absolute path of the file path names, following
// symbolic links in the directories and in the last element, even a link
// whose target does not exist yet (the store creates the target).
func resolvePath(path string) (string, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	for range maxLinks {
		dir, base := filepath.Split(p)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		p = filepath.Join(dir, base)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = target
	}
	return "", fmt.Errorf("%s: more than %d symbolic links", path, maxLinks)
}

// Path returns the path of the file s keeps: the real file, symbolic links
// resolved. The lock and the state file sit next to it.
func (s *FileStore) Path() string { return s.path }

// Lock takes the cross-process lock on path+".lock", waiting until it is free
// or ctx is done.
func (s *FileStore) Lock(ctx context.Context) (func(), error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wechat: lock %s: %w", s.lockPath, ctx.Err())
	}
	release, err := lockFile(ctx, s.lockPath, s.guardPath, fileLockPoll)
	if err != nil {
		<-s.sem
		return nil, fmt.Errorf("wechat: lock %s: %w", s.lockPath, err)
	}
	return s.unlocker(release), nil
}

// TryLock takes the lock Lock takes if it is free, at once (see
// TryLocker): one non-blocking attempt on the in-process half and one on
// the lock file. ok is false when another caller through s, or another
// process or FileStore value, holds it.
func (s *FileStore) TryLock(ctx context.Context) (unlock func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("wechat: lock %s: %w", s.lockPath, err)
	}
	select {
	case s.sem <- struct{}{}:
	default:
		return nil, false, nil
	}
	release, ok, err := tryLockFile(s.lockPath, s.guardPath)
	if err != nil || !ok {
		<-s.sem
		if err != nil {
			return nil, false, fmt.Errorf("wechat: lock %s: %w", s.lockPath, err)
		}
		return nil, false, nil
	}
	return s.unlocker(release), true, nil
}

// tryLockFile makes one attempt to take the lock lockFile takes: ok is
// false if another holder has it. lockFile begins every wait with one
// non-blocking attempt and, with a context already done, gives up after
// it with that context's error: which here means busy.
func tryLockFile(path, guardPath string) (release func() error, ok bool, err error) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	release, err = lockFile(done, path, guardPath, fileLockPoll)
	switch {
	case err == nil:
		return release, true, nil
	case errors.Is(err, context.Canceled):
		return nil, false, nil
	}
	return nil, false, err
}

// unlocker returns the unlock function of a lock taken with release: it
// releases the file lock, then the in-process half, once.
func (s *FileStore) unlocker(release func() error) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := release(); err != nil {
				s.logger.Error("wechat: unlock file store", "path", s.lockPath, "err", err)
			}
			<-s.sem
		})
	}
}

// Load returns the stored credential of kind. A missing, empty or corrupt
// file is the zero Credential; a corrupt one is logged once.
func (s *FileStore) Load(ctx context.Context, kind Kind) (Credential, error) {
	if err := ctx.Err(); err != nil {
		return Credential{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.readDoc()
	if err != nil {
		return Credential{}, err
	}
	if kind == KindAccessToken {
		return s.token(doc), nil
	}
	st, err := s.readState()
	if err != nil {
		return Credential{}, err
	}
	return st.cred(doc, kind), nil
}

// Save stores c as the credential of kind, or returns ErrSuperseded if the
// store holds one of that kind fetched later. The access token goes to the
// store file, every other kind to the state file.
func (s *FileStore) Save(ctx context.Context, kind Kind, c Credential) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if kind == "" {
		return fmt.Errorf("wechat: file store %s: empty credential kind", s.path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.readDoc()
	if err != nil {
		return err
	}
	if kind != KindAccessToken {
		st, err := s.readState()
		if err != nil {
			return err
		}
		if old := st.cred(doc, kind); old.FetchedAt.After(c.FetchedAt) {
			return ErrSuperseded
		}
		st.setCred(kind, c)
		return s.writeState(st)
	}
	if old := s.token(doc); old.FetchedAt.After(c.FetchedAt) {
		return ErrSuperseded
	}
	if hasLegacy(doc) {
		// Move what an older version kept in wechat.txt to the state file
		// before the rewrite below drops it.
		st, err := s.readState()
		if err != nil {
			return err
		}
		st.merge(doc)
		if err := s.writeState(st); err != nil {
			return err
		}
	}
	return s.writeDoc(doc, c)
}

// Count returns the count c names. Counts live in the state file, under
// c.Bucket() and c.Day (the layout of every earlier version).
func (s *FileStore) Count(ctx context.Context, c Counter) (int, error) {
	return s.addCount(ctx, c, 0)
}

// AddCount adds n (> 0) to the count c names and returns the new count.
func (s *FileStore) AddCount(ctx context.Context, c Counter, n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("wechat: file store: add %d to %v: n must be positive", n, c)
	}
	return s.addCount(ctx, c, n)
}

// addCount adds n (0 to only read) to the count c names.
func (s *FileStore) addCount(ctx context.Context, c Counter, n int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := c.Check(); err != nil {
		return 0, fmt.Errorf("wechat: file store: %w", err)
	}
	api, day := c.Bucket(), c.Day
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, err := s.readDoc()
	if err != nil {
		return 0, err
	}
	st, err := s.readState()
	if err != nil {
		return 0, err
	}
	count := max(st.Fetches[api][day], legacyCount(doc, api, day))
	if n == 0 {
		return int(count), nil
	}
	count += int64(n)
	st.setCount(api, day, count)
	return int(count), s.writeState(st)
}

// readFile returns the content of the file at path, or nil for a missing
// file. A file too large to be a store is reported as corrupt (nil data,
// corrupt true).
func (s *FileStore) readFile(path string) (data []byte, tooLarge bool, err error) {
	data, err = util.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case errors.Is(err, util.ErrTooLarge):
		return nil, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("wechat: file store: %w", err)
	}
	return data, false, nil
}

// logCorrupt logs, once until the file parses again, that the file at path
// is not a store.
func (s *FileStore) logCorrupt(path string, tooLarge bool, size int) {
	if s.corrupt[path] {
		return
	}
	s.corrupt[path] = true
	if tooLarge {
		s.logger.Warn("wechat: file store file is larger than any store; treating it as corrupt and empty, the next save overwrites it",
			"path", path, "limit_bytes", util.MaxFileSize)
		return
	}
	s.logger.Warn("wechat: file store holds no valid JSON object; treating it as empty, the next save overwrites it",
		"path", path, "size", size)
}

// readDoc returns the parsed store file; a missing, empty, oversized or
// corrupt file is an empty document.
func (s *FileStore) readDoc() (gjson.Result, error) {
	data, tooLarge, err := s.readFile(s.path)
	if err != nil {
		return gjson.Result{}, err
	}
	if data == nil && !tooLarge {
		return gjson.Result{}, nil
	}
	if tooLarge || len(bytes.TrimSpace(data)) == 0 || !gjson.ValidBytes(data) || !gjson.ParseBytes(data).IsObject() {
		s.logCorrupt(s.path, tooLarge, len(data))
		return gjson.Result{}, nil
	}
	delete(s.corrupt, s.path)
	return gjson.ParseBytes(data), nil
}

// token returns the access token of the store file, logging (once per
// shape) a token it cannot read.
func (s *FileStore) token(doc gjson.Result) Credential {
	if shape := foreignShape(doc); shape != "" {
		if !s.shapes[shape] {
			s.shapes[shape] = true
			s.logger.Warn("wechat: file store holds an access_token in a shape wxcentral does not read; "+
				"treating it as no token, so a new one will be fetched, which ends the token of the program that wrote it",
				"path", s.path, "shape", shape,
				"want", `{"access_token":"…","expires_in":<expiry in Unix epoch milliseconds>}`)
		}
		return Credential{}
	}
	v, exp, fetched := doc.Get("access_token"), doc.Get("expires_in"), doc.Get("fetched_at")
	if v.Type != gjson.String || v.Str == "" || exp.Type != gjson.Number {
		return Credential{}
	}
	c := Credential{Value: v.Str, ExpiresAt: time.UnixMilli(exp.Int())}
	switch {
	case fetched.Type == gjson.Number && fetched.Int() > 0:
		c.FetchedAt = time.UnixMilli(fetched.Int())
	case exp.Int() > 0:
		// Written by the original app, which keeps no fetched_at.
		c.FetchedAt = c.ExpiresAt.Add(-tokenLife)
	}
	return c
}

// Epoch milliseconds below this (1973) cannot be a token's expiry, but are
// a lifetime in seconds (7200) or an expiry in epoch seconds.
const (
	minEpochMillis = 100_000_000_000
	minEpochSecs   = 100_000_000
)

// foreignShape describes how doc holds an access token in a shape
// FileStore does not read, or returns "" if it holds one in its own shape,
// or none at all. The description names keys and types, never values
// (except expires_in, which is no secret).
func foreignShape(doc gjson.Result) string {
	if !doc.IsObject() {
		return ""
	}
	tok, exp := doc.Get("access_token"), doc.Get("expires_in")
	if tok.Exists() {
		switch {
		case tok.Type != gjson.String:
			return "access_token is a JSON " + jsonType(tok) + ", not a string"
		case tok.Str == "":
			return ""
		case !exp.Exists():
			return "access_token without expires_in"
		case exp.Type == gjson.String:
			return "expires_in is a string, not a number of epoch milliseconds"
		case exp.Type != gjson.Number:
			return "expires_in is a JSON " + jsonType(exp) + ", not a number"
		case exp.Num > 0 && exp.Num < minEpochSecs:
			return "expires_in " + exp.Raw + " looks like a lifetime in seconds, not an expiry in epoch milliseconds"
		case exp.Num >= minEpochSecs && exp.Num < minEpochMillis:
			return "expires_in " + exp.Raw + " looks like an expiry in epoch seconds, not milliseconds"
		}
		return ""
	}
	var found string
	doc.ForEach(func(k, v gjson.Result) bool {
		switch {
		case isTokenKey(k.Str):
			keys := []string{k.Str}
			doc.ForEach(func(k2, _ gjson.Result) bool {
				if isExpiryKey(k2.Str) {
					keys = append(keys, k2.Str)
				}
				return true
			})
			found = "the token under the key " + strings.Join(keys, "/") + ", not access_token/expires_in"
		case v.IsObject() && v.Get("access_token").Exists():
			found = "access_token nested under the key " + strconv.Quote(k.Str) + ", not at the top level"
		}
		return found == ""
	})
	return found
}

// isTokenKey reports whether k spells access_token some other way
// (accessToken, AccessToken, access-token, token).
func isTokenKey(k string) bool {
	n := normalizeKey(k)
	return n == "accesstoken" || n == "token"
}

// isExpiryKey reports whether k names an expiry some other way
// (expireTime, expiresIn, expires_at, expire_time, expires).
func isExpiryKey(k string) bool {
	switch normalizeKey(k) {
	case "expiretime", "expirestime", "expiresin", "expirein", "expiresat", "expireat", "expires", "expire", "expiry":
		return true
	}
	return false
}

func normalizeKey(k string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return unicode.ToLower(r)
	}, k)
}

func jsonType(r gjson.Result) string {
	switch r.Type {
	case gjson.Null:
		return "null"
	case gjson.False, gjson.True:
		return "boolean"
	case gjson.Number:
		return "number"
	case gjson.String:
		return "string"
	}
	if r.IsArray() {
		return "array"
	}
	return "object"
}

// hasLegacy reports whether doc holds what an older version kept in
// wechat.txt and now lives in the state file.
func hasLegacy(doc gjson.Result) bool {
	return doc.Get("tickets").Exists() || doc.Get("fetches").Exists()
}

// legacyCount is the fetch count of api on day that an older version kept
// in wechat.txt.
func legacyCount(doc gjson.Result, api, day string) int64 {
	return doc.Get("fetches." + gjsonEscape(api) + "." + gjsonEscape(day)).Int()
}

// legacyCred is the credential of kind that an older version kept in
// wechat.txt under "tickets".
func legacyCred(doc gjson.Result, kind Kind) Credential {
	t := doc.Get("tickets." + gjsonEscape(string(kind)))
	v, exp, fetched := t.Get("ticket"), t.Get("expires_at"), t.Get("fetched_at")
	if v.Type != gjson.String || v.Str == "" || exp.Type != gjson.Number {
		return Credential{}
	}
	return Credential{Value: v.Str, ExpiresAt: time.UnixMilli(exp.Int()), FetchedAt: millisOrZero(fetched.Int())}
}

// writeDoc rewrites the store file with the access token c: access_token
// and expires_in first, at the top level, then fetched_at, then every key
// written by someone else as it was. Keys that moved to the state file are
// dropped.
func (s *FileStore) writeDoc(doc gjson.Result, c Credential) error {
	var b bytes.Buffer
	b.WriteString(`{"access_token":`)
	writeJSONString(&b, c.Value)
	b.WriteString(`,"expires_in":`)
	b.WriteString(strconv.FormatInt(msOrZero(c.ExpiresAt), 10))
	if !c.FetchedAt.IsZero() {
		b.WriteString(`,"fetched_at":`)
		b.WriteString(strconv.FormatInt(c.FetchedAt.UnixMilli(), 10))
	}
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

// fileState is the content of the state file.
type fileState struct {
	// Creds holds every credential but the access token, by kind.
	Creds map[Kind]stateCred `json:"creds,omitempty"`
	// Fetches holds the fetch counts by api and quota day.
	Fetches map[string]map[string]int64 `json:"fetches,omitempty"`
}

type stateCred struct {
	Value     string `json:"value"`
	ExpiresAt int64  `json:"expires_at"` // Unix epoch milliseconds
	FetchedAt int64  `json:"fetched_at"`
}

// cred returns the credential of kind: the state file's, or the one an
// older version kept in wechat.txt if that was fetched later.
func (st *fileState) cred(doc gjson.Result, kind Kind) Credential {
	var c Credential
	if sc, ok := st.Creds[kind]; ok && sc.Value != "" {
		c = Credential{Value: sc.Value, ExpiresAt: millisOrZero(sc.ExpiresAt), FetchedAt: millisOrZero(sc.FetchedAt)}
	}
	if old := legacyCred(doc, kind); !old.IsZero() && (c.IsZero() || old.FetchedAt.After(c.FetchedAt)) {
		c = old
	}
	return c
}

func (st *fileState) setCred(kind Kind, c Credential) {
	if st.Creds == nil {
		st.Creds = map[Kind]stateCred{}
	}
	st.Creds[kind] = stateCred{Value: c.Value, ExpiresAt: msOrZero(c.ExpiresAt), FetchedAt: msOrZero(c.FetchedAt)}
}

// setCount sets the count of fetches of api on day.
func (st *fileState) setCount(api, day string, n int64) {
	if st.Fetches == nil {
		st.Fetches = map[string]map[string]int64{}
	}
	if st.Fetches[api] == nil {
		st.Fetches[api] = map[string]int64{}
	}
	st.Fetches[api][day] = n
}

// merge takes into st the tickets and counts an older version kept in
// doc: the later ticket and the larger count win.
func (st *fileState) merge(doc gjson.Result) {
	doc.Get("tickets").ForEach(func(k, _ gjson.Result) bool {
		kind := Kind(k.String())
		if c := st.cred(doc, kind); !c.IsZero() {
			st.setCred(kind, c)
		}
		return true
	})
	doc.Get("fetches").ForEach(func(a, days gjson.Result) bool {
		days.ForEach(func(d, n gjson.Result) bool {
			api, day := a.String(), d.String()
			st.setCount(api, day, max(st.Fetches[api][day], n.Int()))
			return true
		})
		return true
	})
}

// readState returns the parsed state file; a missing, oversized or corrupt
// one is empty.
func (s *FileStore) readState() (*fileState, error) {
	st := &fileState{}
	data, tooLarge, err := s.readFile(s.statePath)
	if err != nil || (data == nil && !tooLarge) {
		return st, err
	}
	if tooLarge || json.Unmarshal(data, st) != nil {
		s.logCorrupt(s.statePath, tooLarge, len(data))
		return &fileState{}, nil
	}
	delete(s.corrupt, s.statePath)
	return st, nil
}

// writeState rewrites the state file from st, keeping only the latest
// keepDays days of counts per API.
func (s *FileStore) writeState(st *fileState) error {
	for api, days := range st.Fetches {
		if len(days) > keepDays {
			for _, d := range sortedKeys(days)[:len(days)-keepDays] {
				delete(days, d)
			}
		}
		if len(days) == 0 {
			delete(st.Fetches, api)
		}
	}
	data, err := json.Marshal(st) // map keys come out sorted
	if err != nil {
		return fmt.Errorf("wechat: file store state: %w", err)
	}
	if err := util.WriteFileAtomic(s.statePath, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("wechat: file store state: %w", err)
	}
	return nil
}

func millisOrZero(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
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

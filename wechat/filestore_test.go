package wechat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/wxcentral/wxcentral/util"
)

// lockedElsewhere reports whether s's lock is held by another store. It
// never waits: it is one try through lockFile with a context already done,
// which makes a single non-blocking attempt at each step (LOCK_EX|LOCK_NB
// on the lock file, and on the guard too when the lock file is missing),
// and it bypasses s's in-process semaphore. A free lock is taken and
// released at once.
func lockedElsewhere(t *testing.T, s *FileStore) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	release, err := lockFile(ctx, s.lockPath, s.guardPath, fileLockPoll)
	if err == nil {
		if err := release(); err != nil {
			t.Fatalf("release: %v", err)
		}
		return false
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("try-lock of %s: %v, want it held or free", s.lockPath, err)
	}
	return true
}

func mustLock(t *testing.T, s *FileStore) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	return unlock
}

func TestFileStoreSymlinkedStore(t *testing.T) {
	ctx := t.Context()
	tok := Credential{Value: "T", FetchedAt: epoch, ExpiresAt: epoch.Add(time.Hour)}
	realDir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	linkDir := t.TempDir()
	real := filepath.Join(realDir, "wechat.txt")
	if err := os.WriteFile(real, []byte(`{"access_token":"OLD","expires_in":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	dirLink := filepath.Join(linkDir, "dir")
	if err := os.Symlink(realDir, dirLink); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	fileLink := filepath.Join(linkDir, "wechat.txt")
	if err := os.Symlink(real, fileLink); err != nil {
		t.Fatal(err)
	}
	// A relative link, through the linked directory, to a file not yet there.
	dangling := filepath.Join(linkDir, "new.txt")
	if err := os.Symlink(filepath.Join("dir", "new.txt"), dangling); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path, real string
		link             bool // path itself is a link
	}{
		{"LinkedFile", fileLink, real, true},
		{"LinkedDirectory", filepath.Join(dirLink, "wechat.txt"), real, false},
		{"DanglingRelativeLink", dangling, filepath.Join(realDir, "new.txt"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewFileStore(tt.path, nil)
			if s.Path() != tt.real {
				t.Errorf("Path() = %s, want the real file %s", s.Path(), tt.real)
			}
			if err := s.Save(ctx, KindAccessToken, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddCount(ctx, Counter{API: APIToken, Day: "2026-03-01"}, 1); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Lstat(tt.path); tt.link && (err != nil || fi.Mode()&os.ModeSymlink == 0) {
				t.Errorf("%s is no longer a symbolic link after Save (%v, %v)", tt.path, fi, err)
			}
			data, err := os.ReadFile(tt.real)
			if err != nil || gjson.GetBytes(data, "access_token").String() != "T" {
				t.Errorf("the real file holds %q, %v; want the saved token", data, err)
			}
			if _, err := os.Stat(tt.real + stateSuffix); err != nil {
				t.Errorf("no state file next to the real file: %v", err)
			}
			unlock := mustLock(t, s)
			if _, err := os.Lstat(tt.real + lockSuffix); err != nil {
				t.Errorf("no lock file next to the real file: %v", err)
			}
			entries, _ := os.ReadDir(linkDir)
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), lockSuffix) || strings.HasSuffix(e.Name(), guardSuffix) ||
					strings.HasSuffix(e.Name(), stateSuffix) || strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("%s written next to the link, want it next to the real file", e.Name())
				}
			}
			// A process that names the real file shares the lock.
			if !lockedElsewhere(t, NewFileStore(tt.real, nil)) {
				t.Error("a store on the real path took the lock held through the link")
			}
			unlock()
		})
	}
}

func TestFileStoreRefusesSymlinkedLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wechat.txt")
	victim := filepath.Join(dir, "victim")
	if err := os.Symlink(victim, path+lockSuffix); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	s := NewFileStore(path, nil)
	unlock, err := s.Lock(t.Context())
	if err == nil {
		unlock()
		t.Fatal("Lock through a symbolic link to another file succeeded")
	}
	if !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), path+lockSuffix) {
		t.Errorf("Lock = %v, want an error naming the linked lock file", err)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was created (%v): the lock followed the link", err)
	}
	// Removing the link lets the store lock again, on a regular file.
	if err := os.Remove(path + lockSuffix); err != nil {
		t.Fatal(err)
	}
	mustLock(t, s)()
	if fi, err := os.Lstat(path + lockSuffix); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("lock file after the link was removed: %v, %v; want a regular file", fi, err)
	}
}

func TestFileStoreOversizedFile(t *testing.T) {
	ctx := t.Context()
	for _, file := range []string{"store", "state"} {
		t.Run(file, func(t *testing.T) {
			logs := &syncBuffer{}
			path := filepath.Join(t.TempDir(), "wechat.txt")
			big := append([]byte(`{"access_token":"`), make([]byte, util.MaxFileSize)...)
			target := path
			if file == "state" {
				target = path + stateSuffix
			}
			if err := os.WriteFile(target, big, 0o600); err != nil {
				t.Fatal(err)
			}
			s := NewFileStore(path, slogTo(logs))
			for range 3 {
				for _, k := range []Kind{KindAccessToken, KindJSAPITicket} {
					if c, err := s.Load(ctx, k); err != nil || !c.IsZero() {
						t.Fatalf("Load(%s) of an oversized file = %+v, %v; want zero, nil", k, c, err)
					}
				}
				if n, err := s.Count(ctx, Counter{API: APIToken, Day: "2026-03-01"}); err != nil || n != 0 {
					t.Fatalf("Count with an oversized file = %d, %v; want 0, nil", n, err)
				}
			}
			if n := strings.Count(logs.String(), "larger than any store"); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs)
			}
			c := Credential{Value: "T", FetchedAt: epoch, ExpiresAt: epoch.Add(time.Hour)}
			for _, k := range []Kind{KindAccessToken, KindJSAPITicket} {
				if err := s.Save(ctx, k, c); err != nil {
					t.Fatalf("Save(%s) over an oversized file: %v", k, err)
				}
				if got, err := s.Load(ctx, k); err != nil || got.Value != "T" {
					t.Errorf("Load(%s) after Save = %+v, %v", k, got, err)
				}
			}
			if n, err := s.AddCount(ctx, Counter{API: APIToken, Day: "2026-03-01"}, 1); err != nil || n != 1 {
				t.Errorf("AddCount(1) = %d, %v; want 1", n, err)
			}
			if fi, err := os.Stat(target); err != nil || fi.Size() > 1024 {
				t.Errorf("the oversized file was not replaced: %v, %v", fi, err)
			}
		})
	}
}

func TestFileStoreForeignShapes(t *testing.T) {
	const secret = "FOREIGN-TOKEN-must-not-be-logged"
	exp := epoch.Add(time.Hour).UnixMilli()
	tests := []struct {
		name, doc, shape string
	}{
		{"LifetimeSeconds", `{"access_token":%q,"expires_in":7200}`, "lifetime in seconds"},
		{"EpochSeconds", fmt.Sprintf(`{"access_token":%%q,"expires_in":%d}`, exp/1000), "epoch seconds"},
		{"StringExpiry", fmt.Sprintf(`{"access_token":%%q,"expires_in":"%d"}`, exp), "expires_in is a string"},
		{"NoExpiry", `{"access_token":%q}`, "without expires_in"},
		{"CamelCase", fmt.Sprintf(`{"accessToken":%%q,"expireTime":%d}`, exp), "accessToken/expireTime"},
		{"Nested", fmt.Sprintf(`{"data":{"access_token":%%q,"expires_in":%d}}`, exp), `access_token nested under the key`},
		{"TokenNotString", `{"access_token":{"value":%q}}`, "access_token is a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			path := filepath.Join(t.TempDir(), "wechat.txt")
			if err := os.WriteFile(path, fmt.Appendf(nil, tt.doc, secret), 0o600); err != nil {
				t.Fatal(err)
			}
			s := NewFileStore(path, slogTo(logs))
			for range 3 {
				if c, err := s.Load(t.Context(), KindAccessToken); err != nil || !c.IsZero() {
					t.Fatalf("Load = %+v, %v; want zero, nil", c, err)
				}
			}
			out := logs.String()
			if n := strings.Count(out, "shape wxcentral does not read"); n != 1 {
				t.Errorf("warned %d times in 3 loads, want once:\n%s", n, out)
			}
			if !strings.Contains(out, tt.shape) {
				t.Errorf("warning does not name the shape %q:\n%s", tt.shape, out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("warning holds the token:\n%s", out)
			}
		})
	}

	// The shapes wxcentral writes itself, and the original app's, are not
	// foreign.
	for _, doc := range []string{
		``, `{}`, `{"access_token":"","expires_in":0}`,
		fmt.Sprintf(`{"access_token":"T","expires_in":%d}`, exp),
		fmt.Sprintf(`{"access_token":"T","expires_in":%d,"fetched_at":%d,"note":{"access_token":1}}`, exp, exp-1000),
	} {
		if shape := foreignShape(gjson.Parse(doc)); shape != "" {
			t.Errorf("foreignShape(%s) = %q, want none", doc, shape)
		}
	}
}

// TestFileStoreOriginalRewrites simulates the original Koa app refreshing
// between two of our fetches: it rewrites wechat.txt with access_token and
// expires_in only. The counts, tickets and cooldown live in the state file
// and survive; the fence still orders our saves against its token.
func TestFileStoreOriginalRewrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wechat.txt")
	s := NewFileStore(path, nil)
	day := QuotaDay(epoch)
	first := Credential{Value: "OURS-1", FetchedAt: epoch, ExpiresAt: epoch.Add(tokenLife)}
	ticket := Credential{Value: "TICKET", FetchedAt: epoch, ExpiresAt: epoch.Add(tokenLife)}
	pause := Credential{Value: "40164 x1", FetchedAt: epoch, ExpiresAt: epoch.Add(time.Minute)}
	if _, err := s.AddCount(ctx, Counter{API: APIToken, Day: day}, 1); err != nil {
		t.Fatal(err)
	}
	for k, c := range map[Kind]Credential{KindAccessToken: first, KindJSAPITicket: ticket, KindCooldown: pause} {
		if err := s.Save(ctx, k, c); err != nil {
			t.Fatal(err)
		}
	}

	// The original fetches an hour later and rewrites the file.
	theirs := epoch.Add(time.Hour)
	orig := fmt.Sprintf(`{"access_token":"NODE","expires_in":%d}`, theirs.Add(tokenLife).UnixMilli())
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}

	if n, err := s.Count(ctx, Counter{API: APIToken, Day: day}); err != nil || n != 1 {
		t.Errorf("count after the original's rewrite = %d, %v; want 1", n, err)
	}
	for k, want := range map[Kind]Credential{KindJSAPITicket: ticket, KindCooldown: pause} {
		if got, err := s.Load(ctx, k); err != nil || got.Value != want.Value || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.FetchedAt.Equal(want.FetchedAt) {
			t.Errorf("Load(%s) after the original's rewrite = %+v, %v; want %+v", k, got, err, want)
		}
	}
	got, err := s.Load(ctx, KindAccessToken)
	if err != nil || got.Value != "NODE" || !got.FetchedAt.Equal(theirs) {
		t.Errorf("Load(access_token) = %+v, %v; want NODE fetched %v (7200 s before its expiry)", got, err, theirs)
	}
	// A slow fetch of ours that began before theirs must not overwrite it.
	slow := Credential{Value: "OURS-SLOW", FetchedAt: theirs.Add(-time.Minute), ExpiresAt: theirs.Add(tokenLife - time.Minute)}
	if err := s.Save(ctx, KindAccessToken, slow); !errors.Is(err, ErrSuperseded) {
		t.Errorf("Save of a fetch older than the original's token = %v, want ErrSuperseded", err)
	}
	second := Credential{Value: "OURS-2", FetchedAt: theirs.Add(time.Hour), ExpiresAt: theirs.Add(time.Hour + tokenLife)}
	if err := s.Save(ctx, KindAccessToken, second); err != nil {
		t.Fatal(err)
	}
	if n, err := s.AddCount(ctx, Counter{API: APIToken, Day: day}, 1); err != nil || n != 2 {
		t.Errorf("count after our second fetch = %d, %v; want 2", n, err)
	}
	// wechat.txt is still the original's format, with the token alone.
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), `{"access_token":"OURS-2","expires_in":`) ||
		gjson.GetBytes(data, "fetches").Exists() || gjson.GetBytes(data, "tickets").Exists() {
		t.Errorf("wechat.txt = %s; want the token alone, in the original's format", data)
	}
	if fi, err := os.Stat(path + stateSuffix); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, %v; want mode 0600", fi, err)
	}
}

// TestFileStoreMigratesLegacyKeys: counts and tickets that an older
// version kept in wechat.txt are honoured (the larger count, the later
// ticket) and move to the state file when the token is next saved.
func TestFileStoreMigratesLegacyKeys(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wechat.txt")
	day := QuotaDay(epoch)
	legacy := fmt.Sprintf(`{"access_token":"T","expires_in":%d,"fetched_at":%d,`+
		`"tickets":{"jsapi_ticket":{"ticket":"OLD-TICKET","expires_at":%d,"fetched_at":%d}},`+
		`"fetches":{"token":{%q:7},"getticket":{%q:2}},"note":"keep"}`,
		epoch.Add(tokenLife).UnixMilli(), epoch.UnixMilli(), epoch.Add(tokenLife).UnixMilli(), epoch.UnixMilli(), day, day)
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewFileStore(path, nil)
	if n, err := s.Count(ctx, Counter{API: APIToken, Day: day}); err != nil || n != 7 {
		t.Errorf("legacy count = %d, %v; want 7", n, err)
	}
	if n, err := s.AddCount(ctx, Counter{API: APIToken, Day: day}, 1); err != nil || n != 8 {
		t.Errorf("count after one more = %d, %v; want 8", n, err)
	}
	if c, _ := s.Load(ctx, KindJSAPITicket); c.Value != "OLD-TICKET" {
		t.Errorf("legacy ticket = %q, want OLD-TICKET", c.Value)
	}
	if err := s.Save(ctx, KindAccessToken, Credential{Value: "T2", FetchedAt: epoch.Add(time.Hour), ExpiresAt: epoch.Add(time.Hour + tokenLife)}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if gjson.GetBytes(data, "fetches").Exists() || gjson.GetBytes(data, "tickets").Exists() || gjson.GetBytes(data, "note").String() != "keep" {
		t.Errorf("wechat.txt after a save = %s; want the legacy keys moved out and others kept", data)
	}
	for api, want := range map[string]int{APIToken: 8, APITicket: 2} {
		if n, err := s.Count(ctx, Counter{API: api, Day: day}); err != nil || n != want {
			t.Errorf("count of %s after the move = %d, %v; want %d", api, n, err, want)
		}
	}
	if c, _ := s.Load(ctx, KindJSAPITicket); c.Value != "OLD-TICKET" {
		t.Errorf("ticket after the move = %q, want OLD-TICKET", c.Value)
	}
}

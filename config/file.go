package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// A FileError is a problem in the config file, at a line and key. Load and
// Validate return them joined with errors.Join, with the *VarError values
// of the environment and flags.
type FileError struct {
	Path string // the config file, as WECHAT_CONFIG or -config names it
	Line int    // the line of Key, or of the [[app]] header when Key is missing; 0 when unknown
	Key  string // the key, e.g. "secret_env"; "" for the whole file or table
	App  string // the [[app]] table: its name, its app_id or "#n"; "" at the top level
	Err  error  // what is wrong; never contains a secret
}

// Error reads like wxcentral.toml:12: [[app]] "main": secret_env: WX_MAIN_SECRET is not set.
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.App != "" {
		b.WriteString("[[app]] ")
		if strings.HasPrefix(e.App, "#") {
			b.WriteString(e.App)
		} else {
			b.WriteString(strconv.Quote(e.App))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns e.Err.
func (e *FileError) Unwrap() error { return e.Err }

// An appSource is where an [[app]] table is in the config file.
type appSource struct {
	path string
	n    int            // 1-based position among the [[app]] tables
	line int            // the line of the [[app]] header
	keys map[string]key // the keys given, by setting name (secret, not secret_env)
}

// A key is a key as the file gives it, and its line.
type key struct {
	name string // e.g. secret_env
	line int
}

// The keys of an [[app]] table. Each secret key X may also be given as
// X_env (the name of an environment variable) or X_file (a file holding
// the value).
var (
	appPlainKeys  = []string{"name", "kind", "app_id", "token_api", "refresh_before", "callback_path"}
	appSecretKeys = []string{"secret", "callback_token", "previous_callback_token", "encoding_aes_key", "previous_encoding_aes_key"}
)

// perAppFlags are the settings of the single-app environment that an
// [[app]] table replaces; the config file refuses them at the top level.
var perAppFlags = []string{"app-id", "app-secret", "token", "previous-token", "encoding-aes-key", "previous-encoding-aes-key", "callback-path"}

// secretSuffixes are the ways of giving a secret key X: X, X_env, X_file.
var secretSuffixes = []string{"", "_env", "_file"}

// fileKey is the config file key of a setting: its flag name with '-'
// replaced by '_'.
func fileKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// An entry is a key = "value" line of the config file.
type entry struct {
	key
	val string
}

// A table is the top level or an [[app]] table of the config file, with
// its string entries in file order.
type table struct {
	n, line int // the [[app]] table's position (1-based) and header line; 0 at the top level
	entries []entry
}

// get returns the entry of a key.
func (t *table) get(name string) (entry, bool) {
	for _, e := range t.entries {
		if e.name == name {
			return e, true
		}
	}
	return entry{}, false
}

// label names an [[app]] table in errors: its name, its app_id or "#n".
func (t *table) label() string {
	if t.n == 0 {
		return ""
	}
	for _, k := range []string{"name", "app_id"} {
		if e, ok := t.get(k); ok && e.val != "" {
			return e.val
		}
	}
	return "#" + strconv.Itoa(t.n)
}

// A file is a config file read and parsed.
type file struct {
	path    string
	dir     string // the directory relative secret file paths start from
	private bool   // no group or other permission bits: literal secrets allowed
	top     table
	apps    []*table
	hasApps bool
	envVars []string // the variables the X_env keys name
	errs    []error
}

// errorf records a problem at an entry of t.
func (f *file) errorf(t *table, k key, format string, args ...any) {
	f.errs = append(f.errs, &FileError{Path: f.path, Line: k.line, Key: k.name, App: t.label(), Err: fmt.Errorf(format, args...)})
}

// readFile reads and parses the config file at path. An error reading it
// is a *VarError on WECHAT_CONFIG; problems in it are *FileError values in
// the file's errs.
func readFile(path string) (*file, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &VarError{Var: "WECHAT_CONFIG", Flag: "config", Err: fmt.Errorf("cannot open the config file %s: %w", path, pathErr(err))}
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err == nil && fi.IsDir() {
		err = errors.New("is a directory")
	}
	var data []byte
	if err == nil {
		data, err = io.ReadAll(fh)
	}
	if err != nil {
		return nil, &VarError{Var: "WECHAT_CONFIG", Flag: "config", Err: fmt.Errorf("cannot read the config file %s: %w", path, pathErr(err))}
	}
	f := &file{path: path, dir: filepath.Dir(path), private: fi.Mode().Perm()&0o077 == 0}
	f.parse(data)
	return f, nil
}

// pathErr returns the reason of a *fs.PathError, whose own message repeats
// the path.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parse fills f's tables from data. The TOML decoder checks the whole
// syntax first (duplicate keys included); the parser's syntax tree then
// gives the line of every key.
func (f *file) parse(data []byte) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		fe := &FileError{Path: f.path, Err: err}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			fe.Line, _ = de.Position()
			fe.Key = strings.Join(de.Key(), ".")
			fe.Err = errors.New(strings.TrimPrefix(de.Error(), "toml: "))
		}
		f.errs = append(f.errs, fe)
		// The apps are lost with the syntax; say whether there were any,
		// so that Validate does not ask for the single-app settings.
		f.hasApps = bytes.Contains(data, []byte("[[app]]"))
		return
	}
	p := &unstable.Parser{}
	p.Reset(data)
	// keyOf returns the key of a table header or key/value, its parts
	// joined with dots, and its line.
	keyOf := func(expr *unstable.Node) key {
		var k key
		it := expr.Key()
		for it.Next() {
			if k.line == 0 {
				k.line = p.Shape(it.Node().Raw).Start.Line
			} else {
				k.name += "."
			}
			k.name += string(it.Node().Data)
		}
		return k
	}
	cur := &f.top
	var skip bool // in a table the file may not have: its keys are not reported again
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.Table, unstable.ArrayTable:
			k := keyOf(expr)
			name := k.name
			switch {
			case expr.Kind == unstable.ArrayTable && name == "app":
				f.hasApps = true
				cur = &table{n: len(f.apps) + 1, line: k.line}
				f.apps = append(f.apps, cur)
				skip = false
				continue
			case name == "app":
				f.errorf(&f.top, key{line: k.line}, "[app] is a single table: write [[app]], once for each account")
			case expr.Kind == unstable.ArrayTable:
				f.errorf(&f.top, key{line: k.line}, "unknown table [[%s]]: the file has global settings and [[app]] tables", name)
			default:
				f.errorf(&f.top, key{line: k.line}, "unknown table [%s]: the file has global settings and [[app]] tables", name)
			}
			skip = true
		case unstable.KeyValue:
			if skip {
				continue
			}
			k := keyOf(expr)
			v := expr.Value()
			if !f.known(cur, k) {
				continue
			}
			if v.Kind != unstable.String {
				f.errorf(cur, k, "is %s, not a string: write %s = \"…\"", kindName(v.Kind), k.name)
				continue
			}
			cur.entries = append(cur.entries, entry{key: k, val: string(v.Data)})
		}
	}
	if err := p.Error(); err != nil { // the decoder accepted it, so this is not expected
		f.errs = append(f.errs, &FileError{Path: f.path, Err: err})
	}
}

// known reports whether k is a key of t, and records a problem if not.
func (f *file) known(t *table, k key) bool {
	var keys []string
	if t.n > 0 {
		keys = appKeys()
	} else {
		keys = globalKeys()
	}
	if slices.Contains(keys, k.name) {
		return true
	}
	if t.n == 0 && (slices.Contains(appKeys(), k.name) || slices.Contains(perAppKeys(), k.name)) {
		f.errorf(t, k, "is a setting of one account: put it in an [[app]] table")
		return false
	}
	where := "at the top level"
	if t.n > 0 {
		where = "in [[app]] #" + strconv.Itoa(t.n)
	}
	if m := nearest(k.name, keys); m != "" {
		f.errorf(t, k, "unknown key %s %s (did you mean %s?)", k.name, where, m)
	} else {
		f.errorf(t, k, "unknown key %s %s", k.name, where)
	}
	return false
}

// appKeys returns every key an [[app]] table may have.
func appKeys() []string {
	keys := slices.Clone(appPlainKeys)
	for _, s := range appSecretKeys {
		for _, suf := range secretSuffixes {
			keys = append(keys, s+suf)
		}
	}
	return keys
}

// globalKeys returns every key the top level may have: the settings but
// the per-app ones and the config file itself, a secret one also with
// _env and _file.
func globalKeys() []string {
	return settingKeys(func(flag string) bool { return flag != "config" && !slices.Contains(perAppFlags, flag) })
}

// perAppKeys returns the top-level keys of the per-app settings, which the
// file refuses (app_secret, app_secret_env, …).
func perAppKeys() []string {
	return settingKeys(func(flag string) bool { return slices.Contains(perAppFlags, flag) })
}

// settingKeys returns the file keys of the settings whose flag name is
// chosen, a secret one also with _env and _file.
func settingKeys(chosen func(flag string) bool) []string {
	var keys []string
	for _, s := range settings() {
		if !chosen(s.flag) {
			continue
		}
		x := fileKey(s.flag)
		keys = append(keys, x)
		if s.secret {
			keys = append(keys, x+"_env", x+"_file")
		}
	}
	return keys
}

// nearest returns the key of keys closest to k if it is a likely typo
// (at most two edits away), else "".
func nearest(k string, keys []string) string {
	best, bestD := "", 3
	for _, c := range keys {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, counting a swap of
// two neighbouring characters as one edit.
func editDistance(a, b string) int {
	// d[i][j] is the distance of a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// kindName names a TOML value kind for an error message.
func kindName(k unstable.Kind) string {
	switch k {
	case unstable.Integer, unstable.Float:
		return "a number"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	default:
		return "a date or time"
	}
}

// secret returns the secret given in t by one of X, X_env and X_file, and
// the key that gave it; ok is false when none is given. Problems are
// recorded in f.errs and never repeat a value.
func (f *file) secret(t *table, x string, lookup LookupFunc) (v Secret, k key, ok bool) {
	var given []entry
	for _, suf := range secretSuffixes {
		if e, ok := t.get(x + suf); ok {
			given = append(given, e)
		}
	}
	if len(given) == 0 {
		return "", key{}, false
	}
	e := given[0]
	if len(given) > 1 {
		f.errorf(t, given[1].key, "give only one of %s, %s_env and %s_file (%s is on line %d)", x, x, x, e.name, e.line)
		return "", e.key, true
	}
	switch e.name {
	case x:
		if !f.private {
			f.errorf(t, e.key, "a secret written in a config file that group or others can read: chmod 600 %s, or use %s_env or %s_file", f.path, x, x)
			return "", e.key, true
		}
		return Secret(e.val), e.key, true
	case x + "_env":
		if e.val == "" {
			f.errorf(t, e.key, "empty: name the environment variable that holds the value")
			return "", e.key, true
		}
		f.envVars = append(f.envVars, e.val)
		var val string
		var set bool
		if lookup != nil {
			val, set = lookup(e.val)
		}
		switch {
		case !set:
			f.errorf(t, e.key, "%s is not set", e.val)
		case val == "":
			f.errorf(t, e.key, "%s is empty", e.val)
		}
		return Secret(val), e.key, true
	default: // X_file
		if e.val == "" {
			f.errorf(t, e.key, "empty: name the file that holds the value")
			return "", e.key, true
		}
		p := e.val
		if !filepath.IsAbs(p) {
			p = filepath.Join(f.dir, p)
		}
		b, err := readSecretFile(p)
		if err != nil {
			f.errorf(t, e.key, "cannot read %s: %v", p, pathErr(err))
			return "", e.key, true
		}
		s := string(b)
		if strings.HasSuffix(s, "\r\n") {
			s = s[:len(s)-2]
		} else {
			s = strings.TrimSuffix(s, "\n")
		}
		if s == "" {
			f.errorf(t, e.key, "%s is empty", p)
		}
		return Secret(s), e.key, true
	}
}

// maxSecretFile is the largest secret file read: a secret is short, and a
// mistaken path to a device or a big file must not hang or fill memory.
const maxSecretFile = 64 << 10

// readSecretFile reads the file at path, which must hold at most
// maxSecretFile bytes.
func readSecretFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxSecretFile+1))
	if err == nil && len(b) > maxSecretFile {
		err = fmt.Errorf("larger than %d KiB, which no secret is", maxSecretFile>>10)
	}
	return b, err
}

// A fileSource is what Validate needs to know of the config file Load
// read.
type fileSource struct {
	path    string
	hasApps bool           // the file has [[app]] tables, even if Load could not read them
	globals map[string]key // the keys of the settings whose value is the file's, by flag name
	envVars []string       // the variables the file's X_env keys name
}

// global returns the key of the file that gave the setting of the flag
// name, if the setting has the file's value.
func (s *fileSource) global(flag string) (key, bool) {
	if s == nil {
		return key{}, false
	}
	k, ok := s.globals[flag]
	return k, ok
}

// applyGlobals sets c's settings from the file's top level, and returns
// the keys that set them, by flag name.
func (f *file) applyGlobals(c *Config, lookup LookupFunc) map[string]key {
	set := map[string]key{}
	for _, s := range settings() {
		x := fileKey(s.flag)
		if s.flag == "config" || slices.Contains(perAppFlags, s.flag) {
			continue
		}
		if s.secret {
			if v, k, ok := f.secret(&f.top, x, lookup); ok && v != "" {
				if err := s.set(c, string(v)); err != nil {
					f.errorf(&f.top, k, "%v", err)
				} else {
					set[s.flag] = k
				}
			}
			continue
		}
		if e, ok := f.top.get(x); ok {
			if err := s.set(c, e.val); err != nil {
				f.errorf(&f.top, e.key, "%v", err)
			} else {
				set[s.flag] = e.key
			}
		}
	}
	return set
}

// buildApps returns the file's [[app]] tables as Apps, the global
// settings of c filled in where a table leaves them out.
func (f *file) buildApps(c Config, lookup LookupFunc) []App {
	var apps []App
	for _, t := range f.apps {
		src := &appSource{path: f.path, n: t.n, line: t.line, keys: map[string]key{}}
		a := App{Kind: OfficialAccount, TokenAPI: c.TokenAPI, RefreshBefore: c.RefreshBefore, src: src}
		for _, e := range t.entries {
			switch e.name {
			case "name":
				a.Name = e.val
			case "kind":
				a.Kind = AppKind(e.val)
			case "app_id":
				a.AppID = e.val
			case "token_api":
				a.TokenAPI = e.val
			case "callback_path":
				a.CallbackPath = e.val
			case "refresh_before":
				d, err := parseDuration(e.val)
				if err != nil {
					f.errorf(t, e.key, "%v", err)
					continue
				}
				a.RefreshBefore = d
			default:
				continue // a secret key, resolved below
			}
			src.keys[e.name] = e.key
		}
		for i, dst := range []*Secret{&a.Secret, &a.CallbackToken, &a.PreviousCallbackToken, &a.EncodingAESKey, &a.PreviousEncodingAESKey} {
			x := appSecretKeys[i]
			if v, k, ok := f.secret(t, x, lookup); ok {
				*dst = v
				src.keys[x] = k
			}
		}
		if a.Name == "" {
			if _, named := src.keys["name"]; !named {
				a.Name = a.AppID
			}
		}
		apps = append(apps, a)
	}
	return apps
}

// vars returns the variables the file's X_env keys name.
func (s *fileSource) vars() []string {
	if s == nil {
		return nil
	}
	return s.envVars
}

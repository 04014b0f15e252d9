package config

import (
	"strconv"
	"strings"
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

package config

import "log/slog"

// redacted is what a set secret prints as.
const redacted = "[redacted]"

// A Secret is a configuration value that must never reach a log line, an
// error or a printout: the AppSecret, the callback token, the
// EncodingAESKey, the admin key. Every way of printing it (fmt's verbs,
// slog, encoding/json) shows "[redacted]" when it is set and "" when it is
// not, so a printout still tells which secrets are configured. Use
// string(s) to get the value where it is needed.
type Secret string

// String returns "[redacted]", or "" for an unset secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is String quoted, for %#v.
func (s Secret) GoString() string {
	return `"` + s.String() + `"`
}

// LogValue makes slog print the secret redacted.
func (s Secret) LogValue() slog.Value {
	return slog.StringValue(s.String())
}

// MarshalText makes encoding/json and other text encoders write the secret
// redacted. There is deliberately no UnmarshalText: a redacted secret read
// back would be wrong.
func (s Secret) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

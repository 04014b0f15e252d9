package wechat

import "time"

// Held returns the token the keeper holds in memory when it is valid now,
// without waiting, fetching or reading the Store; ok is false without one.
// It never starts a refresh: a caller that must have a token calls Token.
// The gateway uses it to recognise the tokens this server handed out.
func (w *Wechat) Held() (c Credential, ok bool) {
	h := w.token.cur.Load()
	if h == nil || !h.ValidAt(w.clock.Now()) {
		return Credential{}, false
	}
	return h.Credential, true
}

// Replaced returns the token the keeper held before the one it holds now,
// and when it stopped serving it; ok is false if it never replaced one.
// WeChat keeps accepting a replaced token for about five minutes: the
// gateway accepts it from callers for as long.
func (w *Wechat) Replaced() (c Credential, at time.Time, ok bool) {
	p := w.token.replaced.Load()
	if p == nil {
		return Credential{}, time.Time{}, false
	}
	return p.Credential, p.at, true
}

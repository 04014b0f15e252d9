package wechat

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

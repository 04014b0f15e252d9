package middleware

import "github.com/wxcentral/wxcentral/middleware/dedupe"

// WithDedupe sets the store that keeps WeChat's re-deliveries of a push
// from running the next handler twice. WeChat re-sends a push when the
// reply takes more than 5 s, three deliveries in all over about 15 s; the
// middleware keys each push by its message.Message.DedupeKey, runs the next
// handler for the first delivery only, and answers every later delivery
// with the first one's reply for as long as a triple of the push can be
// inside the timestamp window (twice the window and a second, ten minutes
// with the default; at least dedupe.DefaultTTL) (status, Content-Type
// and body; other headers reach the first delivery only), encrypted afresh
// in safe mode. A reply with a 5xx status is not kept, so the next delivery
// runs the handler again. See package dedupe.
//
// The default is a dedupe.Memory of ReplayMaxEntries entries, one per
// call of Verify, which is right for one process. Servers behind a load balancer share a
// redisstore.NewDedupe store instead. WithDedupe(nil) turns deduplication off:
// then every delivery runs the next handler, and in plain mode its reply
// goes to the connection unbuffered.
//
// A store that is not a dedupe.Memory (redisstore.Dedupe, or one of the
// application's own) also keeps the plain-mode replay check's triples,
// under keys that start with "replay|", so that every host sharing it
// refuses a signature another host accepted with another body. With a
// dedupe.Memory or none, each Verify keeps them in a Memory of its own
// (see the package documentation). The replay check is never off.
func WithDedupe(store dedupe.Store) Option {
	return func(s *settings) {
		s.dedupe, s.dedupeSet = store, true
	}
}

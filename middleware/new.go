package middleware

import "net/http"

// New is the callback endpoint in one line: Verify(token, opts...) around
// h, which is usually a *message.Router:
//
//	var rt message.Router
//	rt.HandleFunc(message.TypeText, func(ctx context.Context, m *message.Message) (message.Reply, error) {
//		return message.Text{Content: "you said: " + m.Content}, nil
//	})
//	http.Handle("/wechat", middleware.New(token, &rt))
//
// The stack it builds, outermost first, is the one Verify builds:
//
//  1. the signature check (and the GET handshake's echo), the timestamp
//     window, the body limit;
//  2. in safe mode, msg_signature and decryption (WithAES);
//  3. the replay check (a signed URL with another body is refused; an
//     identical replay is answered from the dedupe, in every mode);
//  4. the retry dedupe, dedupe.Middleware over the store of WithDedupe (a
//     dedupe.Memory unless that says otherwise; WithDedupe(nil) leaves it
//     out);
//  5. h, with the parsed push in its request's context;
//  6. in safe mode, the reply's encryption.
//
// The dedupe is the exported dedupe.Middleware, so a chain built some
// other way can place it itself; Verify includes it by default so that a
// handler mounted behind Verify alone never runs twice for one push.
func New(token string, h http.Handler, opts ...Option) http.Handler {
	return Verify(token, opts...)(h)
}

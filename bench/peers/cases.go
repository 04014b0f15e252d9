package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	oaconfig "github.com/silenceper/wechat/v2/officialaccount/config"
	oamessage "github.com/silenceper/wechat/v2/officialaccount/message"
	swutil "github.com/silenceper/wechat/v2/util"

	"github.com/wxcentral/wxcentral/middleware"
	"github.com/wxcentral/wxcentral/middleware/message"
	"github.com/wxcentral/wxcentral/util"
	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/central"
	"github.com/wxcentral/wxcentral/wechat/wechattest"
)

// A worker is one implementation doing one case. The harness calls
// prepare (timer stopped) to build the inputs of the next n operations,
// do for each of them (timed), and check (timer stopped) to verify
// every one of their outputs.
type worker interface {
	prepare(n int)
	do(j int)
	check(n int) error
}

// An impl is one implementation of a case.
type impl struct {
	name string
	new  func(e *env) worker
}

// A benchCase is one piece of work, done by each implementation.
type benchCase struct {
	name  string
	batch int    // operations between two checks
	impls []impl // wxcentral first
}

const (
	wxcentralName  = "wxcentral"
	silenceperName = "silenceper/wechat"
)

// cases are the work measured, in the order of the table.
var cases = []benchCase{
	{"signature check", 4096, []impl{
		{wxcentralName, func(*env) worker {
			return &sigWorker{verify: func(sig string) bool { return util.VerifySignature(sig, vecToken, vecTS, vecNonce) }}
		}},
		{silenceperName, func(*env) worker {
			return &sigWorker{verify: func(sig string) bool { return sig == swutil.Signature(vecToken, vecTS, vecNonce) }}
		}},
	}},
	{"GET handshake", 256, []impl{
		{wxcentralName, func(e *env) worker { return newHTTPWorker(e.wxPlain, handshakeInputs) }},
		{silenceperName, func(e *env) worker { return newHTTPWorker(e.swHandler, handshakeInputs) }},
	}},
	{"text push → text reply", 256, []impl{
		{wxcentralName, func(e *env) worker { return newHTTPWorker(e.wxPlain, plainInputs) }},
		{silenceperName, func(e *env) worker { return newHTTPWorker(e.swHandler, plainInputs) }},
	}},
	{"safe mode push → reply", 256, []impl{
		{wxcentralName, func(e *env) worker { return newHTTPWorker(e.wxSafe, safeInputs) }},
		{silenceperName, func(e *env) worker { return newHTTPWorker(e.swSafeHandler, safeInputs) }},
	}},
	{"cached token, local", 4096, []impl{
		{wxcentralName, func(e *env) worker {
			return &tokenWorker{want: e.token, get: func() (string, error) { return e.keeper.AccessToken(e.ctx) }}
		}},
		{silenceperName, func(e *env) worker {
			return &tokenWorker{want: e.token, get: func() (string, error) { return e.sw.GetAccessTokenContext(e.ctx) }}
		}},
	}},
	{"cached token, remote client", 4096, []impl{
		{wxcentralName, func(e *env) worker {
			return &tokenWorker{want: e.token, get: func() (string, error) { return e.remote.AccessToken(e.ctx) }}
		}},
	}},
	{"JS-SDK config", 1024, []impl{
		{wxcentralName, func(e *env) worker {
			return &jsWorker{ticket: e.ticket, get: func() (jsConfig, error) {
				c, err := e.keeper.JSSDKConfig(e.ctx, pageURL)
				return jsConfig{c.AppID, c.NonceStr, c.Signature, c.Timestamp}, err
			}}
		}},
		{silenceperName, func(e *env) worker {
			return &jsWorker{ticket: e.ticket, get: func() (jsConfig, error) {
				c, err := e.sw.GetJs().GetConfig(pageURL)
				if err != nil {
					return jsConfig{}, err
				}
				return jsConfig{c.AppID, c.NonceStr, c.Signature, c.Timestamp}, nil
			}}
		}},
	}},
}

// env holds what the implementations serve from: one account, its token
// and jsapi_ticket the same on both sides.
type env struct {
	ctx           context.Context
	token, ticket string

	fake   *wechattest.Server
	keeper *wechat.Wechat
	admin  *httptest.Server
	remote *wechat.Remote
	dir    string

	wxPlain, wxSafe          http.Handler
	sw                       *officialaccount.OfficialAccount
	swHandler, swSafeHandler http.Handler
}

// newEnv sets both implementations up as a user would: wxcentral's keeper
// fetches the token and ticket from the fake WeChat platform once, over
// HTTP, and serves them from memory; silenceper/wechat gets the same
// token and ticket in its memory cache, since its API host cannot be
// changed (it would otherwise fetch them from WeChat).
func newEnv(ctx context.Context) (e *env, err error) {
	e = &env{ctx: ctx}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.fake = wechattest.NewServer(wechattest.WithApp(appID, appSecret))
	if e.dir, err = os.MkdirTemp("", "peers"); err != nil {
		return e, err
	}
	e.keeper, err = wechat.New(ctx, wechat.Options{
		AppID: appID, AppSecret: appSecret, APIBase: e.fake.URL,
		Store: wechat.NewFileStore(filepath.Join(e.dir, "wechat.txt"), nil),
	})
	if err != nil {
		return e, err
	}
	if e.token, err = e.keeper.AccessToken(ctx); err != nil {
		return e, err
	}
	t, err := e.keeper.JSAPITicket(ctx)
	if err != nil {
		return e, err
	}
	e.ticket = t.Value

	// A business server elsewhere: the admin API and a Remote on it.
	e.admin = httptest.NewServer(central.NewAdmin(e.keeper, central.AdminOptions{}))
	if e.remote, err = wechat.NewRemote(e.admin.URL, "", wechat.RemoteOptions{}); err != nil {
		return e, err
	}
	if tok, err := e.remote.AccessToken(ctx); err != nil || tok != e.token {
		return e, fmt.Errorf("remote token: %v (same as the keeper's: %v)", err, tok == e.token)
	}

	// wxcentral's callback endpoint: a message.Router behind New, logging
	// to nowhere (silenceper logs nothing for an accepted callback either).
	var rt message.Router
	rt.HandleFunc(message.TypeText, func(_ context.Context, m *message.Message) (message.Reply, error) {
		return message.Text{Content: "you said: " + m.Content}, nil
	})
	quiet := middleware.WithLogger(slog.New(slog.DiscardHandler))
	e.wxPlain = middleware.New(token, &rt, quiet)
	e.wxSafe = middleware.New(token, &rt, quiet, middleware.WithAES(appID, aesKey))

	// silenceper/wechat's, as its README writes it.
	e.sw = silenceper(e.token, e.ticket)
	e.swHandler = silenceperHandler(e.sw)
	e.swSafeHandler = e.swHandler
	return e, nil
}

func (e *env) close() {
	if e.admin != nil {
		e.admin.Close()
	}
	if e.keeper != nil {
		e.keeper.Close()
	}
	if e.fake != nil {
		e.fake.Close()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// silenceper returns a silenceper/wechat official account whose memory
// cache holds tok and ticket under the keys its credential package reads.
func silenceper(tok, ticket string) *officialaccount.OfficialAccount {
	mem := cache.NewMemory()
	const prefix = "gowechat_officialaccount_" // credential.CacheKeyOfficialAccountPrefix
	mem.Set(prefix+"_access_token_"+appID, tok, time.Hour)
	mem.Set(prefix+"_jsapi_ticket_"+appID, ticket, time.Hour)
	return officialaccount.NewOfficialAccount(&oaconfig.Config{
		AppID: appID, AppSecret: appSecret, Token: token, EncodingAESKey: aesKey, Cache: mem,
	})
}

// silenceperHandler is silenceper/wechat's callback endpoint: GetServer,
// a message handler that answers a text with a text, Serve and Send. It
// serves plain and safe mode alike (encrypt_type decides).
func silenceperHandler(oa *officialaccount.OfficialAccount) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv := oa.GetServer(r, w)
		srv.SetMessageHandler(func(m *oamessage.MixMessage) *oamessage.Reply {
			if m.MsgType != oamessage.MsgTypeText {
				return nil
			}
			return &oamessage.Reply{MsgType: oamessage.MsgTypeText, MsgData: oamessage.NewText("you said: " + m.Content)}
		})
		if err := srv.Serve(); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if err := srv.Send(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// sigWorker checks the signature vector, and every other time a wrong
// signature, which must be refused.
type sigWorker struct {
	verify func(sig string) bool
	out    [4096]bool
}

func (w *sigWorker) prepare(int) {}

func (w *sigWorker) do(j int) {
	if j&1 == 0 {
		w.out[j] = w.verify(vecSig)
	} else {
		w.out[j] = w.verify(vecBadSig)
	}
}

func (w *sigWorker) check(n int) error {
	for j := range n {
		if want := j&1 == 0; w.out[j] != want {
			return fmt.Errorf("signature %d: verified %v, want %v", j, w.out[j], want)
		}
	}
	return nil
}

// tokenWorker reads the cached access token.
type tokenWorker struct {
	get  func() (string, error)
	want string
	out  [4096]string
	errs [4096]error
}

func (w *tokenWorker) prepare(int) {}

func (w *tokenWorker) do(j int) { w.out[j], w.errs[j] = w.get() }

func (w *tokenWorker) check(n int) error {
	for j := range n {
		if w.errs[j] != nil {
			return fmt.Errorf("token read: %w", w.errs[j])
		}
		if w.out[j] != w.want {
			return errors.New("token read: not the token the keeper holds")
		}
	}
	return nil
}

// jsWorker signs JS-SDK configurations for pageURL.
type jsWorker struct {
	get    func() (jsConfig, error)
	ticket string
	out    [1024]jsConfig
	errs   [1024]error
}

func (w *jsWorker) prepare(int) {}

func (w *jsWorker) do(j int) { w.out[j], w.errs[j] = w.get() }

func (w *jsWorker) check(n int) error {
	now := time.Now()
	for j := range n {
		if w.errs[j] != nil {
			return fmt.Errorf("JS-SDK config: %w", w.errs[j])
		}
		if err := checkJS(w.out[j], w.ticket, now); err != nil {
			return err
		}
		if j > 0 && w.out[j].NonceStr == w.out[j-1].NonceStr && w.out[j].Timestamp == w.out[j-1].Timestamp {
			return fmt.Errorf("JS-SDK config: nonceStr %q twice in a row", w.out[j].NonceStr)
		}
	}
	return nil
}

// inputs makes the callback number seq, signed for now, and the check of
// its reply.
type inputs struct {
	make  func(seq int, now time.Time) push
	check func(code int, body []byte, want string, now time.Time) error
}

var (
	handshakeInputs = inputs{
		func(seq int, now time.Time) push { return handshake(seq, now) },
		func(code int, body []byte, want string, _ time.Time) error {
			if code != http.StatusOK || string(body) != want {
				return fmt.Errorf("handshake: %d %.80q, want 200 %q", code, body, want)
			}
			return nil
		},
	}
	plainInputs = inputs{
		func(seq int, now time.Time) push { return textPush(seq, now, false) },
		func(code int, body []byte, want string, now time.Time) error {
			if code != http.StatusOK {
				return fmt.Errorf("push: %d %.80q", code, body)
			}
			return checkText(body, want, now)
		},
	}
	safeInputs = inputs{
		func(seq int, now time.Time) push { return textPush(seq, now, true) },
		func(code int, body []byte, want string, now time.Time) error {
			if code != http.StatusOK {
				return fmt.Errorf("safe push: %d %.80q", code, body)
			}
			return checkSafe(body, want, now)
		},
	}
)

// httpWorker sends callbacks through a handler, each a new message with
// a nonce of its own, signed for the current time: every one is a first
// delivery that runs the message handler, as on a live server.
type httpWorker struct {
	h    http.Handler
	in   inputs
	seq  int
	reqs []*http.Request
	want []string
	out  []response
}

func newHTTPWorker(h http.Handler, in inputs) *httpWorker {
	return &httpWorker{h: h, in: in}
}

func (w *httpWorker) prepare(n int) {
	if len(w.out) < n {
		w.reqs, w.want = make([]*http.Request, n), make([]string, n)
		w.out = make([]response, n)
		for j := range w.out {
			w.out[j].h = http.Header{}
		}
	}
	now := time.Now()
	for j := range n {
		w.seq++
		p := w.in.make(w.seq, now)
		r := httptest.NewRequest(p.method, p.target, strings.NewReader(p.body))
		if p.contentType != "" {
			r.Header.Set("Content-Type", p.contentType)
		}
		w.reqs[j], w.want[j] = r, p.want
		w.out[j].reset()
	}
}

func (w *httpWorker) do(j int) { w.h.ServeHTTP(&w.out[j], w.reqs[j]) }

func (w *httpWorker) check(n int) error {
	now := time.Now()
	for j := range n {
		if err := w.in.check(w.out[j].code, w.out[j].body, w.want[j], now); err != nil {
			return err
		}
	}
	return nil
}

// response is a ResponseWriter that keeps the status and the body in
// buffers reused from one batch to the next.
type response struct {
	h    http.Header
	code int
	body []byte
}

func (w *response) reset() {
	clear(w.h)
	w.code, w.body = 0, w.body[:0]
}

func (w *response) Header() http.Header { return w.h }

func (w *response) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

package wechattest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxcentral/wxcentral/util"
)

// Defaults of Callback.
const (
	// DefaultCallbackTimeout is how long WeChat waits for a callback's
	// answer before it drops the connection (and re-sends a message).
	DefaultCallbackTimeout = 5 * time.Second

	// DefaultDeliveries is how many times in all WeChat sends a message
	// that gets no answer in time: the original and two retries, as
	// observed (the documentation's "重试三次" could also mean four).
	DefaultDeliveries = 3

	// DefaultOpenID and DefaultOfficialAccount fill a Message's
	// FromUserName and ToUserName when they are empty.
	DefaultOpenID          = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
	DefaultOfficialAccount = "gh_0123456789ab"
)

// Clock is util.Clock, kept so existing code compiles. A *Platform is
// one, so a Callback can share the fake platform's clock.
type Clock = util.Clock

// A Sealer puts a Callback in safe mode (安全模式): it encrypts each message
// and decrypts the replies. NewAESSealer returns the one that does what
// WeChat does; a nil Sealer means plain mode.
type Sealer interface {
	// Seal returns the request body carrying plain encrypted
	// (<xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml>) and its
	// msg_signature over timestamp and nonce.
	Seal(plain []byte, timestamp, nonce string) (body []byte, msgSignature string, err error)

	// Open checks the signature and app ID of an encrypted reply and
	// returns the plain reply. It is not called for "" or "success".
	Open(reply []byte) (plain []byte, err error)
}

// A Callback behaves as WeChat does towards a developer's server: the GET
// check made when the server configuration (服务器配置) is saved, and
// signed POSTs of the messages users send. The zero value is not usable:
// set URL and Token.
type Callback struct {
	// URL is the developer's server URL, as entered on the configuration
	// page. It may carry a query of its own.
	URL string

	// Token is the callback Token of the configuration page, the key of
	// the signatures.
	Token string

	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client

	// Clock gives the timestamps; nil means the real time.
	Clock Clock

	// Timeout is how long each request may take (default 5 s).
	Timeout time.Duration

	// Deliveries is how many times in all Send posts a message that gets
	// no answer in time (default 3).
	Deliveries int

	// Sealer, if set, sends messages in safe mode (encrypt_type=aes).
	Sealer Sealer

	// Format is the data format (数据格式) of the pushes: FormatXML (the
	// default, and the only one an official account has) or FormatJSON,
	// which a Mini Program or Mini Game may choose. Replies must come in
	// the same format; in safe mode the envelope is
	// {"ToUserName":"…","Encrypt":"…"}.
	Format Format
}

// A Format is the data format of a Callback's pushes.
type Format string

// The push formats.
const (
	FormatXML  Format = "xml"
	FormatJSON Format = "json"
)

// ParseFormat parses "xml" or "json"; "" means FormatXML.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case "":
		return FormatXML, nil
	case FormatXML, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown push format %q: want xml or json", s)
}

func (c *Callback) json() bool { return c.Format == FormatJSON }

// An HTTPError is an answer with a status other than 200.
type HTTPError struct {
	StatusCode int
	Body       string // the start of the body
}

// Error gives the status and the start of the body.
func (e *HTTPError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("got HTTP %d with an empty body", e.StatusCode)
	}
	return fmt.Sprintf("got HTTP %d: %s", e.StatusCode, e.Body)
}

// ErrNoAnswer is wrapped by the errors of Verify and Send when the server
// did not answer in time.
var ErrNoAnswer = errors.New("no answer in time")

func (c *Callback) now() time.Time {
	if c.Clock != nil {
		return c.Clock.Now()
	}
	return time.Now()
}

func (c *Callback) client() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

func (c *Callback) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultCallbackTimeout
}

// target returns c.URL with q added to its query.
func (c *Callback) target(q url.Values) (string, error) {
	u, err := util.ParseHTTPURL(c.URL)
	if err != nil {
		return "", fmt.Errorf("wechattest: callback URL %q must be an http:// or https:// URL with a host: %v", c.URL, err)
	}
	old := u.Query()
	for k, v := range q {
		old[k] = v
	}
	u.RawQuery = old.Encode()
	return u.String(), nil
}

// Verify makes the check WeChat makes when the server configuration is
// saved: a GET with signature, timestamp, nonce and a random echostr. It
// succeeds when the server answers HTTP 200 with echostr (surrounding white
// space is tolerated).
func (c *Callback) Verify(ctx context.Context) error {
	ts := strconv.FormatInt(c.now().Unix(), 10)
	nonce, echo := randomDigits(10), randomDigits(19)
	u, err := c.target(url.Values{
		"signature": {util.Signature(c.Token, ts, nonce)},
		"timestamp": {ts},
		"nonce":     {nonce},
		"echostr":   {echo},
	})
	if err != nil {
		return err
	}
	body, err := c.do(ctx, http.MethodGet, u, nil, false)
	if err != nil {
		return err
	}
	switch got := string(body); {
	case got == echo:
		return nil
	case strings.TrimSpace(got) == echo:
		return nil
	case got == "":
		return fmt.Errorf("answered HTTP 200 with an empty body, not the echostr %s", echo)
	default:
		return fmt.Errorf("answered %q, not the echostr %s", excerpt(body), echo)
	}
}

// Send posts msg as WeChat does when a user sends a message or an event
// happens: XML (or JSON, see Format) signed with signature, timestamp,
// nonce, and the sender in openid. If no answer comes within Timeout it sends the message again, up
// to Deliveries times in all; a transport error is retried the same way,
// an HTTP status other than 200 is not.
//
// It returns the reply body (in safe mode, decrypted). "" and "success"
// mean "no reply"; anything else must be a reply in the push's format
// addressed back to the sender, or Send returns the body with an error
// saying what is wrong.
func (c *Callback) Send(ctx context.Context, msg Message) (reply []byte, err error) {
	now := c.now()
	msg.fill(now)
	body := msg.XML()
	if c.json() {
		body = msg.JSON()
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := randomDigits(10)
	q := url.Values{
		"signature": {util.Signature(c.Token, ts, nonce)},
		"timestamp": {ts},
		"nonce":     {nonce},
		"openid":    {msg.FromUserName},
	}
	if c.Sealer != nil {
		sealed, sig, err := c.Sealer.Seal(body, ts, nonce)
		if err != nil {
			return nil, fmt.Errorf("wechattest: seal message: %w", err)
		}
		body = sealed
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", sig)
	}
	u, err := c.target(q)
	if err != nil {
		return nil, err
	}
	n := c.Deliveries
	if n <= 0 {
		n = DefaultDeliveries
	}
	for i := 1; ; i++ {
		reply, err = c.do(ctx, http.MethodPost, u, body, c.json())
		if err == nil {
			break
		}
		var he *HTTPError
		if errors.As(err, &he) || ctx.Err() != nil || i == n {
			if i > 1 {
				err = fmt.Errorf("after %d deliveries: %w", i, err)
			}
			return nil, err
		}
	}
	if isNoReply(reply) {
		return reply, nil
	}
	if c.Sealer != nil {
		plain, err := c.Sealer.Open(reply)
		if err != nil {
			return reply, fmt.Errorf("safe mode: %w", err)
		}
		reply = plain
	}
	return reply, checkReply(reply, msg, c.Sealer != nil, c.json())
}

func isNoReply(b []byte) bool {
	return len(b) == 0 || string(b) == "success"
}

// replyFields are the fields of a passive reply that Send checks, in
// either format.
type replyFields struct {
	XMLName      xml.Name `json:"-"`
	ToUserName   string
	FromUserName string
	MsgType      string
	Encrypt      string
	CreateTime   present
}

// present records whether a field has a value: XML character data other
// than "", or a JSON value other than null.
type present bool

func (p *present) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var s string
	err := d.DecodeElement(&s, &start)
	*p = present(s != "")
	return err
}

func (p *present) UnmarshalJSON(b []byte) error {
	*p = present(string(b) != "null")
	return nil
}

// checkReply reports whether reply is a passive reply WeChat would show the
// user who sent msg: XML, or a JSON object with the same fields when the
// push was JSON. sealed says that msg went in safe mode and reply is what
// the Sealer opened.
func checkReply(reply []byte, msg Message, sealed, isJSON bool) error {
	var r replyFields
	switch {
	case isJSON && startsWith(reply, '<'):
		return fmt.Errorf("reply %q is XML, but the push was JSON: reply in the push's format", excerpt(reply))
	case !isJSON && startsWith(reply, '{'):
		return fmt.Errorf("reply %q is JSON, but the push was XML: reply in the push's format", excerpt(reply))
	case isJSON:
		if err := json.Unmarshal(reply, &r); err != nil {
			return fmt.Errorf("reply %q is neither \"\", \"success\" nor a JSON object: %v", excerpt(reply), err)
		}
	default:
		if err := xml.Unmarshal(reply, &r); err != nil {
			return fmt.Errorf("reply %q is neither \"\", \"success\" nor XML: %v", excerpt(reply), err)
		}
	}
	switch {
	case r.Encrypt != "" && sealed:
		return errors.New("the decrypted reply is itself an encrypted envelope: the server encrypted its reply twice")
	case r.Encrypt != "":
		return errors.New("the reply is encrypted, but the message was sent in plain mode: WeChat cannot read it; " +
			"encrypt replies only to messages that came with encrypt_type=aes")
	case !isJSON && r.XMLName.Local != "xml":
		return fmt.Errorf("reply root element is <%s>, want <xml>", r.XMLName.Local)
	case r.ToUserName != msg.FromUserName:
		return fmt.Errorf("reply ToUserName is %q, want the sender %q", r.ToUserName, msg.FromUserName)
	case r.FromUserName != msg.ToUserName:
		return fmt.Errorf("reply FromUserName is %q, want the account %q", r.FromUserName, msg.ToUserName)
	case r.MsgType == "":
		return errors.New("reply has no MsgType")
	case !bool(r.CreateTime):
		return errors.New("reply has no CreateTime")
	}
	return nil
}

// do makes one request within the timeout and returns the body of a 200.
// isJSON labels the body JSON rather than XML.
func (c *Callback) do(ctx context.Context, method, u string, body []byte, isJSON bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("wechattest: %w", err)
	}
	if body != nil {
		ct := "text/xml"
		if isJSON {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("User-Agent", "Mozilla/4.0")
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{StatusCode: resp.StatusCode, Body: excerpt(b)}
	}
	return b, nil
}

// transportError drops the URL (with its signature) that *url.Error
// carries and names a timeout for what it is.
func transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	return err
}

// excerpt returns the start of b, trimmed, for an error message.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// randomDigits returns n random decimal digits, the shape of WeChat's
// nonces and echostr.
func randomDigits(n int) string {
	var sb strings.Builder
	ten := big.NewInt(10)
	for range n {
		d, err := rand.Int(rand.Reader, ten)
		if err != nil {
			panic("wechattest: crypto/rand failed: " + err.Error())
		}
		sb.WriteByte(byte('0' + d.Int64()))
	}
	s := sb.String()
	if s[0] == '0' {
		s = "1" + s[1:]
	}
	return s
}

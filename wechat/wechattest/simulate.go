package wechattest

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/wxcentral/wxcentral/middleware/msgcrypt"
)

// SimulateConfig says what Simulate talks to.
type SimulateConfig struct {
	URL     string // the developer's callback URL
	Token   string // the callback Token
	Message string // the text a user sends; "" means "hello from wxcentral"

	// AESKey (the 43-character EncodingAESKey) and AppID, both set, run
	// the simulation in safe mode (安全模式), as an account whose message
	// encryption is on; both empty mean plain mode (明文模式). One without
	// the other is an error.
	AESKey string
	AppID  string

	// Compatible, with AESKey and AppID, runs in compatible mode (兼容模式):
	// plaintext and Encrypt in one body, and a plaintext reply accepted.
	Compatible bool

	// Format is the push format: FormatXML (default) or FormatJSON, as
	// a Mini Program or Mini Game may choose.
	Format Format

	HTTPClient *http.Client  // nil means http.DefaultClient
	Timeout    time.Duration // per request; 0 means 5 s, as WeChat
	Deliveries int           // 0 means 3; 1 reports a slow server at once
	Sealer     Sealer        // a safe mode of your own; not with AESKey
}

// Simulate does to cfg.URL what WeChat does: the check made when you press
// 提交 (Submit) on the server configuration page, then a user sending a text
// message. It first writes the mode it runs in ("mode: plain …", "mode:
// safe …", "mode: compatible …"), then one line per step, "PASS <step>: …"
// or "FAIL <step>: <reason>", with a hint at the likely cause, and reports
// whether every step passed. In safe mode the message is encrypted with
// cfg.AESKey for cfg.AppID, and the reply must be encrypted: its
// MsgSignature, key and AppID are checked and its decrypted text shown.
// A configuration error is reported as "FAIL setup: …" before any request.
// It is the logic of `wxcentral simulate`.
func Simulate(ctx context.Context, out io.Writer, cfg SimulateConfig) bool {
	sealer, mode, err := cfg.sealer()
	if err != nil {
		fmt.Fprintf(out, "FAIL setup: %v\n", err)
		return false
	}
	if cfg.Format == FormatJSON {
		mode += "; pushes in JSON"
	}
	fmt.Fprintf(out, "mode: %s\n", mode)
	var rec *recordingSealer
	cb := &Callback{
		URL:        cfg.URL,
		Token:      cfg.Token,
		HTTPClient: cfg.HTTPClient,
		Timeout:    cfg.Timeout,
		Deliveries: cfg.Deliveries,
		Format:     cfg.Format,
	}
	if sealer != nil {
		rec = &recordingSealer{Sealer: sealer}
		cb.Sealer = rec
	}
	ok := true
	checked := true
	if err := cb.Verify(ctx); err != nil {
		fmt.Fprintf(out, "FAIL check: %v%s\n", err, hint(err, cfg, true, false))
		ok, checked = false, false
	} else {
		fmt.Fprintf(out, "PASS check: %s answered the signed GET with its echostr\n", cfg.URL)
	}
	text := cfg.Message
	if text == "" {
		text = "hello from wxcentral"
	}
	reply, err := cb.Send(ctx, TextMessage(text))
	switch {
	case err != nil:
		fmt.Fprintf(out, "FAIL message: %v%s\n", err, hint(err, cfg, false, checked))
		ok = false
	case isNoReply(reply):
		fmt.Fprintf(out, "PASS message: %q delivered, answered %q (no reply to the user)\n", text, reply)
	case rec != nil && rec.decrypted:
		fmt.Fprintf(out, "PASS message: %q delivered; the reply was encrypted (MsgSignature, key and AppID check out) and decrypts to %s\n",
			text, describeReply(reply))
	case rec != nil:
		fmt.Fprintf(out, "PASS message: %q delivered; the reply was plaintext (fine in compatible mode, not in safe mode): %s\n",
			text, describeReply(reply))
	default:
		fmt.Fprintf(out, "PASS message: %q delivered; %s\n", text, describeReply(reply))
	}
	return ok
}

// sealer returns the Sealer cfg asks for and a description of the mode.
// Neither the key nor the token appears in an error.
func (cfg SimulateConfig) sealer() (Sealer, string, error) {
	switch {
	case cfg.Sealer != nil && (cfg.AESKey != "" || cfg.AppID != ""):
		return nil, "", errors.New("give either a Sealer or the EncodingAESKey and AppID, not both")
	case cfg.Sealer != nil:
		return cfg.Sealer, "safe (安全模式) with a custom Sealer", nil
	case cfg.AESKey != "" && cfg.AppID == "":
		return nil, "", errors.New("the EncodingAESKey (-aes-key) needs the AppID (-appid) too: safe mode seals every message for one official account; give both, or neither for plain mode")
	case cfg.AESKey == "" && cfg.AppID != "":
		return nil, "", errors.New("the AppID (-appid) needs the EncodingAESKey (-aes-key) too: give both for safe mode, or neither for plain mode")
	case cfg.AESKey == "" && cfg.Compatible:
		return nil, "", errors.New("compatible mode needs the EncodingAESKey (-aes-key) and the AppID (-appid)")
	case cfg.AESKey == "":
		return nil, "plain (明文模式): messages unencrypted", nil
	}
	s, err := NewAESSealer(cfg.Token, cfg.AppID, cfg.AESKey)
	if err != nil {
		return nil, "", err
	}
	s.Compatible = cfg.Compatible
	if cfg.Compatible {
		return s, fmt.Sprintf("compatible (兼容模式), AppID %s: messages carry plaintext and Encrypt (msg_signature signed); replies may be plaintext or encrypted", cfg.AppID), nil
	}
	return s, fmt.Sprintf("safe (安全模式), AppID %s: messages encrypted with the EncodingAESKey (encrypt_type=aes, msg_signature); replies other than \"\" or \"success\" must be encrypted", cfg.AppID), nil
}

// recordingSealer notes whether the last reply it opened was decrypted.
// Simulate sends one message at a time.
type recordingSealer struct {
	Sealer
	decrypted bool
}

func (r *recordingSealer) Open(reply []byte) ([]byte, error) {
	plain, err := r.Sealer.Open(reply)
	r.decrypted = err == nil && !bytes.Equal(plain, reply)
	return plain, err
}

// describeReply returns `text reply "…"` for a text reply, and "reply: "
// and the start of any other.
func describeReply(reply []byte) string {
	var r struct {
		MsgType string
		Content string
	}
	if (xml.Unmarshal(reply, &r) == nil || json.Unmarshal(reply, &r) == nil) && r.MsgType == "text" {
		return fmt.Sprintf("text reply %q", r.Content)
	}
	return "reply: " + excerpt(reply)
}

// hint suggests the likely cause of err. check says which step failed;
// checked that the signed GET passed, so the token is right.
func hint(err error, cfg SimulateConfig, check, checked bool) string {
	var he *HTTPError
	isHTTP := errors.As(err, &he)
	safe := cfg.AESKey != "" || cfg.Sealer != nil
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultCallbackTimeout
	}
	body := ""
	if isHTTP {
		body = strings.ToLower(he.Body)
	}
	rejected := isHTTP && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden ||
		he.StatusCode == http.StatusBadRequest)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return " — is the server running and listening at " + cfg.URL + "?"
	case errors.Is(err, ErrNoAnswer):
		return fmt.Sprintf(" — WeChat gives up after %v; answer sooner (reply \"success\" and work in the background)", timeout)

	// Safe-mode replies.
	case errors.Is(err, ErrReplyNotEncrypted):
		return " — is the server in safe mode? With encryption on it must encrypt every reply but \"\" and \"success\", with the same EncodingAESKey and AppID"
	case errors.Is(err, msgcrypt.ErrSignature):
		return " — is the token the same on both sides? It signs the reply's MsgSignature too"
	case errors.Is(err, msgcrypt.ErrAppID):
		return " — is the AppID the same on both sides?"
	case safe && isDecryptError(err):
		return " — is the EncodingAESKey the same on both sides?"

	case isHTTP && he.StatusCode == http.StatusNotFound:
		return " — is the path right? It must be the callback path the server serves (WECHAT_CALLBACK_PATH)"
	case isHTTP && he.StatusCode == http.StatusMethodNotAllowed:
		if check {
			return " — the server must answer GET at this URL"
		}
		return " — the server must accept POST at this URL"

	// Safe-mode messages the server refused.
	case !check && safe && (rejected || strings.Contains(body, "crypt") || strings.Contains(body, "aes") || strings.Contains(body, "appid")):
		switch {
		case strings.Contains(body, "no encodingaeskey") || strings.Contains(body, "no aes"):
			return " — the server is in plain mode: give it the same EncodingAESKey and AppID, or simulate in plain mode"
		case strings.Contains(body, "appid"):
			return " — is the AppID the same on both sides?"
		case checked:
			return " — the signed GET passed, so the token matches: is the EncodingAESKey the same on both sides (and the AppID)?"
		}
		return " — are the token, EncodingAESKey and AppID the same on both sides?"
	case !check && !safe && rejected && (strings.Contains(body, "plaintext") || strings.Contains(body, "crypt")):
		return " — the server takes encrypted messages only: simulate in safe mode with its EncodingAESKey and AppID (-aes-key, -appid)"

	case rejected || isHTTP && strings.Contains(body, "signature"):
		return " — is the token the same on both sides?"
	case check && !isHTTP:
		return " — the server must answer with the echostr, unchanged; is the token the same on both sides?"
	}
	return ""
}

// isDecryptError reports whether err is a ciphertext that does not decrypt:
// with a right signature, the key is the likely cause.
func isDecryptError(err error) bool {
	for _, e := range []error{msgcrypt.ErrPadding, msgcrypt.ErrLength, msgcrypt.ErrBlockSize, msgcrypt.ErrBase64} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

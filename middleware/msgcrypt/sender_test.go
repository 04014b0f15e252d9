package msgcrypt

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// TestSenderVectorReply opens the official reply of vector N as WeChat
// would, in both envelope forms.
func TestSenderVectorReply(t *testing.T) {
	s := &Sender{Crypter: &Crypter{Token: nToken, AppID: nAppID, Key: mustKey(t, nKey)}}
	env := ReplyEnvelope{Encrypt: nReplyEncrypt, MsgSignature: nReplySig, TimeStamp: nReplyTS, Nonce: nNonce}
	for name, body := range map[string][]byte{"xml": env.XML(), "json": env.JSON()} {
		got, err := s.Open(body)
		if err != nil || string(got) != nReplyMsg {
			t.Errorf("%s: Open = %q, %v; want %q", name, got, err, nReplyMsg)
		}
	}
}

// TestSenderRoundTrip seals a push as WeChat, opens it and answers as the
// server, and opens the answer as WeChat again.
func TestSenderRoundTrip(t *testing.T) {
	server := &Crypter{Token: aToken, AppID: aAppID, Key: mustKey(t, aKey)}
	s := &Sender{Crypter: &Crypter{Token: aToken, AppID: aAppID, Key: mustKey(t, aKey)}, ToUserName: "gh_7f083739789a"}
	body, sig, err := s.Seal([]byte(a2Msg), aTS, aNonce)
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(body)
	if err != nil || env.ToUserName != "gh_7f083739789a" {
		t.Fatalf("ParseEnvelope(%q) = %+v, %v", body, env, err)
	}
	o, err := server.Open(sig, aTS, aNonce, env.Encrypt)
	if err != nil || string(o.Msg) != a2Msg {
		t.Fatalf("server.Open = %q, %v", o.Msg, err)
	}
	reply, err := server.Seal(o, []byte("<xml>reply</xml>"), 1409304400, aNonce)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"xml": reply.XML(), "json": reply.JSON()} {
		got, err := s.Open(b)
		if err != nil || string(got) != "<xml>reply</xml>" {
			t.Errorf("%s: Open = %q, %v", name, got, err)
		}
	}
}

func TestSenderErrors(t *testing.T) {
	key := mustKey(t, aKey)
	s := &Sender{Crypter: &Crypter{Token: aToken, AppID: aAppID, Key: key}}
	sealed := func(c *Crypter) ReplyEnvelope {
		r, err := c.Seal(Opened{}, []byte("hi"), 1409304400, aNonce)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	good := sealed(s.Crypter)
	forged := good
	forged.MsgSignature = Sign(aToken, strconv.Itoa(1409304401), aNonce, good.Encrypt)
	tests := []struct {
		name string
		s    *Sender
		body []byte
		want error
	}{
		{"no Crypter", &Sender{}, good.XML(), ErrKey},
		{"wrong MsgSignature", s, forged.XML(), ErrSignature},
		{"other token", s, sealed(&Crypter{Token: "other", AppID: aAppID, Key: key}).XML(), ErrSignature},
		{"other AppID", s, sealed(&Crypter{Token: aToken, AppID: "wx_other", Key: key}).JSON(), ErrAppID},
		{"no Encrypt", s, []byte("<xml><MsgSignature>x</MsgSignature></xml>"), ErrEnvelope},
		{"success is no envelope", s, []byte("success"), ErrEnvelope},
		{"bad JSON", s, []byte(`{"Encrypt":`), ErrEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Open(tt.body)
			if !errors.Is(err, tt.want) || got != nil {
				t.Errorf("Open = %q, %v; want an error wrapping %v", got, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), aKey) {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
	if _, _, err := (&Sender{}).Seal([]byte("x"), aTS, aNonce); !errors.Is(err, ErrKey) {
		t.Errorf("Seal without a Crypter: %v", err)
	}
}

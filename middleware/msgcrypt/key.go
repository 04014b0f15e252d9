package msgcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors a caller can test for with errors.Is. Each error returned by this
// package wraps exactly one of them.
var (
	// ErrKey: an EncodingAESKey is malformed, or a Crypter has no key.
	ErrKey = errors.New("msgcrypt: bad EncodingAESKey")

	// ErrSignature: msg_signature does not match the token, timestamp,
	// nonce and ciphertext.
	ErrSignature = errors.New("msgcrypt: msg_signature does not match")

	// ErrBase64: the ciphertext is not standard base64.
	ErrBase64 = errors.New("msgcrypt: ciphertext is not valid base64")

	// ErrBlockSize: the decoded ciphertext is empty or not a whole number
	// of AES blocks.
	ErrBlockSize = errors.New("msgcrypt: ciphertext is not a whole number of AES blocks")

	// ErrPadding: the decrypted text does not end in valid PKCS#7 padding
	// (block size 32). A wrong key usually shows up here.
	ErrPadding = errors.New("msgcrypt: bad PKCS#7 padding")

	// ErrLength: the decrypted text is too short for its random prefix and
	// length field, or the length field points past its end.
	ErrLength = errors.New("msgcrypt: bad message length field")

	// ErrAppID: the message decrypted but names another AppID.
	ErrAppID = errors.New("msgcrypt: AppID mismatch")

	// ErrEnvelope: the request body is not a well-formed envelope, or it
	// carries no Encrypt field. There is deliberately no plaintext fallback.
	ErrEnvelope = errors.New("msgcrypt: bad message envelope")
)

const (
	// EncodingAESKeyLen is the length of an EncodingAESKey: 43 characters
	// of [a-zA-Z0-9].
	EncodingAESKeyLen = 43

	// RandomLen is the length of the random prefix of every plaintext.
	RandomLen = 16

	// PadBlock is the PKCS#7 block size WeChat pads to: 32 bytes, not the
	// AES block size of 16.
	PadBlock = 32

	// headerLen is the random prefix plus the 4-byte big-endian length.
	headerLen = RandomLen + 4
)

// A Key is an AES-256 key derived from an EncodingAESKey. It encrypts and
// decrypts WeChat messages (AES-256-CBC, IV = the key's first 16 bytes,
// PKCS#7 padding to 32 bytes). A Key is safe for concurrent use. Its String
// and GoString methods never reveal the key.
type Key struct {
	block cipher.Block
	iv    [aes.BlockSize]byte
}

// ParseKey validates a 43-character EncodingAESKey, as shown on the
// official account platform, and returns the Key it encodes. The error
// wraps ErrKey, says which rule failed and never contains the key.
func ParseKey(encodingAESKey string) (*Key, error) {
	if n := len(encodingAESKey); n != EncodingAESKeyLen {
		return nil, fmt.Errorf("%w: must be %d characters, got %d", ErrKey, EncodingAESKeyLen, n)
	}
	for i := 0; i < len(encodingAESKey); i++ {
		if c := encodingAESKey[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return nil, fmt.Errorf("%w: character %d is not one of [a-zA-Z0-9]", ErrKey, i+1)
		}
	}
	// 43 base64 characters plus one '=' are 32 bytes. The last character
	// carries two bits beyond the 256; WeChat's generator does not clear
	// them, so the decoding is deliberately not strict.
	var raw [32]byte
	n, err := base64.StdEncoding.Decode(raw[:], []byte(encodingAESKey+"="))
	if err != nil || n != len(raw) {
		return nil, fmt.Errorf("%w: does not decode to 32 bytes", ErrKey)
	}
	block, err := aes.NewCipher(raw[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	k := &Key{block: block}
	copy(k.iv[:], raw[:aes.BlockSize])
	return k, nil
}

// String returns a fixed placeholder, so that printing a Key by mistake does
// not leak it.
func (k *Key) String() string { return "msgcrypt.Key(REDACTED)" }

// GoString is like String, for %#v.
func (k *Key) GoString() string { return k.String() }

// Encrypt encrypts msg for appID with 16 random bytes read from rand
// (crypto/rand.Reader in production) and returns the base64 text that goes
// into an Encrypt field.
func (k *Key) Encrypt(rand io.Reader, msg []byte, appID string) (string, error) {
	var random [RandomLen]byte
	if _, err := io.ReadFull(rand, random[:]); err != nil {
		return "", fmt.Errorf("msgcrypt: reading random bytes: %w", err)
	}
	return k.EncryptWith(random, msg, appID), nil
}

// EncryptWith is Encrypt with the random prefix given. It is deterministic,
// which is what tests against the official vectors need; production code
// uses Encrypt.
func (k *Key) EncryptWith(random [RandomLen]byte, msg []byte, appID string) string {
	n := headerLen + len(msg) + len(appID)
	pad := PadBlock - n%PadBlock
	buf := make([]byte, n+pad)
	copy(buf, random[:])
	binary.BigEndian.PutUint32(buf[RandomLen:], uint32(len(msg)))
	copy(buf[headerLen:], msg)
	copy(buf[headerLen+len(msg):], appID)
	for i := n; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(k.block, k.iv[:]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

// Decrypt reverses Encrypt: it returns the message and the AppID the sender
// put after it. It does not compare the AppID with anything; Crypter.Open
// does. Decrypt never panics, whatever encrypted holds.
//
// Decrypt says why a ciphertext is rejected, which makes it a padding
// oracle: call it only on input whose msg_signature was verified first, as
// Crypter.Open does.
func (k *Key) Decrypt(encrypted string) (msg []byte, appID string, err error) {
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(encrypted)))
	n, err := base64.StdEncoding.Decode(buf, []byte(encrypted))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBase64, err)
	}
	buf = buf[:n]
	if len(buf) == 0 || len(buf)%aes.BlockSize != 0 {
		return nil, "", fmt.Errorf("%w: %d bytes", ErrBlockSize, len(buf))
	}
	cipher.NewCBCDecrypter(k.block, k.iv[:]).CryptBlocks(buf, buf)

	pad := int(buf[len(buf)-1])
	if pad < 1 || pad > PadBlock || pad > len(buf) {
		return nil, "", fmt.Errorf("%w: pad byte %d", ErrPadding, pad)
	}
	var diff byte
	for _, c := range buf[len(buf)-pad:] {
		diff |= c ^ byte(pad)
	}
	if diff != 0 {
		return nil, "", fmt.Errorf("%w: pad bytes differ", ErrPadding)
	}
	plain := buf[:len(buf)-pad]
	if len(plain) < headerLen {
		return nil, "", fmt.Errorf("%w: %d bytes of plaintext, need at least %d", ErrLength, len(plain), headerLen)
	}
	size := binary.BigEndian.Uint32(plain[RandomLen:headerLen])
	if uint64(size) > uint64(len(plain)-headerLen) {
		return nil, "", fmt.Errorf("%w: says %d bytes, %d follow", ErrLength, size, len(plain)-headerLen)
	}
	end := headerLen + int(size)
	return plain[headerLen:end:end], string(plain[end:]), nil
}

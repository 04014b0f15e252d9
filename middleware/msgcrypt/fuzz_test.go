package msgcrypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

// FuzzDecrypt feeds hostile ciphertexts to Decrypt. It must never panic,
// every failure must wrap one of the package's errors, and a success must
// be consistent with the decoded length. Inputs that are valid ciphertexts
// under the key (the seeds, or mutations the padding survives) must also
// survive a re-encryption round trip.
func FuzzDecrypt(f *testing.F) {
	k := mustKey(f, nKey)
	for _, s := range []string{
		nEncrypt, nReplyEncrypt, "", "QQ==", "%%%",
		k.EncryptWith(random16(nRandom), nil, ""),
		k.EncryptWith(random16(nRandom), []byte("x"), nAppID),
		base64.StdEncoding.EncodeToString(make([]byte, 32)),
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 64)),
	} {
		f.Add(s)
	}
	c := &Crypter{Token: nToken, AppID: nAppID, Key: k, PreviousKey: mustKey(f, aKey)}
	f.Fuzz(func(t *testing.T, encrypted string) {
		msg, appID, err := k.Decrypt(encrypted)
		if err != nil {
			if msg != nil || appID != "" {
				t.Fatalf("Decrypt returned data with error %v", err)
			}
			if !errors.Is(err, ErrBase64) && !errors.Is(err, ErrBlockSize) && !errors.Is(err, ErrPadding) && !errors.Is(err, ErrLength) {
				t.Fatalf("untyped error: %v", err)
			}
		} else {
			raw, derr := base64.StdEncoding.DecodeString(encrypted)
			if derr != nil {
				t.Fatalf("Decrypt accepted what base64 rejects: %v", derr)
			}
			if headerLen+len(msg)+len(appID) > len(raw) {
				t.Fatalf("%d+%d bytes out of %d", len(msg), len(appID), len(raw))
			}
			again, _, err := k.Decrypt(k.EncryptWith(random16(nRandom), msg, appID))
			if err != nil || !bytes.Equal(again, msg) {
				t.Fatalf("round trip: %q, %v", again, err)
			}
		}
		if _, _, err := c.Decrypt(encrypted); err != nil && !errors.Is(err, ErrBase64) && !errors.Is(err, ErrBlockSize) &&
			!errors.Is(err, ErrPadding) && !errors.Is(err, ErrLength) && !errors.Is(err, ErrAppID) {
			t.Fatalf("Crypter.Decrypt: untyped error: %v", err)
		}
		_, _ = ParseEnvelope([]byte(encrypted))
	})
}

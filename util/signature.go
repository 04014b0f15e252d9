package util

import (
	"crypto/sha1"
	"encoding/hex"
	"slices"
)

// maxInline is how many parts and how many bytes a signature is computed over
// without touching the heap. WeChat signs three parts (token, timestamp,
// nonce) for the callback check and four (plus the ciphertext) for safe-mode
// messages; typical inputs are well under a kilobyte.
const (
	maxInlineParts   = 8
	maxInlineBytes   = 1024
	smallInlineBytes = 128 // a token, a timestamp and a nonce
)

// SignatureLen is the length of a hex signature: sha1 is 20 bytes, 40 hex digits.
const SignatureLen = 2 * sha1.Size

// Signature returns the lowercase hex sha1 of parts sorted in byte order and
// concatenated with no separator: the signature WeChat puts in the
// signature and msg_signature query parameters.
//
//	Signature(token, timestamp, nonce)            // callback check
//	Signature(token, timestamp, nonce, encrypted) // safe-mode msg_signature
func Signature(parts ...string) string {
	var dst [SignatureLen]byte
	sum := sortedSum(parts)
	hex.Encode(dst[:], sum[:])
	return string(dst[:])
}

// AppendSignature appends Signature(parts...) to dst and returns the extended
// buffer. It does not allocate when dst has room for SignatureLen more bytes.
func AppendSignature(dst []byte, parts ...string) []byte {
	sum := sortedSum(parts)
	return hex.AppendEncode(dst, sum[:])
}

// VerifySignature reports whether sig is the signature of parts. The
// comparison takes the same time wherever sig first differs, so a caller
// cannot learn a valid signature byte by byte; upper-case hex is accepted.
// For up to 8 parts and 1 KiB of input it does not allocate.
func VerifySignature(sig string, parts ...string) bool {
	if len(sig) != SignatureLen {
		return false
	}
	var want [SignatureLen]byte
	sum := sortedSum(parts)
	hex.Encode(want[:], sum[:])
	return equalFoldHex(sig, want[:])
}

// EqualHex reports whether two hex strings are equal, ignoring the case of
// the letters a-f, in time that depends only on their lengths.
func EqualHex(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var diff byte
	for i := 0; i < len(a); i++ {
		diff |= lowerHex(a[i]) ^ lowerHex(b[i])
	}
	return diff == 0
}

func equalFoldHex(a string, b []byte) bool {
	var diff byte
	for i := 0; i < len(a); i++ {
		diff |= lowerHex(a[i]) ^ b[i]
	}
	return diff == 0
}

// lowerHex folds 'A'-'F' to 'a'-'f' and leaves every other byte alone,
// without a data-dependent branch.
func lowerHex(c byte) byte {
	d := int32(c) - 'A'
	// outside is 1 when d < 0 or d > 5: either term then has its sign bit set.
	outside := byte(((d | (5 - d)) >> 31) & 1)
	return c | (outside^1)<<5
}

// sortedSum hashes parts sorted and concatenated. Small inputs are sorted and
// joined in stack buffers; larger ones fall back to the heap.
func sortedSum(parts []string) [sha1.Size]byte {
	var arr [maxInlineParts]string
	var sorted []string
	if len(parts) <= maxInlineParts {
		// A few parts: an insertion sort, without slices.Sort's calls.
		sorted = arr[:len(parts)]
		copy(sorted, parts)
		for i := 1; i < len(sorted); i++ {
			for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
				sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
			}
		}
	} else {
		sorted = slices.Clone(parts)
		slices.Sort(sorted)
	}

	n := 0
	for _, p := range sorted {
		n += len(p)
	}
	// The callback check's parts fit the small buffer; a safe-mode
	// message's ciphertext needs the large one. Each is cleared only when
	// it is used.
	var joined []byte
	switch {
	case n <= smallInlineBytes:
		var buf [smallInlineBytes]byte
		joined = buf[:0]
	case n <= maxInlineBytes:
		var buf [maxInlineBytes]byte
		joined = buf[:0]
	default:
		joined = make([]byte, 0, n)
	}
	for _, p := range sorted {
		joined = append(joined, p...)
	}
	return sha1.Sum(joined)
}

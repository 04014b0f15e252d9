package msgcrypt

import "crypto/cipher"

// cbcEncrypt encrypts block-aligned buf in place with k, without padding.
func cbcEncrypt(k *Key, buf []byte) {
	cipher.NewCBCEncrypter(k.block, k.iv[:]).CryptBlocks(buf, buf)
}

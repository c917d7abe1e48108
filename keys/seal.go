package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// sealKeyInfo is the HKDF info string of the key that seals private keys.
// Changing it makes every stored key unreadable, so a new sealing format
// needs a new version string, and the old one must stay to read old keys.
const sealKeyInfo = "authserver signing-key sealing v1"

// minSecretLen is the minimum length of the master secret in bytes.
const minSecretLen = 32

// sealer encrypts private keys at rest with AES-256-GCM under a key derived
// from the master secret with HKDF-SHA-256. A sealed blob is a random 12-byte
// nonce followed by the ciphertext and tag. The kid and algorithm are
// additional data, so a blob copied into another row fails to open.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(secret []byte) (*sealer, error) {
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("master secret is %d bytes, need at least %d random bytes", len(secret), minSecretLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, sealKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create sealing cipher: %w", err)
	}
	// NewGCMWithRandomNonce draws a 12-byte nonce per Seal and prefixes it
	// to the output, which is the stored format.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("create sealing cipher: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal encrypts plaintext bound to kid and alg.
func (s *sealer) seal(kid, alg string, plaintext []byte) []byte {
	// The nonce argument is nil because the AEAD draws a random nonce itself.
	return s.aead.Seal(nil, nil, plaintext, sealAdditionalData(kid, alg)) //nolint:gosec // G407 is a false positive here
}

// open decrypts a blob made by seal for the same kid and alg. It returns an
// *openError when the blob does not authenticate.
func (s *sealer) open(kid, alg string, sealed []byte) ([]byte, error) {
	plaintext, err := s.aead.Open(nil, nil, sealed, sealAdditionalData(kid, alg))
	if err != nil {
		return nil, &openError{kid: kid, err: err}
	}
	return plaintext, nil
}

// sealAdditionalData binds a blob to its row. The algorithm comes first
// because it is one of a few fixed names without a NUL byte, so the encoding
// is unambiguous whatever the kid contains.
func sealAdditionalData(kid, alg string) []byte {
	ad := make([]byte, 0, len(alg)+1+len(kid))
	ad = append(ad, alg...)
	ad = append(ad, 0)
	ad = append(ad, kid...)
	return ad
}

// openError reports a sealed private key that failed to decrypt. GCM cannot
// tell a wrong master secret from a blob copied from another row, so the
// message names both causes.
type openError struct {
	kid string
	err error
}

func (e *openError) Error() string {
	return fmt.Sprintf("keys: decrypt private key of kid %q: %v: the master secret may differ from the one the keys were created with, or the sealed key was copied from another row", e.kid, e.err)
}

func (e *openError) Unwrap() error { return e.err }

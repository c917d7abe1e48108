package oauth

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ory/fosite"
)

var _ fosite.Hasher = (*SecretHasher)(nil)

// secretHashPrefix marks the stored form of a client secret, so that hashes
// of a later scheme can be recognised.
const secretHashPrefix = "hmac-sha256$" //nolint:gosec // a format tag, not a credential

// ErrSecretMismatch is returned by [SecretHasher.Compare] when the secret
// does not match.
var ErrSecretMismatch = errors.New("client secret does not match")

// SecretHasher stores client secrets as HMAC-SHA-256 under a key derived
// from the master secret. Client secrets are 256 random bits, so a keyed
// fast hash resists offline guessing as well as a slow hash would, and the
// client-credentials grant stays cheap. It is safe for concurrent use.
type SecretHasher struct {
	key []byte
}

// NewSecretHasher derives the HMAC key from the master secret.
func NewSecretHasher(masterSecret []byte) (*SecretHasher, error) {
	key, err := deriveKey(masterSecret, "authserver client-secret hmac v1")
	if err != nil {
		return nil, err
	}
	return &SecretHasher{key: key}, nil
}

func deriveKey(masterSecret []byte, purpose string) ([]byte, error) {
	if len(masterSecret) < 32 {
		return nil, fmt.Errorf("master secret is %d bytes, need at least 32", len(masterSecret))
	}
	key, err := hkdf.Key(sha256.New, masterSecret, nil, purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	return key, nil
}

// Hash returns the stored form of a client secret.
func (h *SecretHasher) Hash(_ context.Context, secret []byte) ([]byte, error) {
	return []byte(secretHashPrefix + hex.EncodeToString(h.mac(secret))), nil
}

// Compare returns nil if secret matches the stored hash, and an error
// wrapping ErrSecretMismatch otherwise. The comparison takes the same time
// wherever the first differing byte is.
func (h *SecretHasher) Compare(_ context.Context, hash, secret []byte) error {
	want, err := hex.DecodeString(strings.TrimPrefix(string(hash), secretHashPrefix))
	if err != nil || !strings.HasPrefix(string(hash), secretHashPrefix) {
		// Still compute the MAC so a malformed stored hash costs what a
		// mismatch costs.
		_ = h.mac(secret)
		return fmt.Errorf("%w: stored hash is not in the %s form", ErrSecretMismatch, strings.TrimSuffix(secretHashPrefix, "$"))
	}
	if !hmac.Equal(want, h.mac(secret)) {
		return ErrSecretMismatch
	}
	return nil
}

func (h *SecretHasher) mac(secret []byte) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write(secret)
	return m.Sum(nil)
}

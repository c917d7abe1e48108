package oauth

import (
	"crypto/rand"
	"encoding/hex"
)

// Identifier prefixes; they are part of the wire contract.
const (
	userIDPrefix       = "user_"
	clientIDPrefix     = "client_"
	clientSecretPrefix = "secret_"
)

// randomHex returns n random bytes as hex. crypto/rand.Read never returns
// an error on supported platforms (it panics if the system source fails).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newUserID returns "user_" and 128 random bits, so ids never collide.
func newUserID() string { return userIDPrefix + randomHex(16) }

// newClientID returns "client_" and 128 random bits.
func newClientID() string { return clientIDPrefix + randomHex(16) }

// newClientSecret returns "secret_" and 256 random bits.
func newClientSecret() string { return clientSecretPrefix + randomHex(32) }

// newTokenID returns a JWT ID of 128 random bits.
func newTokenID() string { return randomHex(16) }

package oauth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/ory/fosite/token/jwt"
)

// Bounds of the verified-token cache.
const (
	// maxVerifiedTokens bounds the cache; when it is full it is emptied.
	maxVerifiedTokens = 10_000
	// verifiedTTL is how long a signature check is reused. A signing key
	// stays published until every token it signed has expired, so the
	// result of the check cannot change within a token's lifetime. The
	// bound only limits how long the cache holds memory.
	verifiedTTL = time.Minute
)

// verifiedTokens remembers the claims of access tokens whose signature and
// header were checked, keyed by the SHA-256 of the whole token. A resource
// server introspects the same token for every request it serves with it,
// and the ES256 signature check is most of the cost of an introspection.
// Only the signature check is reused: the time, issuer and audience checks,
// the token's record or revocation list, and its client are checked every
// time. It is safe for concurrent use; the returned claims must not be
// changed.
type verifiedTokens struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	claims   jwt.MapClaims
	storedAt time.Time
}

func (v *verifiedTokens) get(key [sha256.Size]byte, now time.Time) (jwt.MapClaims, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.entries[key]
	if !ok || now.Sub(e.storedAt) >= verifiedTTL {
		return nil, false
	}
	return e.claims, true
}

func (v *verifiedTokens) put(key [sha256.Size]byte, claims jwt.MapClaims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.entries == nil || len(v.entries) >= maxVerifiedTokens {
		v.entries = make(map[[sha256.Size]byte]verifiedToken)
	}
	v.entries[key] = verifiedToken{claims: claims, storedAt: now}
}

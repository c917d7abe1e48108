package keys

import (
	"context"
	"errors"
	"time"
)

// State is the rotation state of a signing key.
type State string

// Rotation states. A key is published in the JWKS while it is next, active
// or retired and not yet past its publication end. Only the active key
// signs.
const (
	StateNext    State = "next"
	StateActive  State = "active"
	StateRetired State = "retired"
)

// ErrRotationConflict is returned by [Store.ApplyRotation] when the active
// key is no longer the one the rotation expected, because another process
// rotated first.
var ErrRotationConflict = errors.New("keys: concurrent rotation")

// Record is one signing key as persisted. PrivateKey is sealed with
// AES-256-GCM under a key derived from the master secret; it is never stored
// or returned in clear.
type Record struct {
	KeyID      string
	Algorithm  string // JOSE algorithm name: RS256, ES256 or EdDSA
	State      State
	PrivateKey []byte // sealed PKCS #8 DER
	PublicKey  []byte // public JWK as JSON
	CreatedAt  time.Time
	// ActivatedAt is zero until the key first becomes active.
	ActivatedAt time.Time
	// RetiredAt is zero until the key is retired.
	RetiredAt time.Time
}

// Rotation describes one atomic change of the key set.
type Rotation struct {
	// ExpectedActive is the key id the caller saw as active, or "" when it
	// saw none. The store applies the rotation only if that still holds.
	ExpectedActive string
	// Retire moves these keys to StateRetired with RetiredAt set to At.
	Retire []string
	// Activate moves this key to StateActive with ActivatedAt set to At; it
	// may be a key in Insert.
	Activate string
	// Insert adds new keys in the state each record carries.
	Insert []Record
	// At is the time the change takes effect.
	At time.Time
}

// Store persists signing keys. storage.Store implements it; it must be safe
// for concurrent use by several processes sharing one database.
type Store interface {
	// SigningKeys returns every stored key, in any order.
	SigningKeys(ctx context.Context) ([]Record, error)
	// ApplyRotation applies r in one transaction, or returns
	// ErrRotationConflict (wrapped) when the active key differs from
	// r.ExpectedActive, changing nothing.
	ApplyRotation(ctx context.Context, r Rotation) error
}

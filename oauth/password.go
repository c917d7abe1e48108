package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// MaxPasswordLength is the longest password accepted, in bytes. Passwords
// are hashed whole, never truncated; the bound keeps one hash from costing
// more than its memory parameter already does.
const MaxPasswordLength = 1024

// ErrPasswordTooLong is returned for a password over MaxPasswordLength.
var ErrPasswordTooLong = fmt.Errorf("password longer than %d bytes", MaxPasswordLength)

// Argon2Params are argon2id cost parameters (RFC 9106).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// DefaultArgon2Params are the parameters new hashes get: 19 MiB, two
// passes, one lane, the first of the OWASP Password Storage Cheat Sheet's
// argon2id configurations.
var DefaultArgon2Params = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	argon2SaltLength = 16
	argon2KeyLength  = 32
)

// PasswordHasher hashes user passwords with argon2id in PHC string form and
// verifies argon2id and bcrypt hashes. It is safe for concurrent use.
type PasswordHasher struct {
	params Argon2Params
	// slots bounds the hashes running at once; each holds params.Memory
	// KiB while it runs.
	slots chan struct{}
	// wait is how long Acquire waits for a slot.
	wait time.Duration
	// dummy is verified when the user does not exist, so an unknown
	// username costs the same time as a wrong password.
	dummy string
}

// NewPasswordHasher returns a hasher that creates hashes with params; the
// zero value means DefaultArgon2Params.
func NewPasswordHasher(params Argon2Params) (*PasswordHasher, error) {
	if params == (Argon2Params{}) {
		params = DefaultArgon2Params
	}
	if params.Memory < 8*uint32(params.Threads) || params.Time < 1 || params.Threads < 1 {
		return nil, fmt.Errorf("invalid argon2id parameters m=%d t=%d p=%d", params.Memory, params.Time, params.Threads)
	}
	h := &PasswordHasher{params: params, slots: make(chan struct{}, defaultHashConcurrency()), wait: hashWait}
	dummy, err := h.Hash("dummy password for unknown users")
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// ErrBusy is returned by [PasswordHasher.Acquire] when every hashing slot
// stayed taken for the whole wait. Callers respond 503 and let the client
// retry.
var ErrBusy = errors.New("password hashing is at capacity")

// hashWait is how long a login waits for a hashing slot before ErrBusy.
const hashWait = 2 * time.Second

// defaultHashConcurrency allows two hashes per CPU: enough to keep every
// core busy while one waits for the database, and bounded so that a flood
// of logins costs at most 2 × GOMAXPROCS × the memory parameter.
func defaultHashConcurrency() int {
	return 2 * runtime.GOMAXPROCS(0)
}

// Acquire waits for a hashing slot, at most hashWait, and returns the
// function that frees it. Login paths take a slot around each
// verification, so a flood of logins queues briefly and then gets ErrBusy
// instead of exhausting memory.
func (h *PasswordHasher) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	default:
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Hash returns the PHC string of password with fresh salt.
func (h *PasswordHasher) Hash(password string) (string, error) {
	if len(password) > MaxPasswordLength {
		return "", ErrPasswordTooLong
	}
	salt := make([]byte, argon2SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, argon2KeyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches hash, and whether hash should be
// replaced because it uses another scheme or weaker parameters. An error
// means the stored hash is unreadable, not that the password is wrong.
func (h *PasswordHasher) Verify(hash, password string) (ok, rehash bool, err error) {
	if len(password) > MaxPasswordLength {
		return false, false, nil
	}
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return h.verifyArgon2(hash, password)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, false, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("read bcrypt hash: %w", err)
		}
		return true, true, nil
	default:
		return false, false, errors.New("stored password hash uses an unknown scheme")
	}
}

// VerifyDummy spends the time of one verification and returns nothing.
// Callers run it in place of Verify when the user does not exist.
func (h *PasswordHasher) VerifyDummy(password string) {
	_, _, _ = h.Verify(h.dummy, password)
}

func (h *PasswordHasher) verifyArgon2(hash, password string) (ok, rehash bool, err error) {
	p, salt, key, err := parseArgon2(hash)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key))) //nolint:gosec // parseArgon2 bounds len(key) to 16..64
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	weaker := p.Memory < h.params.Memory || p.Time < h.params.Time || len(key) < argon2KeyLength
	return true, weaker, nil
}

// Upper bounds on stored parameters, so a crafted hash cannot make one
// verification allocate gigabytes or run for minutes.
const (
	maxArgon2Memory = 1 << 20 // KiB, 1 GiB
	maxArgon2Time   = 64
)

func parseArgon2(hash string) (Argon2Params, []byte, []byte, error) {
	// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Argon2Params{}, nil, nil, errors.New("malformed argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return Argon2Params{}, nil, nil, fmt.Errorf("unsupported argon2id version %q", parts[2])
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("malformed argon2id parameters %q", parts[3])
	}
	if p.Memory > maxArgon2Memory || p.Time > maxArgon2Time || p.Time < 1 || p.Threads < 1 {
		return Argon2Params{}, nil, nil, fmt.Errorf("argon2id parameters %q out of range", parts[3])
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return Argon2Params{}, nil, nil, fmt.Errorf("malformed argon2id salt: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return Argon2Params{}, nil, nil, errors.New("malformed argon2id key")
	}
	return p, salt, key, nil
}

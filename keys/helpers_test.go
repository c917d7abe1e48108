package keys

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"
)

// testSecret is a 32-byte master secret used by tests only.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testEnv is one fake store with its clock and key generator, shared by
// the managers a test starts on it.
type testEnv struct {
	store    *memStore
	clock    *fakeClock
	generate keyGenerator
}

func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	return &testEnv{
		store:    newMemStore(),
		clock:    newFakeClock(),
		generate: testKeyGenerator(tb),
	}
}

func (e *testEnv) config(alg string) Config {
	return Config{
		Algorithm:   alg,
		Secret:      testSecret,
		Now:         e.clock.Now,
		generateKey: e.generate,
	}
}

func (e *testEnv) manager(tb testing.TB, alg string) *Manager {
	tb.Helper()
	m, err := New(tb.Context(), e.store, e.config(alg))
	if err != nil {
		tb.Fatalf("New(%q): %v", alg, err)
	}
	return m
}

// testKeyGenerator returns a generator that hands out the 2048-bit RSA keys
// in testdata/rsa2048-*.pem in order and generates ES256 and EdDSA keys,
// which is fast. The PEM files were made once with
// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` and are
// used by tests only.
func testKeyGenerator(tb testing.TB) keyGenerator {
	tb.Helper()
	rsaKeys := loadTestRSAKeys(tb)
	var mu sync.Mutex
	return func(alg string) (crypto.Signer, error) {
		if alg != "RS256" {
			return generateKey(alg)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(rsaKeys) == 0 {
			return nil, errors.New("all test RSA keys in testdata are used, add more rsa2048-*.pem files")
		}
		k := rsaKeys[0]
		rsaKeys = rsaKeys[1:]
		return k, nil
	}
}

func loadTestRSAKeys(tb testing.TB) []crypto.Signer {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "rsa2048-*.pem"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("find test RSA keys: %v, %d files", err, len(paths))
	}
	out := make([]crypto.Signer, 0, len(paths))
	for _, path := range paths {
		k, err := readPEMKey(path)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

func readPEMKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: path comes from a glob under testdata
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k.(crypto.Signer), nil
}

// accessTokenHeader returns the header that callers pass to Generate for a
// JWT access token.
func accessTokenHeader() *jwt.Headers {
	return &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}}
}

// accessTokenClaims returns claims shaped like fosite's JWT access-token
// claims, expiring an hour from now.
func accessTokenClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":       "https://auth.example.test",
		"sub":       "user-42",
		"aud":       []string{"https://api.example.test"},
		"client_id": "client-7",
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"jti":       "0f6a5d0c-8d5c-4bd9-9a4e-0d2d9b0d7a11",
		"scp":       []string{"openid", "offline_access", "read"},
	}
}

// validationFlags returns the ValidationError flags of err, or 0 when err
// is not a *jwt.ValidationError.
func validationFlags(err error) uint32 {
	var ve *jwt.ValidationError
	if !errors.As(err, &ve) {
		return 0
	}
	return ve.Errors
}

func keyInState(tb testing.TB, m *Manager, state State) Info {
	tb.Helper()
	for _, k := range m.Keys() {
		if k.State == state {
			return k
		}
	}
	tb.Fatalf("manager has no %s key", state)
	return Info{}
}

package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const testAudience = "quanux-api"

// testKey is a pre-generated signing key from testdata with its kid and
// JWS algorithm.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func loadKey(t testing.TB, file, kid string, alg jose.SignatureAlgorithm) testKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return testKey{kid: kid, alg: alg, priv: priv.(crypto.Signer)}
}

func rsaKey(t testing.TB) testKey     { return loadKey(t, "rsa2048-1.pem", "rsa-1", jose.RS256) }
func rsaKey2(t testing.TB) testKey    { return loadKey(t, "rsa2048-2.pem", "rsa-2", jose.RS256) }
func ecKey(t testing.TB) testKey      { return loadKey(t, "p256.pem", "ec-1", jose.ES256) }
func edKey(t testing.TB) testKey      { return loadKey(t, "ed25519.pem", "ed-1", jose.EdDSA) }
func weakRSAKey(t testing.TB) testKey { return loadKey(t, "rsa1024.pem", "rsa-weak", jose.RS256) }

// jwk returns the key's public JWK as the authorization server publishes
// it.
func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// sign returns a compact JWS of claims. The header is alg, kid and
// typ at+jwt, changed by overrides. An override with a nil value removes
// the member.
func (k testKey) sign(t testing.TB, claims map[string]any, overrides map[string]any) string {
	t.Helper()
	header := map[string]any{"alg": string(k.alg), "kid": k.kid, "typ": "at+jwt"}
	for name, value := range overrides {
		if value == nil {
			delete(header, name)
			continue
		}
		header[name] = value
	}
	input := encodeSegment(t, header) + "." + encodeSegment(t, claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(k.signature(t, input))
}

// signature signs input by the key's own algorithm, as RFC 7518 §3.3,
// §3.4 and RFC 8037 §3.1 describe.
func (k testKey) signature(t testing.TB, input string) []byte {
	t.Helper()
	digest := sha256.Sum256([]byte(input))
	switch priv := k.priv.(type) {
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, []byte(input))
	default:
		t.Fatalf("unsupported key type %T", k.priv)
		return nil
	}
}

func encodeSegment(t testing.TB, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// validClaims returns the claims of a fresh token of issuer at now, as the
// authorization server issues them.
func validClaims(issuer string, now time.Time) map[string]any {
	return map[string]any{
		"iss":       issuer,
		"sub":       "user_3f0c",
		"aud":       []string{testAudience},
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"jti":       "jti-1",
		"client_id": "quanux-legacy-login",
		"scope":     "strategy:read forge:write",
		"user_id":   "user_3f0c",
	}
}

// with returns a copy of claims with the given members set. A nil value
// removes the member.
func with(claims map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// clock is a fake clock that tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testIssuer serves discovery and a JWKS on a loopback port and counts the
// requests.
type testIssuer struct {
	server *httptest.Server

	mu         sync.Mutex
	jwks       []byte
	jwksStatus int
	// metadataIssuer, when set, is the issuer the discovery document
	// names in place of the server's URL.
	metadataIssuer string
	// oidc selects whether /.well-known/openid-configuration is served.
	// /.well-known/oauth-authorization-server always is.
	oidc bool
	// hold, when set, delays each JWKS response until it is closed.
	hold chan struct{}

	jwksRequests      atomic.Int64
	discoveryRequests atomic.Int64
}

func newTestIssuer(t testing.TB, keys ...testKey) *testIssuer {
	t.Helper()
	ti := &testIssuer{oidc: true}
	ti.publish(t, keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.mu.Lock()
		serve := ti.oidc
		ti.mu.Unlock()
		if !serve {
			http.NotFound(w, r)
			return
		}
		ti.serveMetadata(w)
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		ti.serveMetadata(w)
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		ti.jwksRequests.Add(1)
		ti.mu.Lock()
		status, body, hold := ti.jwksStatus, ti.jwks, ti.hold
		ti.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if status != http.StatusOK {
			http.Error(w, "unavailable", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	ti.server = httptest.NewServer(mux)
	t.Cleanup(ti.server.Close)
	return ti
}

func (ti *testIssuer) URL() string { return ti.server.URL }

func (ti *testIssuer) serveMetadata(w http.ResponseWriter) {
	ti.discoveryRequests.Add(1)
	ti.mu.Lock()
	issuer := ti.metadataIssuer
	ti.mu.Unlock()
	if issuer == "" {
		issuer = ti.server.URL
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":         issuer,
		"jwks_uri":       ti.server.URL + "/keys",
		"token_endpoint": ti.server.URL + "/oauth2/token",
	})
}

// publish replaces the JWKS with the public keys of keys.
func (ti *testIssuer) publish(t testing.TB, keys ...testKey) {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	ti.publishRaw(raw)
}

func (ti *testIssuer) publishRaw(raw []byte) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.jwks = raw
	ti.jwksStatus = http.StatusOK
}

// setJWKSStatus makes the JWKS endpoint respond with status and no keys.
func (ti *testIssuer) setJWKSStatus(status int) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.jwksStatus = status
}

// newTestVerifier starts a Verifier for ti on the fake clock c, with cfg's
// non-zero fields on top of the test defaults.
func newTestVerifier(t testing.TB, ti *testIssuer, c *clock, cfg Config) *Verifier {
	t.Helper()
	v, err := New(t.Context(), testConfig(t, ti, c, cfg))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

func testConfig(t testing.TB, ti *testIssuer, c *clock, cfg Config) Config {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = ti.URL()
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	if cfg.Now == nil {
		cfg.Now = c.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// tamper replaces the payload of token with claims, keeping the header
// and signature.
func tamper(t testing.TB, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	parts[1] = encodeSegment(t, claims)
	return strings.Join(parts, ".")
}

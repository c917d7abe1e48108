package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestVerifyAcceptsEachAlgorithm(t *testing.T) {
	t.Parallel()
	keys := []testKey{rsaKey(t), ecKey(t), edKey(t)}
	ti := newTestIssuer(t, keys...)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{})

	for _, k := range keys {
		t.Run(string(k.alg), func(t *testing.T) {
			now := c.Now()
			got, err := v.Verify(t.Context(), k.sign(t, validClaims(ti.URL(), now), nil))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := &Claims{
				Subject:   "user_3f0c",
				UserID:    "user_3f0c",
				ClientID:  "quanux-legacy-login",
				TokenID:   "jti-1",
				Issuer:    ti.URL(),
				Audience:  []string{testAudience},
				Scopes:    []string{"strategy:read", "forge:write"},
				ExpiresAt: now.Add(time.Hour),
				IssuedAt:  now,
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			if !got.HasScope("forge:write") || got.HasScope("forge") || got.HasScope("FORGE:WRITE") {
				t.Errorf("HasScope does not match whole scopes exactly: %v", got.Scopes)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	rsa, ec, ed := rsaKey(t), ecKey(t), edKey(t)
	ti := newTestIssuer(t, rsa, ec, ed)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{MinRefreshInterval: time.Hour})
	now := c.Now()
	good := validClaims(ti.URL(), now)
	leeway := DefaultLeeway

	rsaPublicDER, err := x509.MarshalPKIXPublicKey(rsa.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPublicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPublicDER})

	tests := []struct {
		name    string
		token   string
		wantErr error // nil means the token must be accepted
		reason  string
	}{
		{"typ application/at+jwt", rsa.sign(t, good, map[string]any{"typ": "application/at+jwt"}), nil, ""},
		{"typ in upper case", rsa.sign(t, good, map[string]any{"typ": "AT+JWT"}), nil, ""},
		{"aud as a single string", rsa.sign(t, with(good, map[string]any{"aud": testAudience}), nil), nil, ""},
		{"aud among several", rsa.sign(t, with(good, map[string]any{"aud": []string{"other", testAudience}}), nil), nil, ""},
		{"no nbf", rsa.sign(t, with(good, map[string]any{"nbf": nil}), nil), nil, ""},
		{"no scope", rsa.sign(t, with(good, map[string]any{"scope": nil}), nil), nil, ""},
		{"expired within leeway", rsa.sign(t, with(good, map[string]any{"exp": now.Add(-leeway + time.Second).Unix()}), nil), nil, ""},
		{"nbf within leeway", rsa.sign(t, with(good, map[string]any{"nbf": now.Add(leeway - time.Second).Unix()}), nil), nil, ""},
		{"iat within leeway", rsa.sign(t, with(good, map[string]any{"iat": now.Add(leeway - time.Second).Unix()}), nil), nil, ""},

		{"tampered payload", tamper(t, rsa.sign(t, good, nil), with(good, map[string]any{"scope": "admin"})), ErrInvalidToken, "signature does not verify"},
		{"tampered EdDSA payload", tamper(t, ed.sign(t, good, nil), with(good, map[string]any{"sub": "user_other"})), ErrInvalidToken, "signature does not verify"},
		{"signature of another token", swapSignature(rsa.sign(t, good, nil), rsa.sign(t, with(good, map[string]any{"jti": "jti-2"}), nil)), ErrInvalidToken, "signature does not verify"},
		{"ES256 signature too long", appendToSignature(t, ec.sign(t, good, nil), []byte{0, 0}), ErrInvalidToken, "ECDSA signature has 66 bytes"},
		{"crit header", rsa.sign(t, good, map[string]any{"crit": []string{"exp"}, "exp": 1}), ErrInvalidToken, "crit"},
		{"b64 header", rsa.sign(t, good, map[string]any{"b64": true}), ErrInvalidToken, "b64"},
		{"typ JWT", rsa.sign(t, good, map[string]any{"typ": "JWT"}), ErrInvalidToken, `typ "JWT"`},
		{"no typ", rsa.sign(t, good, map[string]any{"typ": nil}), ErrInvalidToken, `typ ""`},
		{"no kid", rsa.sign(t, good, map[string]any{"kid": nil}), ErrInvalidToken, "no kid"},
		{"alg none", unsigned(t, good, rsa.kid), ErrInvalidToken, `algorithm "none"`},
		{"HS256 keyed with the PEM public key", hmacSigned(t, good, rsa.kid, rsaPublicPEM), ErrInvalidToken, `algorithm "HS256"`},
		{"HS256 keyed with the DER public key", hmacSigned(t, good, rsa.kid, rsaPublicDER), ErrInvalidToken, `algorithm "HS256"`},
		{"alg of another key", rsa.sign(t, good, map[string]any{"kid": ec.kid}), ErrInvalidToken, `key "ec-1" is not for algorithm RS256`},
		{"PS256 not accepted", rsa.sign(t, good, map[string]any{"alg": "PS256"}), ErrInvalidToken, `algorithm "PS256"`},
		{"unknown kid", rsa.sign(t, good, map[string]any{"kid": "no-such-key"}), ErrInvalidToken, "unknown kid"},
		{"wrong iss", rsa.sign(t, with(good, map[string]any{"iss": "http://127.0.0.1:1"}), nil), ErrInvalidToken, "iss"},
		{"iss with trailing slash", rsa.sign(t, with(good, map[string]any{"iss": ti.URL() + "/"}), nil), ErrInvalidToken, "iss"},
		{"no iss", rsa.sign(t, with(good, map[string]any{"iss": nil}), nil), ErrInvalidToken, "iss"},
		{"wrong aud", rsa.sign(t, with(good, map[string]any{"aud": []string{"other-api"}}), nil), ErrInvalidToken, "aud"},
		{"no aud", rsa.sign(t, with(good, map[string]any{"aud": nil}), nil), ErrInvalidToken, "aud"},
		{"expired beyond leeway", rsa.sign(t, with(good, map[string]any{"exp": now.Add(-leeway).Unix()}), nil), ErrExpired, "exp"},
		{"nbf beyond leeway", rsa.sign(t, with(good, map[string]any{"nbf": now.Add(leeway + time.Second).Unix()}), nil), ErrInvalidToken, "nbf"},
		{"iat beyond leeway", rsa.sign(t, with(good, map[string]any{"iat": now.Add(leeway + time.Second).Unix()}), nil), ErrInvalidToken, "iat"},
		{"no exp", rsa.sign(t, with(good, map[string]any{"exp": nil}), nil), ErrInvalidToken, "claim exp is missing"},
		{"no iat", rsa.sign(t, with(good, map[string]any{"iat": nil}), nil), ErrInvalidToken, "claim iat is missing"},
		{"no sub", rsa.sign(t, with(good, map[string]any{"sub": nil}), nil), ErrInvalidToken, "claim sub is missing"},
		{"no client_id", rsa.sign(t, with(good, map[string]any{"client_id": nil}), nil), ErrInvalidToken, "claim client_id is missing"},
		{"no jti", rsa.sign(t, with(good, map[string]any{"jti": nil}), nil), ErrInvalidToken, "claim jti is missing"},
		{"exp as a string", rsa.sign(t, with(good, map[string]any{"exp": "tomorrow"}), nil), ErrInvalidToken, "NumericDate"},
		{"scope as an array", rsa.sign(t, with(good, map[string]any{"scope": []string{"forge:write"}}), nil), ErrInvalidToken, "scope"},
		{"longer than 8 KiB", rsa.sign(t, with(good, map[string]any{"pad": strings.Repeat("x", MaxTokenSize)}), nil), ErrInvalidToken, "longer than 8192 bytes"},
		{"empty", "", ErrInvalidToken, "compact JWS"},
		{"one dot", "abc.def", ErrInvalidToken, "compact JWS"},
		{"three dots", rsa.sign(t, good, nil) + ".x", ErrInvalidToken, "compact JWS"},
		{"header not base64", "!!!." + strings.SplitN(rsa.sign(t, good, nil), ".", 2)[1], ErrInvalidToken, "base64"},
		{"payload not JSON", rsa.signRaw(t, "not json"), ErrInvalidToken, "claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := v.Verify(t.Context(), tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want one wrapping %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Verify error = %v, want the reason %q", err, tt.reason)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify error = %v, which does not wrap ErrInvalidToken", err)
			}
			if claims != nil {
				t.Errorf("Verify returned claims %+v with an error", claims)
			}
		})
	}
}

func TestVerifyOnlyConfiguredAlgorithms(t *testing.T) {
	t.Parallel()
	rsa, ec := rsaKey(t), ecKey(t)
	ti := newTestIssuer(t, rsa, ec)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{Algorithms: []string{"ES256"}, MinRefreshInterval: time.Hour})
	claims := validClaims(ti.URL(), c.Now())

	if _, err := v.Verify(t.Context(), ec.sign(t, claims, nil)); err != nil {
		t.Errorf("ES256 token: %v", err)
	}
	if _, err := v.Verify(t.Context(), rsa.sign(t, claims, nil)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("RS256 token with only ES256 accepted: error = %v, want ErrInvalidToken", err)
	}
}

// unsigned returns an unsecured JWS (RFC 7515 Appendix A.5) of claims.
func unsigned(t *testing.T, claims map[string]any, kid string) string {
	t.Helper()
	return encodeSegment(t, map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}) + "." + encodeSegment(t, claims) + "."
}

// hmacSigned returns an HS256 token keyed with secret, the forgery that
// works against verifiers taking the algorithm from the token.
func hmacSigned(t *testing.T, claims map[string]any, kid string, secret []byte) string {
	t.Helper()
	input := encodeSegment(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}) + "." + encodeSegment(t, claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// appendToSignature returns token with extra bytes after its signature.
func appendToSignature(t *testing.T, token string, extra []byte) string {
	t.Helper()
	dot := strings.LastIndex(token, ".")
	signature, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	return token[:dot+1] + base64.RawURLEncoding.EncodeToString(append(signature, extra...))
}

// swapSignature returns token with the signature of other.
func swapSignature(token, other string) string {
	return token[:strings.LastIndex(token, ".")] + other[strings.LastIndex(other, "."):]
}

// signRaw signs payload as it is, without JSON encoding.
func (k testKey) signRaw(t *testing.T, payload string) string {
	t.Helper()
	input := encodeSegment(t, map[string]any{"alg": string(k.alg), "kid": k.kid, "typ": "at+jwt"}) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return input + "." + base64.RawURLEncoding.EncodeToString(k.signature(t, input))
}

func TestVerifyAcceptsGoJOSESignedToken(t *testing.T) {
	t.Parallel()
	// A token signed by go-jose's signer rather than this file's helpers,
	// so a mistake shared by the helpers and the verifier cannot hide.
	for _, k := range []testKey{rsaKey(t), ecKey(t), edKey(t)} {
		t.Run(string(k.alg), func(t *testing.T) {
			ti := newTestIssuer(t, k)
			c := newClock()
			v := newTestVerifier(t, ti, c, Config{})
			token := goJOSESigned(t, k, validClaims(ti.URL(), c.Now()))
			if _, err := v.Verify(t.Context(), token); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyOtherAlgorithms(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := []testKey{
		{kid: "ps-1", alg: jose.PS256, priv: rsaKey(t).priv},
		{kid: "ec384-1", alg: jose.ES384, priv: p384},
		{kid: "ec521-1", alg: jose.ES512, priv: p521},
	}
	ti := newTestIssuer(t, keys...)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{Algorithms: []string{"PS256", "ES384", "ES512"}})

	for _, k := range keys {
		t.Run(string(k.alg), func(t *testing.T) {
			claims := validClaims(ti.URL(), c.Now())
			token := goJOSESigned(t, k, claims)
			if _, err := v.Verify(t.Context(), token); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			tampered := tamper(t, token, with(claims, map[string]any{"scope": "admin"}))
			if _, err := v.Verify(t.Context(), tampered); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("tampered token: error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

// goJOSESigned returns a token of claims signed by go-jose's signer.
func goJOSESigned(t *testing.T, k testKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"),
	)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(encodeJSON(t, claims)))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func encodeJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(encodeSegment(t, v))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

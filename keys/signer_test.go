package keys

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite/token/jwt"
)

func TestSignerRoundTrip(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			env := newTestEnv(t)
			m := env.manager(t, alg)
			active := keyInState(t, m, StateActive)
			signer := m.Signer()
			claims := accessTokenClaims()

			// A caller's alg and kid never reach the header.
			header := accessTokenHeader()
			header.Add("kid", "caller-kid")
			header.Add("x-tenant", "blue")

			token, sig, err := signer.Generate(t.Context(), claims, header)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if parts := strings.Split(token, "."); len(parts) != 3 || parts[2] != sig {
				t.Fatalf("Generate returned signature %q, want the third segment of %q", sig, token)
			}

			decoded, err := signer.Decode(t.Context(), token)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			wantHeader := map[string]any{"alg": alg, "kid": active.KeyID, "typ": "at+jwt", "x-tenant": "blue"}
			if diff := cmp.Diff(wantHeader, decoded.Header); diff != "" {
				t.Errorf("decoded header (-want +got):\n%s", diff)
			}
			if string(decoded.Method) != alg {
				t.Errorf("decoded Method = %q, want %q", decoded.Method, alg)
			}
			wantClaims := jwt.MapClaims{
				"iss":       claims["iss"],
				"sub":       claims["sub"],
				"aud":       []any{"https://api.example.test"},
				"client_id": claims["client_id"],
				"exp":       claims["exp"],
				"iat":       claims["iat"],
				"jti":       claims["jti"],
				"scp":       []any{"openid", "offline_access", "read"},
			}
			if diff := cmp.Diff(wantClaims, decoded.Claims); diff != "" {
				t.Errorf("decoded claims (-want +got):\n%s", diff)
			}
			if err := decoded.Claims.Valid(); err != nil {
				t.Errorf("MapClaims.Valid on decoded claims: %v", err)
			}

			gotSig, err := signer.Validate(t.Context(), token)
			if err != nil || gotSig != sig {
				t.Errorf("Validate = %q, %v, want %q", gotSig, err, sig)
			}

			verifyWithJWKS(t, m.JWKS(), token, alg, claims["sub"].(string))
		})
	}
}

// verifyWithJWKS checks token with go-jose alone against the published
// JWKS, as a resource server would.
func verifyWithJWKS(t *testing.T, jwks []byte, token, alg, wantSubject string) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	parsed, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("go-jose ParseSigned: %v", err)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys for kid %q, want 1", len(keys), parsed.Headers[0].KeyID)
	}
	var claims josejwt.Claims
	if err := parsed.Claims(keys[0], &claims); err != nil {
		t.Fatalf("go-jose verify against JWKS: %v", err)
	}
	if claims.Subject != wantSubject {
		t.Errorf("go-jose subject = %q, want %q", claims.Subject, wantSubject)
	}
	if err := claims.Validate(josejwt.Expected{Time: time.Now()}); err != nil {
		t.Errorf("go-jose claims validation: %v", err)
	}
}

func TestSignerDecodeExpiredClaims(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "EdDSA")
	claims := accessTokenClaims()
	claims["exp"] = time.Now().Add(-time.Minute).Unix()

	token, _, err := m.Signer().Generate(t.Context(), claims, accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := m.Signer().Decode(t.Context(), token)
	if err != nil {
		t.Fatalf("Decode checks expiry, want it left to the caller: %v", err)
	}
	if flags := validationFlags(decoded.Claims.Valid()); flags&jwt.ValidationErrorExpired == 0 {
		t.Errorf("MapClaims.Valid flags = %b, want ValidationErrorExpired", flags)
	}
}

func TestSignerTypeHeader(t *testing.T) {
	tests := []struct {
		name   string
		typ    any // nil leaves typ out
		wantOK bool
	}{
		{name: "at+jwt", typ: "at+jwt", wantOK: true},
		{name: "upper case", typ: "AT+JWT", wantOK: true},
		{name: "media type", typ: "application/at+jwt", wantOK: true},
		{name: "JWT", typ: "JWT"},
		{name: "missing", typ: nil},
		{name: "not a string", typ: 1},
	}
	env := newTestEnv(t)
	m := env.manager(t, "EdDSA")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := &jwt.Headers{}
			if tt.typ != nil {
				header.Add("typ", tt.typ)
			}
			token, _, err := m.Signer().Generate(t.Context(), accessTokenClaims(), header)
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Signer().Decode(t.Context(), token)
			if tt.wantOK {
				if err != nil {
					t.Errorf("Decode: %v", err)
				}
				return
			}
			if flags := validationFlags(err); flags != jwt.ValidationErrorUnverifiable {
				t.Errorf("Decode error %v has flags %b, want ValidationErrorUnverifiable", err, flags)
			}
		})
	}
}

func TestSignerRejectsForgeries(t *testing.T) {
	// The store starts on RS256 and switches to EdDSA, so keys of both
	// algorithms are published.
	env := newTestEnv(t)
	rsaManager := env.manager(t, "RS256")
	rsaKID := keyInState(t, rsaManager, StateActive).KeyID
	m := env.manager(t, "EdDSA")
	edKID := keyInState(t, m, StateActive).KeyID

	rsaPublic, ok := m.PublicKey(rsaKID)
	if !ok {
		t.Fatal("the retired RS256 key is not published")
	}
	rsaPublicDER, err := x509.MarshalPKIXPublicKey(rsaPublic.Key)
	if err != nil {
		t.Fatal(err)
	}
	_, strangerKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid, _, err := m.Signer().Generate(t.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}
	atHeader := map[string]any{"typ": "at+jwt"}

	tests := []struct {
		name      string
		token     string
		wantFlags uint32
	}{
		{
			name:      "alg none",
			token:     unsignedToken(t, map[string]any{"alg": "none", "kid": edKID, "typ": "at+jwt"}),
			wantFlags: jwt.ValidationErrorUnverifiable,
		},
		{
			name:      "HS256 keyed with RSA public key",
			token:     signToken(t, jose.HS256, rsaPublicDER, withHeader(atHeader, "kid", rsaKID)),
			wantFlags: jwt.ValidationErrorUnverifiable,
		},
		{
			name:      "HS256 keyed with JWKS",
			token:     signToken(t, jose.HS256, m.JWKS(), withHeader(atHeader, "kid", rsaKID)),
			wantFlags: jwt.ValidationErrorUnverifiable,
		},
		{
			name:      "unknown kid",
			token:     signToken(t, jose.EdDSA, strangerKey, withHeader(atHeader, "kid", "unknown")),
			wantFlags: jwt.ValidationErrorUnverifiable,
		},
		{
			name:      "missing kid",
			token:     signToken(t, jose.EdDSA, strangerKey, atHeader),
			wantFlags: jwt.ValidationErrorUnverifiable,
		},
		{
			name:      "alg of another published key",
			token:     signToken(t, jose.EdDSA, strangerKey, withHeader(atHeader, "kid", rsaKID)),
			wantFlags: jwt.ValidationErrorUnverifiable,
		},
		{
			name:      "published kid with a stranger's signature",
			token:     signToken(t, jose.EdDSA, strangerKey, withHeader(atHeader, "kid", edKID)),
			wantFlags: jwt.ValidationErrorSignatureInvalid,
		},
		{
			name:      "crit header",
			token:     signToken(t, jose.EdDSA, strangerKey, withHeader(withHeader(atHeader, "kid", edKID), "crit", []string{"exp"})),
			wantFlags: jwt.ValidationErrorUnverifiable,
		},
		{
			name:      "tampered payload",
			token:     tamperPayload(t, valid),
			wantFlags: jwt.ValidationErrorSignatureInvalid,
		},
		{
			name:      "signature removed",
			token:     valid[:strings.LastIndexByte(valid, '.')+1],
			wantFlags: jwt.ValidationErrorSignatureInvalid,
		},
		{
			name:      "1 MiB token",
			token:     valid + strings.Repeat("A", 1<<20),
			wantFlags: jwt.ValidationErrorMalformed,
		},
		{
			name:      "5000 dots",
			token:     strings.Repeat(".", 5000),
			wantFlags: jwt.ValidationErrorMalformed,
		},
		{
			name:      "two parts",
			token:     base64URL(`{"alg":"EdDSA"}`) + "." + base64URL(`{}`),
			wantFlags: jwt.ValidationErrorMalformed,
		},
		{
			name:      "not base64url",
			token:     "!!!.???.###",
			wantFlags: jwt.ValidationErrorMalformed,
		},
		{
			name:      "empty",
			token:     "",
			wantFlags: jwt.ValidationErrorMalformed,
		},
		{
			name:      "JWS JSON serialization",
			token:     `{"payload":"` + base64URL(`{}`) + `","protected":"` + base64URL(`{"alg":"EdDSA"}`) + `","signature":"AA"}`,
			wantFlags: jwt.ValidationErrorMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decoded, err := m.Signer().Decode(t.Context(), tt.token)
			if err == nil {
				t.Fatalf("Decode accepted the token, header %v", decoded.Header)
			}
			if flags := validationFlags(err); flags != tt.wantFlags {
				t.Errorf("Decode error %q has flags %b, want %b", err, flags, tt.wantFlags)
			}
			if _, err := m.Signer().Validate(t.Context(), tt.token); validationFlags(err) != tt.wantFlags {
				t.Errorf("Validate error %v, want flags %b", err, tt.wantFlags)
			}
		})
	}
}

// signToken signs accessTokenClaims with key, putting header in the
// protected header as given.
func signToken(t *testing.T, alg jose.SignatureAlgorithm, key any, header map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	for k, v := range header {
		opts.ExtraHeaders[jose.HeaderKey(k)] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatalf("new %s signer: %v", alg, err)
	}
	token, err := josejwt.Signed(signer).Claims(map[string]any(accessTokenClaims())).Serialize()
	if err != nil {
		t.Fatalf("sign %s token: %v", alg, err)
	}
	return token
}

// unsignedToken builds a token with an empty signature, as "alg": "none"
// tokens have (RFC 7519 §6.1).
func unsignedToken(t *testing.T, header map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(accessTokenClaims())
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// tamperPayload replaces the subject in the payload and keeps the header
// and signature.
func tamperPayload(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(payload), "user-42", "admin-1", 1)
	if changed == string(payload) {
		t.Fatal("payload has no subject to tamper with")
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(changed))
	return strings.Join(parts, ".")
}

func base64URL(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func withHeader(h map[string]any, name string, value any) map[string]any {
	out := make(map[string]any, len(h)+1)
	for k, v := range h {
		out[k] = v
	}
	out[name] = value
	return out
}

func TestSignerGenerateErrors(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "EdDSA")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		claims jwt.MapClaims
		header jwt.Mapper
	}{
		{name: "nil claims", ctx: t.Context(), claims: nil, header: accessTokenHeader()},
		{name: "nil header", ctx: t.Context(), claims: accessTokenClaims(), header: nil},
		{name: "canceled context", ctx: canceled, claims: accessTokenClaims(), header: accessTokenHeader()},
		{
			name:   "header value that does not encode",
			ctx:    t.Context(),
			claims: accessTokenClaims(),
			header: &jwt.Headers{Extra: map[string]any{"typ": "at+jwt", "bad": make(chan int)}},
		},
		{
			name:   "token over 8 KiB",
			ctx:    t.Context(),
			claims: jwt.MapClaims{"sub": strings.Repeat("x", maxTokenSize)},
			header: accessTokenHeader(),
		},
		{
			name:   "claim that does not encode",
			ctx:    t.Context(),
			claims: jwt.MapClaims{"bad": func() {}},
			header: accessTokenHeader(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := m.Signer().Generate(tt.ctx, tt.claims, tt.header); err == nil {
				t.Error("Generate succeeded, want an error")
			}
		})
	}
}

func TestSignerHeaderSets(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "ES256")
	headers := []map[string]any{
		{"typ": "at+jwt"},
		{"typ": "at+jwt", "x-tenant": "blue"},
		{"typ": "at+jwt", "x-tenant": "green"},
		{"typ": "at+jwt", "x-list": []any{"a", "b"}}, // never cached
	}
	for i := range maxCachedHeaderSets + 2 {
		headers = append(headers, map[string]any{"typ": "at+jwt", "x-n": i})
	}

	// Goroutines sign with every header set at once, so the race detector
	// checks concurrent cache reads and additions.
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(headers))
	for range 4 {
		wg.Go(func() {
			for _, h := range headers {
				token, _, err := m.Signer().Generate(t.Context(), accessTokenClaims(), &jwt.Headers{Extra: h})
				if err != nil {
					errs <- err
					return
				}
				decoded, err := m.Signer().Decode(t.Context(), token)
				if err != nil {
					errs <- err
					return
				}
				for k, v := range h {
					if !cmp.Equal(decoded.Header[k], normalizeJSON(t, v)) {
						t.Errorf("header %q = %v, want %v", k, decoded.Header[k], v)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	signing := m.current().active
	if got := len(*signing.signers.Load()); got != maxCachedHeaderSets {
		t.Errorf("cached header sets = %d, want the maximum %d", got, maxCachedHeaderSets)
	}
}

// normalizeJSON returns v as it reads back from JSON.
func normalizeJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSignerHelpers(t *testing.T) {
	env := newTestEnv(t)
	s := env.manager(t, "EdDSA").Signer()

	if got := s.GetSigningMethodLength(t.Context()); got != 32 {
		t.Errorf("GetSigningMethodLength = %d, want 32", got)
	}
	sum, err := s.Hash(t.Context(), []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	want := crypto.SHA256.New()
	want.Write([]byte("abc"))
	if diff := cmp.Diff(want.Sum(nil), sum); diff != "" {
		t.Errorf("Hash (-want +got):\n%s", diff)
	}

	tests := []struct {
		name    string
		token   string
		want    string
		wantErr bool
	}{
		{name: "three parts", token: "a.b.c", want: "c"},
		{name: "empty signature", token: "a.b.", want: ""},
		{name: "two parts", token: "a.b", wantErr: true},
		{name: "four parts", token: "a.b.c.d", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.GetSignature(t.Context(), tt.token)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("GetSignature(%q) = %q, %v, want %q, error %v", tt.token, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestECDSAJOSESignature(t *testing.T) {
	tests := []struct {
		name    string
		der     []byte
		want    []byte
		wantErr bool
	}{
		{
			// SEQUENCE { INTEGER 0x00ff, INTEGER 0x01 }: the leading zero
			// keeps r positive and is dropped.
			name: "short values padded",
			der:  []byte{0x30, 0x07, 0x02, 0x02, 0x00, 0xff, 0x02, 0x01, 0x01},
			want: []byte{0, 0xff, 0, 0x01},
		},
		{
			name:    "value too long",
			der:     []byte{0x30, 0x08, 0x02, 0x03, 0x01, 0x02, 0x03, 0x02, 0x01, 0x01},
			wantErr: true,
		},
		{
			name:    "trailing bytes",
			der:     []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00},
			wantErr: true,
		},
		{name: "empty", der: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ecdsaJOSESignature(tt.der, 2)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); !tt.wantErr && diff != "" {
				t.Errorf("signature (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSignerDecodeCanceledContext(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "EdDSA")
	token, _, err := m.Signer().Generate(t.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	_, err = m.Signer().Decode(ctx, token)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Decode error = %v, want context.Canceled", err)
	}
}

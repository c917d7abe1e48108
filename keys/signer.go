package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/ory/fosite/token/jwt"
)

var _ jwt.Signer = (*Signer)(nil)

// maxTokenSize is the largest token, in bytes, that Decode parses and that
// Generate returns. The limit keeps parsing cost bounded.
const maxTokenSize = 8 << 10

// Accepted values of the typ header (RFC 9068 §2.1). Media types compare
// case-insensitively, and "application/" may be left out (RFC 7515 §4.1.9).
const (
	typeAccessToken          = "at+jwt"
	typeAccessTokenMediaType = "application/at+jwt"
)

// Signer signs and verifies JWT access tokens with the keys of a [Manager].
// It implements fosite's jwt.Signer and is safe for concurrent use.
type Signer struct {
	m *Manager
}

// Generate signs claims with the active key and returns the compact token
// and its signature segment. The protected header carries alg and kid of
// the active key plus every entry of header.ToMap() except alg and kid.
// Decode accepts only tokens whose typ is at+jwt, so callers set typ in
// header. A token larger than Decode accepts (8 KiB) is an error.
func (s *Signer) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	if claims == nil || header == nil {
		return "", "", errors.New("keys: sign token: claims and header must not be nil")
	}
	key := s.m.current().active
	if key == nil {
		return "", "", errors.New("keys: sign token: no active signing key")
	}

	signer, err := key.joseSigner(withoutReservedHeaders(header.ToMap()))
	if err != nil {
		return "", "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", "", fmt.Errorf("keys: sign token: encode claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("keys: sign token with kid %q: %w", key.kid, err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("keys: sign token with kid %q: %w", key.kid, err)
	}
	if len(token) > maxTokenSize {
		return "", "", fmt.Errorf("keys: sign token: token is %d bytes, more than the %d that Decode accepts, so reduce the claims", len(token), maxTokenSize)
	}
	return token, token[strings.LastIndexByte(token, '.')+1:], nil
}

// withoutReservedHeaders drops alg and kid, which always name the signing
// key. It copies h only when it has to remove something.
func withoutReservedHeaders(h map[string]any) map[string]any {
	_, hasAlg := h["alg"]
	_, hasKID := h["kid"]
	if !hasAlg && !hasKID {
		return h
	}
	out := make(map[string]any, len(h))
	for k, v := range h {
		if k != "alg" && k != "kid" {
			out[k] = v
		}
	}
	return out
}

// Decode verifies token and returns its header and claims. It checks that
// the kid names a published key, that alg is that key's algorithm, that typ
// is at+jwt or application/at+jwt, and the signature. It does not check
// exp, iat or nbf, which callers do with MapClaims.Valid. The returned
// Token's Valid method reports false because fosite sets that flag only in
// its own parser.
//
// Every error caused by the token is a *jwt.ValidationError whose flag is
// ValidationErrorMalformed when the token cannot be parsed,
// ValidationErrorUnverifiable when its header does not match a published
// key, and ValidationErrorSignatureInvalid when the signature does not
// verify. A canceled ctx returns ctx.Err() unchanged.
func (s *Signer) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Reject oversized and misshapen input before any decoding work.
	if len(token) > maxTokenSize {
		return nil, malformed(fmt.Errorf("token is %d bytes, more than the limit of %d", len(token), maxTokenSize))
	}
	if strings.Count(token, ".") != 2 {
		return nil, malformed(errors.New("token is not a compact JWS with three parts"))
	}

	set := s.m.current()
	if len(set.algs) == 0 {
		return nil, unverifiable(errors.New("no key is published"))
	}
	jws, err := jose.ParseSignedCompact(token, set.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, unverifiable(err)
		}
		return nil, malformed(err)
	}
	h := jws.Signatures[0].Header

	key, err := verificationKey(set, h)
	if err != nil && h.KeyID != "" && set.published[h.KeyID] == nil && s.m.reloadForUnknownKey(ctx) {
		// Another process may have rotated since this one last loaded.
		key, err = verificationKey(s.m.current(), h)
	}
	if err != nil {
		return nil, unverifiable(err)
	}
	payload, err := jws.Verify(key.public.Key)
	if err != nil {
		return nil, &jwt.ValidationError{
			Errors: jwt.ValidationErrorSignatureInvalid,
			Inner:  fmt.Errorf("keys: decode token: signature of kid %q: %w", h.KeyID, err),
		}
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, malformed(err)
	}

	decoded := &jwt.Token{Header: tokenHeader(h), Claims: claims}
	setString(&decoded.Method, h.Algorithm)
	return decoded, nil
}

// verificationKey returns the published key that h names, after checking
// the header against it. Because the key is chosen by kid and its own
// algorithm must match alg, an attacker cannot pick the algorithm: "none"
// and HS256 keyed with a public key both fail here or in the parser.
func verificationKey(set *keySet, h jose.Header) (*loadedKey, error) {
	if h.KeyID == "" {
		return nil, errors.New("token header has no kid")
	}
	key, ok := set.published[h.KeyID]
	if !ok {
		return nil, fmt.Errorf("kid %q is not a published key", h.KeyID)
	}
	if h.Algorithm != string(key.alg) {
		return nil, fmt.Errorf("token alg %q differs from algorithm %s of kid %q", h.Algorithm, key.alg, h.KeyID)
	}

	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, typeAccessToken) && !strings.EqualFold(typ, typeAccessTokenMediaType) {
		return nil, fmt.Errorf("token typ %q is not %s", typ, typeAccessToken)
	}
	// This server never issues crit or b64, and b64=false would change what
	// the signature covers (RFC 7797).
	for _, name := range []jose.HeaderKey{"crit", "b64"} {
		if _, ok := h.ExtraHeaders[name]; ok {
			return nil, fmt.Errorf("token header has unsupported %q", name)
		}
	}
	return key, nil
}

// decodeClaims decodes a JSON object the way fosite's MapClaims expects:
// integers become int64 and other numbers float64.
func decodeClaims(payload []byte) (jwt.MapClaims, error) {
	dec := josejson.NewDecoder(bytes.NewReader(payload))
	dec.SetNumberType(josejson.UnmarshalIntOrFloat)
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if claims == nil {
		return nil, errors.New("decode claims: payload is not a JSON object")
	}
	return jwt.MapClaims(claims), nil
}

// tokenHeader returns the header map fosite's Token carries.
func tokenHeader(h jose.Header) map[string]any {
	out := make(map[string]any, len(h.ExtraHeaders)+2)
	for k, v := range h.ExtraHeaders {
		out[string(k)] = v
	}
	out["alg"] = h.Algorithm
	out["kid"] = h.KeyID
	return out
}

// setString assigns s to a field of any string type.
//
// NOTE: fosite's jwt.Token.Method has go-jose v3's SignatureAlgorithm type.
// This package uses go-jose v4 only, so the type is inferred here rather
// than imported.
func setString[T ~string](dst *T, s string) {
	*dst = T(s)
}

// Validate verifies token like Decode and returns its signature segment.
func (s *Signer) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

// Hash returns the SHA-256 digest of in.
func (s *Signer) Hash(_ context.Context, in []byte) ([]byte, error) {
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// GetSignature returns the signature segment of a compact token without
// verifying it.
func (s *Signer) GetSignature(_ context.Context, token string) (string, error) {
	if strings.Count(token, ".") != 2 {
		return "", malformed(errors.New("token is not a compact JWS with three parts"))
	}
	return token[strings.LastIndexByte(token, '.')+1:], nil
}

// GetSigningMethodLength returns the size in bytes of the SHA-256 digest
// that Hash returns.
func (s *Signer) GetSigningMethodLength(_ context.Context) int {
	return sha256.Size
}

func malformed(err error) *jwt.ValidationError {
	return &jwt.ValidationError{
		Errors: jwt.ValidationErrorMalformed,
		Inner:  fmt.Errorf("keys: decode token: %w", err),
	}
}

func unverifiable(err error) *jwt.ValidationError {
	return &jwt.ValidationError{
		Errors: jwt.ValidationErrorUnverifiable,
		Inner:  fmt.Errorf("keys: decode token: %w", err),
	}
}

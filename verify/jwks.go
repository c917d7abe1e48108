package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// maxDocumentSize bounds a discovery or JWKS response body. The server's
// JWKS contains a few keys of about 500 bytes each.
const maxDocumentSize = 1 << 20

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// publicKey is a parsed verification key with the one algorithm it may be
// used with.
type publicKey struct {
	alg jose.SignatureAlgorithm
	key crypto.PublicKey
}

// keySet is an immutable snapshot of the usable keys of one JWKS,
// indexed by kid.
type keySet struct {
	byKID map[string][]publicKey
}

// find returns the key for kid and alg. It reports found=false when no key
// has that kid, and an error wrapping ErrInvalidToken when the kid is
// known but its key is for another algorithm.
func (s *keySet) find(kid string, alg jose.SignatureAlgorithm) (crypto.PublicKey, bool, error) {
	keys, ok := s.byKID[kid]
	if !ok {
		return nil, false, nil
	}
	for _, k := range keys {
		if k.alg == alg {
			return k.key, true, nil
		}
	}
	return nil, true, fmt.Errorf("%w: key %q is not for algorithm %s", ErrInvalidToken, kid, alg)
}

func (s *keySet) kids() []string {
	kids := make([]string, 0, len(s.byKID))
	for kid := range s.byKID {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	return kids
}

// parseJWKS parses a JWKS document (RFC 7517 §5) and keeps the keys that
// can verify tokens under the accepted algorithms. Unusable keys are
// skipped and logged, so one odd key does not hide the others. It returns
// an error when no usable key remains.
func parseJWKS(ctx context.Context, body []byte, accepted []jose.SignatureAlgorithm, logger *slog.Logger) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}

	set := &keySet{byKID: make(map[string][]publicKey, len(doc.Keys))}
	for i, raw := range doc.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			logger.DebugContext(ctx, "JWKS key skipped", "index", i, "err", err)
			continue
		}
		k, err := usableKey(jwk, accepted)
		if err != nil {
			logger.DebugContext(ctx, "JWKS key skipped", "index", i, "kid", jwk.KeyID, "err", err)
			continue
		}
		if _, found, _ := set.find(jwk.KeyID, k.alg); found {
			logger.DebugContext(ctx, "JWKS key skipped", "index", i, "kid", jwk.KeyID, "err", "repeats an earlier kid and alg")
			continue
		}
		set.byKID[jwk.KeyID] = append(set.byKID[jwk.KeyID], k)
	}
	if len(set.byKID) == 0 {
		return nil, fmt.Errorf("JWKS has no usable signing key among %d keys", len(doc.Keys))
	}
	return set, nil
}

// usableKey checks that jwk is a public signing key with a kid and an
// accepted alg that fits its key type, and returns it parsed.
func usableKey(jwk jose.JSONWebKey, accepted []jose.SignatureAlgorithm) (publicKey, error) {
	if jwk.KeyID == "" {
		return publicKey{}, errors.New("no kid")
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return publicKey{}, fmt.Errorf("use is %q, not sig", jwk.Use)
	}
	if !jwk.IsPublic() {
		// A symmetric or private key in a JWKS is a publishing mistake, so
		// it is never used to verify.
		return publicKey{}, errors.New("not a public key")
	}
	// NOTE: a key without alg is skipped rather than matched by key type,
	// so that the token's alg header never chooses how a key is used
	// (RFC 8725 §3.1). The authorization server sets alg on every key.
	alg := jose.SignatureAlgorithm(jwk.Algorithm)
	if alg == "" {
		return publicKey{}, errors.New("no alg")
	}
	if !slices.Contains(accepted, alg) {
		return publicKey{}, fmt.Errorf("alg %s is not accepted", alg)
	}
	if err := checkKeyType(alg, jwk.Key); err != nil {
		return publicKey{}, err
	}
	return publicKey{alg: alg, key: jwk.Key}, nil
}

func checkKeyType(alg jose.SignatureAlgorithm, key crypto.PublicKey) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		default:
			return fmt.Errorf("RSA key cannot be used with %s", alg)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits, fewer than %d", k.N.BitLen(), minRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		if want := curveFor(alg); want == nil || k.Curve != want {
			return fmt.Errorf("EC key on %s cannot be used with %s", k.Curve.Params().Name, alg)
		}
		return nil
	case ed25519.PublicKey:
		if alg != jose.EdDSA {
			return fmt.Errorf("Ed25519 key cannot be used with %s", alg)
		}
		return nil
	default:
		return fmt.Errorf("key type %T is not supported", key)
	}
}

// curveFor returns the curve an ECDSA algorithm requires (RFC 7518 §3.4),
// or nil for other algorithms.
func curveFor(alg jose.SignatureAlgorithm) elliptic.Curve {
	switch alg {
	case jose.ES256:
		return elliptic.P256()
	case jose.ES384:
		return elliptic.P384()
	case jose.ES512:
		return elliptic.P521()
	default:
		return nil
	}
}

// fetchJSON GETs url and decodes its JSON body into dst. The body is
// bounded by maxDocumentSize and the request by the fetch timeout.
func (v *Verifier) fetchJSON(ctx context.Context, url string, dst any) error {
	body, err := v.fetch(ctx, url)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}

// fetch GETs url and returns the body of a 200 response.
func (v *Verifier) fetch(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("fetch %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: read body: %w", url, err)
	}
	if len(body) > maxDocumentSize {
		return nil, fmt.Errorf("fetch %s: body is larger than %d bytes", url, maxDocumentSize)
	}
	return body, nil
}

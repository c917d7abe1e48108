package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// rsaKeyBits is the modulus size of generated RS256 keys.
const rsaKeyBits = 2048

// keyGenerator returns a fresh private key for a JOSE algorithm.
type keyGenerator func(alg string) (crypto.Signer, error)

// generateKey creates an RSA 2048 key for RS256, a P-256 key for ES256 and an
// Ed25519 key for EdDSA.
func generateKey(alg string) (crypto.Signer, error) {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256:
		return rsa.GenerateKey(rand.Reader, rsaKeyBits)
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return priv, nil
	default:
		return nil, unsupportedAlgorithmError(alg)
	}
}

func unsupportedAlgorithmError(alg string) error {
	return fmt.Errorf("unsupported algorithm %q, use RS256, ES256 or EdDSA", alg)
}

// checkKeyType reports an error unless pub is the key type alg signs with:
// RSA of at least 2048 bits for RS256, P-256 for ES256, Ed25519 for EdDSA.
func checkKeyType(alg string, pub crypto.PublicKey) error {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA key, got %T", alg, pub)
		}
		if k.N.BitLen() < rsaKeyBits {
			return fmt.Errorf("%s key has %d bits, need at least %d", alg, k.N.BitLen(), rsaKeyBits)
		}
		return nil
	case jose.ES256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != elliptic.P256() {
			return fmt.Errorf("%s needs a P-256 ECDSA key, got %T", alg, pub)
		}
		return nil
	case jose.EdDSA:
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return fmt.Errorf("%s needs an Ed25519 key, got %T", alg, pub)
		}
		return nil
	default:
		return unsupportedAlgorithmError(alg)
	}
}

// publicJWK returns the public JWK of pub with use "sig", alg and kid set.
// The kid is the RFC 7638 thumbprint (SHA-256, base64url) of the key.
func publicJWK(alg string, pub crypto.PublicKey) (jose.JSONWebKey, error) {
	jwk := jose.JSONWebKey{Key: pub, Algorithm: alg, Use: "sig"}
	kid, err := thumbprint(jwk)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	jwk.KeyID = kid

	// A JWK built from a private key carries d, p and q, which the JWKS must
	// never contain.
	if !jwk.Valid() || !jwk.IsPublic() {
		return jose.JSONWebKey{}, fmt.Errorf("keys: JWK of kid %q is not a valid public key", kid)
	}
	return jwk, nil
}

// thumbprint returns the RFC 7638 JWK thumbprint of jwk, SHA-256 and
// base64url-encoded without padding.
func thumbprint(jwk jose.JSONWebKey) (string, error) {
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: compute JWK thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// newKeyRecord generates a key of alg and returns its record in state, with
// the private key sealed by s.
func newKeyRecord(generate keyGenerator, s *sealer, alg string, state State) (Record, error) {
	priv, err := generate(alg)
	if err != nil {
		return Record{}, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	return recordFor(s, alg, state, priv)
}

// recordFor builds the record of priv: the kid, the public JWK as JSON and
// the PKCS #8 DER of the private key sealed by s.
func recordFor(s *sealer, alg string, state State, priv crypto.Signer) (Record, error) {
	if err := checkKeyType(alg, priv.Public()); err != nil {
		return Record{}, fmt.Errorf("keys: new %s key: %w", alg, err)
	}
	jwk, err := publicJWK(alg, priv.Public())
	if err != nil {
		return Record{}, err
	}
	public, err := json.Marshal(jwk)
	if err != nil {
		return Record{}, fmt.Errorf("keys: encode public JWK of kid %q: %w", jwk.KeyID, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Record{}, fmt.Errorf("keys: encode private key of kid %q: %w", jwk.KeyID, err)
	}
	sealed := s.seal(jwk.KeyID, alg, der)
	clear(der)

	return Record{
		KeyID:      jwk.KeyID,
		Algorithm:  alg,
		State:      state,
		PrivateKey: sealed,
		PublicKey:  public,
	}, nil
}

// parsePrivateKey decodes PKCS #8 DER into a crypto.Signer of the key type
// alg needs.
func parsePrivateKey(kid, alg string, der []byte) (crypto.Signer, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: parse private key of kid %q: %w", kid, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: private key of kid %q has type %T, which cannot sign", kid, parsed)
	}
	if err := checkKeyType(alg, priv.Public()); err != nil {
		return nil, fmt.Errorf("keys: private key of kid %q: %w", kid, err)
	}
	return priv, nil
}

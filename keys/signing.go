package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// maxCachedHeaderSets bounds how many distinct protected headers one
// signing key keeps a jose.Signer for. Callers use one or two header sets,
// so the bound only matters for a caller that puts per-token values in the
// header, which then gets a new jose.Signer per call.
const maxCachedHeaderSets = 8

// signingKey is the active key prepared for signing. go-jose fixes the
// extra protected headers when a jose.Signer is built, so signingKey keeps
// one jose.Signer per header set and reuses it across calls.
type signingKey struct {
	kid    string
	alg    jose.SignatureAlgorithm
	opaque *opaqueSigner

	mu      sync.Mutex // serialises additions to signers
	signers atomic.Pointer[[]headerSigner]
}

type headerSigner struct {
	header map[string]any
	signer jose.Signer
}

func newSigningKey(alg jose.SignatureAlgorithm, priv crypto.Signer, public *jose.JSONWebKey) *signingKey {
	return &signingKey{
		kid: public.KeyID,
		alg: alg,
		opaque: &opaqueSigner{
			signer: priv,
			alg:    alg,
			algs:   []jose.SignatureAlgorithm{alg},
			public: public,
		},
	}
}

// joseSigner returns a jose.Signer that adds header to the protected header.
// The lookup is lock-free; only a header set not seen before takes the lock.
func (k *signingKey) joseSigner(header map[string]any) (jose.Signer, error) {
	if cached := k.cachedSigner(header); cached != nil {
		return cached, nil
	}

	signer, err := k.newJoseSigner(header)
	if err != nil {
		return nil, err
	}
	if !cacheableHeader(header) {
		return signer, nil
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if cached := k.cachedSigner(header); cached != nil {
		return cached, nil
	}
	var entries []headerSigner
	if p := k.signers.Load(); p != nil {
		entries = *p
	}
	if len(entries) >= maxCachedHeaderSets {
		return signer, nil
	}
	// Copy on write: readers iterate the old slice without a lock.
	grown := append(slices.Clip(entries), headerSigner{header: maps.Clone(header), signer: signer})
	k.signers.Store(&grown)
	return signer, nil
}

func (k *signingKey) cachedSigner(header map[string]any) jose.Signer {
	p := k.signers.Load()
	if p == nil {
		return nil
	}
	for _, e := range *p {
		if sameHeader(e.header, header) {
			return e.signer
		}
	}
	return nil
}

func (k *signingKey) newJoseSigner(header map[string]any) (jose.Signer, error) {
	// go-jose panics when a header value does not encode, so check first.
	if _, err := json.Marshal(header); err != nil {
		return nil, fmt.Errorf("keys: sign token: encode header: %w", err)
	}
	opts := &jose.SignerOptions{ExtraHeaders: make(map[jose.HeaderKey]any, len(header))}
	for name, v := range header {
		opts.ExtraHeaders[jose.HeaderKey(name)] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.opaque}, opts)
	if err != nil {
		return nil, fmt.Errorf("keys: sign token: create signer for kid %q: %w", k.kid, err)
	}
	return signer, nil
}

// cacheableHeader reports whether every value of h is a string, bool or
// finite number. Only such headers are cached, because sameHeader can
// compare them with == without panicking.
func cacheableHeader(h map[string]any) bool {
	for _, v := range h {
		switch v := v.(type) {
		case string, bool, int, int64:
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// sameHeader reports whether h equals cached, a header that passed
// cacheableHeader. Go's == on two interfaces panics only when both hold the
// same non-comparable type, and every value in cached is comparable, so h
// may hold values of any type.
func sameHeader(cached, h map[string]any) bool {
	if len(cached) != len(h) {
		return false
	}
	for name, v := range h {
		c, ok := cached[name]
		if !ok || c != v {
			return false
		}
	}
	return true
}

// opaqueSigner adapts a crypto.Signer to go-jose's OpaqueSigner, so that a
// key held in a KMS or HSM can replace the local private key. It signs with
// exactly one algorithm.
type opaqueSigner struct {
	signer crypto.Signer
	alg    jose.SignatureAlgorithm
	algs   []jose.SignatureAlgorithm
	public *jose.JSONWebKey
}

var _ jose.OpaqueSigner = (*opaqueSigner)(nil)

// Public returns the public JWK; go-jose copies its kid into the header.
func (o *opaqueSigner) Public() *jose.JSONWebKey { return o.public }

// Algs returns the single algorithm this key signs with.
func (o *opaqueSigner) Algs() []jose.SignatureAlgorithm { return o.algs }

// SignPayload signs the JWS signing input and returns the signature in the
// JWS encoding of the algorithm (RFC 7518 §3).
func (o *opaqueSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != o.alg {
		return nil, jose.ErrUnsupportedAlgorithm
	}
	switch alg {
	case jose.RS256:
		digest := sha256.Sum256(payload)
		return o.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	case jose.ES256:
		digest := sha256.Sum256(payload)
		der, err := o.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		return ecdsaJOSESignature(der, 32)
	case jose.EdDSA:
		return o.signer.Sign(rand.Reader, payload, crypto.Hash(0))
	default:
		return nil, jose.ErrUnsupportedAlgorithm
	}
}

// ecdsaJOSESignature converts an ASN.1 DER ECDSA signature, the form
// crypto.Signer returns, to the fixed-size R || S form JWS uses
// (RFC 7518 §3.4). size is the byte length of the curve order.
func ecdsaJOSESignature(der []byte, size int) ([]byte, error) {
	var seq, r, s cryptobyte.String
	input := cryptobyte.String(der)
	if !input.ReadASN1(&seq, asn1.SEQUENCE) || !input.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) || !seq.Empty() {
		return nil, errors.New("keys: ECDSA signature is not valid ASN.1")
	}
	out := make([]byte, 2*size)
	if !putUnsigned(out[:size], r) || !putUnsigned(out[size:], s) {
		return nil, errors.New("keys: ECDSA signature value is larger than the curve order")
	}
	return out, nil
}

// putUnsigned writes the big-endian ASN.1 INTEGER content n right-aligned
// into dst, dropping the leading zero bytes that DER adds to keep n
// positive. It reports false when n does not fit.
func putUnsigned(dst []byte, n []byte) bool {
	for len(n) > 0 && n[0] == 0 {
		n = n[1:]
	}
	if len(n) > len(dst) {
		return false
	}
	copy(dst[len(dst)-len(n):], n)
	return true
}

package keys

import (
	"bytes"
	"cmp"
	"crypto"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// loadedKey is one stored key after validation. Keys that are next, active
// or still published carry their public JWK. Next and active keys also
// carry the opened private key, and the active key its signer.
type loadedKey struct {
	info   Info // Published is decided per snapshot, see keySet.isPublished
	alg    jose.SignatureAlgorithm
	public *jose.JSONWebKey
	// jwkJSON is the public JWK as it appears in the JWKS document.
	jwkJSON []byte
	// sealed and private are set for next and active keys. sealed lets a
	// reload reuse private when the stored row did not change.
	sealed  []byte
	private crypto.Signer
	signing *signingKey
}

// keySet is an immutable snapshot of the loaded keys and everything derived
// from them for publication and signing.
type keySet struct {
	keys      []*loadedKey // newest first
	active    *signingKey  // nil when the store has no active key
	published map[string]*loadedKey
	// algs lists the algorithms of the published keys, the only ones that
	// Decode accepts.
	algs []jose.SignatureAlgorithm
	jwks []byte
	// staleAt is the earliest end of publication among the published
	// retired keys, or zero when there is none.
	staleAt time.Time
}

func (s *keySet) isPublished(k *loadedKey) bool {
	_, ok := s.published[k.info.KeyID]
	return ok
}

// loadKeys validates records and opens the private keys of the next and
// active keys. Retired keys past their publication are listed but not
// parsed. prev, the snapshot loaded before, lets unchanged keys skip
// decryption and parsing. Any invalid record is an error, because a key set
// that cannot be trusted must not be served.
func loadKeys(records []Record, prev *keySet, s *sealer, now time.Time, publishFor time.Duration) ([]*loadedKey, error) {
	records = slices.Clone(records)
	slices.SortFunc(records, compareRecords)

	var prevKeys map[string]*loadedKey
	if prev != nil {
		prevKeys = make(map[string]*loadedKey, len(prev.keys))
		for _, k := range prev.keys {
			prevKeys[k.info.KeyID] = k
		}
	}

	keys := make([]*loadedKey, 0, len(records))
	var activeKID string
	for _, rec := range records {
		if rec.State == StateActive {
			if activeKID != "" {
				return nil, fmt.Errorf("keys: store has more than one active key: kids %q and %q", activeKID, rec.KeyID)
			}
			activeKID = rec.KeyID
		}
		k, err := loadKey(rec, prevKeys[rec.KeyID], s, now, publishFor)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// compareRecords orders records newest first. Keys created in the same
// rotation are ordered next, active, retired, then by kid.
func compareRecords(a, b Record) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	if c := cmp.Compare(stateRank(a.State), stateRank(b.State)); c != 0 {
		return c
	}
	return cmp.Compare(a.KeyID, b.KeyID)
}

func stateRank(s State) int {
	switch s {
	case StateNext:
		return 0
	case StateActive:
		return 1
	default:
		return 2
	}
}

func loadKey(rec Record, prev *loadedKey, s *sealer, now time.Time, publishFor time.Duration) (*loadedKey, error) {
	k := &loadedKey{
		info: Info{
			KeyID:       rec.KeyID,
			Algorithm:   rec.Algorithm,
			State:       rec.State,
			CreatedAt:   rec.CreatedAt,
			ActivatedAt: rec.ActivatedAt,
			RetiredAt:   rec.RetiredAt,
		},
		alg: jose.SignatureAlgorithm(rec.Algorithm),
	}
	switch rec.State {
	case StateNext, StateActive:
	case StateRetired:
		if !publishedUntil(rec.RetiredAt, publishFor).After(now) {
			return k, nil
		}
	default:
		return nil, fmt.Errorf("keys: kid %q has unknown state %q", rec.KeyID, rec.State)
	}

	public, err := parsePublicJWK(rec)
	if err != nil {
		return nil, err
	}
	k.public = &public
	k.jwkJSON, err = json.Marshal(public)
	if err != nil {
		return nil, fmt.Errorf("keys: encode public JWK of kid %q: %w", rec.KeyID, err)
	}
	if rec.State == StateRetired {
		return k, nil
	}

	k.sealed = rec.PrivateKey
	unchanged := prev != nil && prev.private != nil && prev.alg == k.alg && bytes.Equal(prev.sealed, rec.PrivateKey)
	if unchanged {
		k.private = prev.private
	} else {
		k.private, err = openPrivateKey(rec, public, s)
		if err != nil {
			return nil, err
		}
	}
	if rec.State != StateActive {
		return k, nil
	}
	if unchanged && prev.signing != nil {
		// Keeping the signingKey keeps its cached jose signers.
		k.signing = prev.signing
	} else {
		k.signing = newSigningKey(k.alg, k.private, k.public)
	}
	return k, nil
}

func publishedUntil(retiredAt time.Time, publishFor time.Duration) time.Time {
	return retiredAt.Add(publishFor)
}

// parsePublicJWK decodes the public JWK of rec and checks that it is a
// public key of the record's algorithm whose RFC 7638 thumbprint is the kid.
// The JWK is rebuilt from the key alone, so no stored member other than the
// key itself reaches the JWKS.
func parsePublicJWK(rec Record) (jose.JSONWebKey, error) {
	var stored jose.JSONWebKey
	if err := json.Unmarshal(rec.PublicKey, &stored); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: parse public JWK of kid %q: %w", rec.KeyID, err)
	}
	if !stored.IsPublic() {
		return jose.JSONWebKey{}, fmt.Errorf("keys: public JWK of kid %q contains a private key", rec.KeyID)
	}
	if err := checkKeyType(rec.Algorithm, stored.Key); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: public JWK of kid %q: %w", rec.KeyID, err)
	}
	public, err := publicJWK(rec.Algorithm, stored.Key)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	if public.KeyID != rec.KeyID {
		return jose.JSONWebKey{}, fmt.Errorf("keys: kid %q does not match the thumbprint %q of its public key", rec.KeyID, public.KeyID)
	}
	return public, nil
}

// openPrivateKey decrypts and parses the private key of rec and checks that
// it belongs to public.
func openPrivateKey(rec Record, public jose.JSONWebKey, s *sealer) (crypto.Signer, error) {
	der, err := s.open(rec.KeyID, rec.Algorithm, rec.PrivateKey)
	if err != nil {
		return nil, err
	}
	defer clear(der)

	priv, err := parsePrivateKey(rec.KeyID, rec.Algorithm, der)
	if err != nil {
		return nil, err
	}
	pub, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(public.Key) {
		return nil, fmt.Errorf("keys: private key of kid %q does not match its public key", rec.KeyID)
	}
	return priv, nil
}

// buildKeySet decides which keys are published at now and builds the JWKS
// document from their prepared JWKs.
func buildKeySet(keys []*loadedKey, now time.Time, publishFor time.Duration) *keySet {
	set := &keySet{
		keys:      keys,
		published: make(map[string]*loadedKey, len(keys)),
	}

	var jwks bytes.Buffer
	jwks.WriteString(`{"keys":[`)
	for _, k := range keys {
		if k.public == nil {
			continue
		}
		if k.info.State == StateRetired {
			until := publishedUntil(k.info.RetiredAt, publishFor)
			if !until.After(now) {
				continue
			}
			if set.staleAt.IsZero() || until.Before(set.staleAt) {
				set.staleAt = until
			}
		}
		if k.signing != nil {
			set.active = k.signing
		}

		if len(set.published) > 0 {
			jwks.WriteByte(',')
		}
		jwks.Write(k.jwkJSON)
		set.published[k.info.KeyID] = k
		if !slices.Contains(set.algs, k.alg) {
			set.algs = append(set.algs, k.alg)
		}
	}
	jwks.WriteString(`]}`)
	set.jwks = jwks.Bytes()
	return set
}

package verify

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// MaxTokenSize is the length in bytes above which [Verifier.Verify] rejects
// a token without parsing it. An RS256 access token of the server with a
// few scopes is about 1 KiB.
const MaxTokenSize = 8 << 10

var (
	// ErrInvalidToken is wrapped by every error [Verifier.Verify] returns
	// for a token that must not be accepted, with the reason appended.
	ErrInvalidToken = errors.New("invalid access token")
	// ErrExpired is wrapped by the error for a token past its exp. It
	// wraps [ErrInvalidToken], so errors.Is matches both.
	ErrExpired = fmt.Errorf("%w: expired", ErrInvalidToken)
)

// Verifier checks access tokens against the issuer's JWKS. It caches the
// parsed keys, refreshes them in the background and when a token names an
// unknown kid, and keeps the cached keys when a refresh fails. It is safe
// for concurrent use.
type Verifier struct {
	cfg     settings
	jwksURL string

	keys atomic.Pointer[keySet]

	// mu guards the refresh state below.
	mu        sync.Mutex
	inflight  *refresh
	lastFetch time.Time
	closed    bool
	fetches   sync.WaitGroup

	background context.Context
	stop       context.CancelFunc
	loopDone   chan struct{}
	closeOnce  sync.Once
}

// refresh is one JWKS fetch. Callers that need its result wait on done.
type refresh struct {
	done chan struct{}
	err  error
}

// New validates cfg, finds the JWKS URL through discovery unless
// cfg.JWKSURL is set, fetches the JWKS, and starts the background refresh.
// It returns an error when the configuration is invalid, the discovered
// issuer differs from cfg.Issuer, or no usable key can be fetched. Call
// [Verifier.Close] to stop the refresh.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	s, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	v := &Verifier{cfg: s, jwksURL: s.JWKSURL}

	if v.jwksURL == "" {
		v.jwksURL, err = v.discover(ctx)
		if err != nil {
			return nil, fmt.Errorf("verify: discovery for issuer %s: %w", s.Issuer, err)
		}
	}
	v.lastFetch = s.Now()
	set, err := v.loadKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	v.keys.Store(set)
	s.Logger.InfoContext(ctx, "JWKS loaded", "jwks_url", v.jwksURL, "kids", set.kids())

	// The refresh outlives New's context but keeps its values. Close
	// cancels it.
	v.background, v.stop = context.WithCancel(context.WithoutCancel(ctx))
	v.loopDone = make(chan struct{})
	go v.refreshLoop()
	return v, nil
}

// Close stops the background refresh and waits for a fetch in flight.
// Tokens signed by cached keys still verify after Close, but an unknown
// kid no longer causes a fetch. Calling Close more than once is safe.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		v.mu.Lock()
		v.closed = true
		v.mu.Unlock()
		v.stop()
		<-v.loopDone
		v.fetches.Wait()
	})
}

// JWKSURL returns the URL the keys are fetched from.
func (v *Verifier) JWKSURL() string { return v.jwksURL }

// Verify checks token and returns its claims. It returns an error
// wrapping [ErrInvalidToken] for:
//   - a token longer than [MaxTokenSize] or not in compact JWS form,
//   - an alg outside the accepted list or different from the key's alg,
//   - a typ other than at+jwt or application/at+jwt,
//   - a missing or unknown kid, or a bad signature,
//   - claims that fail RFC 9068 §4: iss other than Config.Issuer, aud
//     without Config.Audience, exp passed or nbf or iat in the future
//     beyond Config.Leeway, or one of exp, iat, sub, client_id and jti
//     missing (RFC 9068 §2.2 requires them).
//
// The error for an expired token also wraps [ErrExpired]. When Verify has
// to wait for a JWKS fetch and ctx ends first, it returns ctx's error.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	// Cheap checks first, so oversized or garbage input costs no parsing.
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenSize)
	}
	if strings.Count(token, ".") != 2 {
		return nil, fmt.Errorf("%w: not in compact JWS form", ErrInvalidToken)
	}

	jws, err := jose.ParseSignedCompact(token, v.cfg.algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	header := jws.Signatures[0].Header
	if err := checkHeader(header); err != nil {
		return nil, err
	}

	alg := jose.SignatureAlgorithm(header.Algorithm)
	key, err := v.key(ctx, header.KeyID, alg)
	if err != nil {
		return nil, err
	}
	input := token[:strings.LastIndexByte(token, '.')]
	if err := verifySignature(alg, key, input, jws.Signatures[0].Signature); err != nil {
		return nil, fmt.Errorf("%w: signature with key %q: %w", ErrInvalidToken, header.KeyID, err)
	}

	// The signature over the received payload segment has been verified
	// above, which is what go-jose's Verify would have done.
	return v.checkClaims(jws.UnsafePayloadWithoutVerification())
}

// checkHeader checks the protected header: typ must be at+jwt or
// application/at+jwt (RFC 9068 §4, media types compare case-insensitively
// by RFC 9110 §8.3.1), which keeps ID tokens and other JWTs signed by the
// same keys from passing as access tokens. kid must be present. crit and
// b64 are rejected, because no extension is understood here (RFC 7515
// §4.1.11) and RFC 7797 would change the signing input.
func checkHeader(h jose.Header) error {
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return fmt.Errorf("%w: typ %q is not at+jwt", ErrInvalidToken, typ)
	}
	if h.KeyID == "" {
		return fmt.Errorf("%w: header has no kid", ErrInvalidToken)
	}
	for _, name := range []jose.HeaderKey{"crit", "b64"} {
		if _, ok := h.ExtraHeaders[name]; ok {
			return fmt.Errorf("%w: header parameter %s is not supported", ErrInvalidToken, name)
		}
	}
	return nil
}

// key returns the cached key for kid and alg. An unknown kid starts a
// JWKS fetch, or joins the one in flight, unless a fetch started less
// than MinRefreshInterval ago.
func (v *Verifier) key(ctx context.Context, kid string, alg jose.SignatureAlgorithm) (crypto.PublicKey, error) {
	if key, found, err := v.keys.Load().find(kid, alg); found {
		return key, err
	}

	// After a fetch, or when none may start, look again: a fetch that
	// finished since the first look has already swapped in its keys.
	if r := v.startRefresh(true); r != nil {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("verify: wait for JWKS fetch: %w", ctx.Err())
		}
	}
	if key, found, err := v.keys.Load().find(kid, alg); found {
		return key, err
	}
	return nil, fmt.Errorf("%w: unknown kid %q", ErrInvalidToken, kid)
}

// startRefresh returns the fetch in flight, or starts one. With limited
// set it starts none within MinRefreshInterval of the previous start and
// returns nil. After Close it returns nil unless a fetch is in flight.
func (v *Verifier) startRefresh(limited bool) *refresh {
	v.mu.Lock()
	defer v.mu.Unlock()

	if v.inflight != nil {
		return v.inflight
	}
	if v.closed {
		return nil
	}
	now := v.cfg.Now()
	if limited && now.Sub(v.lastFetch) < v.cfg.MinRefreshInterval {
		return nil
	}

	v.lastFetch = now
	r := &refresh{done: make(chan struct{})}
	v.inflight = r
	v.fetches.Add(1)
	go v.runRefresh(r)
	return r
}

// runRefresh fetches the JWKS and swaps in the new keys. On failure the
// cached keys stay in use, so tokens keep verifying while the
// authorization server is unreachable.
func (v *Verifier) runRefresh(r *refresh) {
	defer v.fetches.Done()
	ctx := v.background

	set, err := v.loadKeys(ctx)
	switch {
	case err == nil:
		old := v.keys.Swap(set)
		if kids := set.kids(); !slices.Equal(kids, old.kids()) {
			v.cfg.Logger.InfoContext(ctx, "JWKS keys changed", "jwks_url", v.jwksURL, "kids", kids)
		} else {
			v.cfg.Logger.DebugContext(ctx, "JWKS refreshed", "jwks_url", v.jwksURL)
		}
	case ctx.Err() == nil:
		v.cfg.Logger.ErrorContext(ctx, "JWKS refresh failed; the cached keys stay in use", "jwks_url", v.jwksURL, "err", err)
	}

	v.mu.Lock()
	v.inflight = nil
	v.mu.Unlock()
	r.err = err
	close(r.done)
}

// refreshLoop fetches the JWKS every RefreshInterval until Close.
func (v *Verifier) refreshLoop() {
	defer close(v.loopDone)
	ticker := time.NewTicker(v.cfg.RefreshInterval)
	defer ticker.Stop()
	for {
		select {
		case <-v.background.Done():
			return
		case <-ticker.C:
		}
		r := v.startRefresh(false)
		if r == nil {
			continue
		}
		select {
		case <-v.background.Done():
			return
		case <-r.done:
		}
	}
}

func (v *Verifier) loadKeys(ctx context.Context) (*keySet, error) {
	body, err := v.fetch(ctx, v.jwksURL)
	if err != nil {
		return nil, err
	}
	set, err := parseJWKS(ctx, body, v.cfg.algorithms, v.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", v.jwksURL, err)
	}
	return set, nil
}

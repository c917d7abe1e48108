package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// defaultPublishRetiredFor is the default of [Config.PublishRetiredFor].
const defaultPublishRetiredFor = 24 * time.Hour

// Config configures [New]. The zero value of each field means its default.
type Config struct {
	// Algorithm is the JOSE algorithm of new signing keys: "RS256" (the
	// default), "ES256" or "EdDSA".
	Algorithm string
	// Secret is the master secret that private keys are sealed under.
	// Required, at least 32 bytes.
	Secret []byte
	// PublishRetiredFor is how long a retired key stays in the JWKS after its
	// RetiredAt. Default 24h. Set it to at least the access-token lifetime so
	// that every token a retired key signed can still be verified.
	PublishRetiredFor time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives key lifecycle events. Default: a logger that discards
	// every record.
	Logger *slog.Logger

	// generateKey creates private keys. Default generateKey; tests substitute
	// pre-generated RSA keys because generating them is slow.
	generateKey keyGenerator
}

// LogValue implements [slog.LogValuer] so that logging a Config never
// prints the master secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("algorithm", c.Algorithm),
		slog.String("secret", "REDACTED"),
		slog.Duration("publish_retired_for", c.PublishRetiredFor),
	)
}

// Info describes one signing key without its key material.
type Info struct {
	KeyID     string
	Algorithm string
	State     State
	// Published reports whether the key is in the JWKS: next and active keys
	// always are, retired keys until RetiredAt plus PublishRetiredFor.
	Published   bool
	CreatedAt   time.Time
	ActivatedAt time.Time
	RetiredAt   time.Time
}

// Manager loads the signing keys from a [Store], rotates them, and serves
// the JWKS document and the token [Signer]. Its methods are safe for
// concurrent use. The loaded key set is an immutable snapshot that
// [Manager.Reload] and [Manager.Rotate] swap atomically, so signing and
// the read methods never wait for them. Verification waits only when a
// token names an unknown kid and triggers a reload, at most once a second.
type Manager struct {
	store      Store
	alg        string
	sealer     *sealer
	publishFor time.Duration
	now        func() time.Time
	log        *slog.Logger
	generate   keyGenerator
	signer     *Signer

	// mu serialises Reload and Rotate within this process. The store's
	// compare step does the same across processes.
	mu  sync.Mutex
	set atomic.Pointer[keySet]

	// lastUnknownReload is when a token with an unknown kid last caused a
	// reload, in Unix nanoseconds.
	lastUnknownReload atomic.Int64
}

// minUnknownKeyReload is the shortest time between two reloads caused by
// tokens with an unknown kid, so forged kids cannot turn verification into
// a database load.
const minUnknownKeyReload = time.Second

// reloadForUnknownKey reloads the key set for a token whose kid this
// process has not loaded, at most once per minUnknownKeyReload across all
// callers. It reports whether it reloaded.
func (m *Manager) reloadForUnknownKey(ctx context.Context) bool {
	now := m.now().UnixNano()
	last := m.lastUnknownReload.Load()
	if last != 0 && now-last < int64(minUnknownKeyReload) {
		return false
	}
	if !m.lastUnknownReload.CompareAndSwap(last, now) {
		return false
	}
	if err := m.Reload(ctx); err != nil {
		m.log.WarnContext(ctx, "signing key reload for an unknown kid failed", "err", err)
		return false
	}
	return true
}

// New validates cfg, loads the key set from store and makes sure a key of
// the configured algorithm is active. On an empty store it generates an
// active key and a next key. When the active key has another algorithm, it
// rotates at once to a new key of the configured algorithm, and the old key
// stays published as a retired key.
func New(ctx context.Context, store Store, cfg Config) (*Manager, error) {
	if store == nil {
		return nil, errors.New("keys: store is nil")
	}
	m, err := newManager(store, cfg)
	if err != nil {
		return nil, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reloadLocked(ctx); err != nil {
		return nil, err
	}
	if err := m.ensureActiveLocked(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func newManager(store Store, cfg Config) (*Manager, error) {
	alg := cfg.Algorithm
	if alg == "" {
		alg = string(jose.RS256)
	}
	if err := checkAlgorithm(alg); err != nil {
		return nil, fmt.Errorf("keys: config: %w", err)
	}
	s, err := newSealer(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("keys: config: %w", err)
	}
	if cfg.PublishRetiredFor < 0 {
		return nil, fmt.Errorf("keys: config: PublishRetiredFor is %s, must not be negative", cfg.PublishRetiredFor)
	}

	m := &Manager{
		store:      store,
		alg:        alg,
		sealer:     s,
		publishFor: cfg.PublishRetiredFor,
		now:        cfg.Now,
		log:        cfg.Logger,
		generate:   cfg.generateKey,
	}
	if m.publishFor == 0 {
		m.publishFor = defaultPublishRetiredFor
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.generate == nil {
		m.generate = generateKey
	}
	m.signer = &Signer{m: m}
	return m, nil
}

func checkAlgorithm(alg string) error {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.ES256, jose.EdDSA:
		return nil
	default:
		return unsupportedAlgorithmError(alg)
	}
}

// Reload reads the key set from the store and replaces the loaded snapshot.
// Call it periodically so that keys rotated by another process are picked
// up. On error the previous snapshot stays in use. Reload never creates
// keys: only New and Rotate do.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadLocked(ctx)
}

// Rotate retires the active key, activates the next key and adds a new next
// key, all in one store transaction. It returns the new active key. When
// another process rotated since the last load, Rotate does not rotate again:
// it reloads and returns the key that process activated.
func (m *Manager) Rotate(ctx context.Context) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rotateLocked(ctx, "rotation requested")
}

// Keys returns a snapshot of the loaded keys, newest first.
func (m *Manager) Keys() []Info {
	set := m.current()
	out := make([]Info, len(set.keys))
	for i, k := range set.keys {
		out[i] = k.info
		out[i].Published = set.isPublished(k)
	}
	return out
}

// JWKS returns the JWKS document (RFC 7517 §5) of the published keys as
// JSON. The document is built when the key set is loaded and shared between
// callers, so the caller must not modify the returned slice.
func (m *Manager) JWKS() []byte {
	return m.current().jwks
}

// PublicKey returns the public JWK of a published key, for callers that
// verify tokens offline. It reports false when kid is not published.
func (m *Manager) PublicKey(kid string) (jose.JSONWebKey, bool) {
	k, ok := m.current().published[kid]
	if !ok {
		return jose.JSONWebKey{}, false
	}
	return *k.public, true
}

// Algorithm returns the configured JOSE algorithm of new keys.
func (m *Manager) Algorithm() string {
	return m.alg
}

// Signer returns the fosite JWT signer backed by this Manager's keys.
func (m *Manager) Signer() *Signer {
	return m.signer
}

// current returns the loaded snapshot. When a retired key's publication
// has ended since the snapshot was built, it first rebuilds the snapshot
// from the same keys, so no caller sees a key that is no longer published.
func (m *Manager) current() *keySet {
	set := m.set.Load()
	if set.staleAt.IsZero() {
		return set
	}
	now := m.now()
	if now.Before(set.staleAt) {
		return set
	}

	fresh := buildKeySet(set.keys, now, m.publishFor)
	if m.set.CompareAndSwap(set, fresh) {
		return fresh
	}
	// A reload or another rebuild won the race. Its snapshot is at least as
	// recent as ours.
	return m.set.Load()
}

func (m *Manager) reloadLocked(ctx context.Context) error {
	records, err := m.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: load signing keys: %w", err)
	}

	now := m.now()
	keys, err := loadKeys(records, m.set.Load(), m.sealer, now, m.publishFor)
	if err != nil {
		return err
	}
	m.set.Store(buildKeySet(keys, now, m.publishFor))
	return nil
}

// ensureActiveLocked rotates when the loaded set has no active key or its
// active key has another algorithm than the configured one.
func (m *Manager) ensureActiveLocked(ctx context.Context) error {
	set := m.set.Load()
	var reason string
	switch {
	case len(set.keys) == 0:
		reason = "key store is empty"
	case set.active == nil:
		reason = "no active key"
	case string(set.active.alg) != m.alg:
		reason = fmt.Sprintf("configured algorithm %s differs from active key algorithm %s", m.alg, set.active.alg)
	default:
		return nil
	}

	active, err := m.rotateLocked(ctx, reason)
	if err != nil {
		return err
	}
	if active.Algorithm != m.alg {
		// Another process with an older configuration rotated first. This
		// process signs with that key until the next rotation.
		m.log.WarnContext(ctx, "active signing key has another algorithm than configured",
			"kid", active.KeyID, "algorithm", active.Algorithm, "configured_algorithm", m.alg)
	}
	return nil
}

// rotateLocked performs one rotation from the loaded snapshot. It generates
// the new keys before calling the store, so the store transaction holds no
// key generation, and the store's compare step on the active kid makes sure
// that only one of several concurrent rotations applies.
func (m *Manager) rotateLocked(ctx context.Context, reason string) (Info, error) {
	set := m.set.Load()
	var expected string
	if set.active != nil {
		expected = set.active.kid
	}
	now := m.now()

	plan, err := m.planRotation(set, now)
	if err != nil {
		return Info{}, err
	}

	err = m.store.ApplyRotation(ctx, plan.rotation)
	if errors.Is(err, ErrRotationConflict) {
		m.log.InfoContext(ctx, "signing key rotation skipped because another process rotated first",
			"kid", expected, "reason", reason)
		if err := m.reloadLocked(ctx); err != nil {
			return Info{}, fmt.Errorf("keys: reload after concurrent rotation: %w", err)
		}
		return m.activeInfo()
	}
	if err != nil {
		return Info{}, fmt.Errorf("keys: rotate from kid %q: %w", expected, err)
	}

	if err := m.reloadLocked(ctx); err != nil {
		return Info{}, fmt.Errorf("keys: reload after rotation to kid %q: %w", plan.rotation.Activate, err)
	}
	if expected == "" {
		m.log.InfoContext(ctx, "signing key activated",
			"kid", plan.rotation.Activate, "next_kid", plan.nextKID, "algorithm", m.alg, "reason", reason)
	} else {
		m.log.InfoContext(ctx, "signing key rotated",
			"kid", plan.rotation.Activate, "retired_kid", expected, "next_kid", plan.nextKID, "algorithm", m.alg, "reason", reason)
	}
	return m.activeInfo()
}

type rotationPlan struct {
	rotation Rotation
	nextKID  string
}

// planRotation decides the rotation from set: the active key retires, and
// the newest next key of the configured algorithm becomes active. Without
// such a next key a freshly generated key becomes active at once, and any
// other next key retires, so the store never keeps a stale next key. A new
// next key is always added.
func (m *Manager) planRotation(set *keySet, now time.Time) (rotationPlan, error) {
	r := Rotation{At: now}
	if set.active != nil {
		r.ExpectedActive = set.active.kid
		r.Retire = append(r.Retire, set.active.kid)
	}

	// set.keys is newest first, so the first match is the newest next key.
	for _, k := range set.keys {
		if k.info.State != StateNext {
			continue
		}
		if r.Activate == "" && k.info.Algorithm == m.alg {
			r.Activate = k.info.KeyID
			continue
		}
		r.Retire = append(r.Retire, k.info.KeyID)
	}

	if r.Activate == "" {
		active, err := newKeyRecord(m.generate, m.sealer, m.alg, StateActive)
		if err != nil {
			return rotationPlan{}, err
		}
		active.CreatedAt = now
		active.ActivatedAt = now
		r.Activate = active.KeyID
		r.Insert = append(r.Insert, active)
	}

	next, err := newKeyRecord(m.generate, m.sealer, m.alg, StateNext)
	if err != nil {
		return rotationPlan{}, err
	}
	next.CreatedAt = now
	r.Insert = append(r.Insert, next)

	return rotationPlan{rotation: r, nextKID: next.KeyID}, nil
}

// activeInfo returns the Info of the active key in the loaded snapshot.
func (m *Manager) activeInfo() (Info, error) {
	set := m.set.Load()
	if set.active == nil {
		return Info{}, errors.New("keys: store has no active signing key")
	}
	for _, k := range set.keys {
		if k.info.KeyID == set.active.kid {
			info := k.info
			info.Published = set.isPublished(k)
			return info, nil
		}
	}
	return Info{}, fmt.Errorf("keys: active kid %q missing from loaded keys", set.active.kid)
}

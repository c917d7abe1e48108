package oauth

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/quanux/authserver/storage"
)

// GuardConfig sets the brute-force limits. Zero values mean the defaults.
type GuardConfig struct {
	// MaxFailures is how many consecutive failed attempts a username or a
	// client id may make before it is locked; default 5.
	MaxFailures int
	// LockoutBase is the first lockout; each further failure while over
	// the limit doubles it. Default 1s.
	LockoutBase time.Duration
	// LockoutMax caps the lockout; default 15m.
	LockoutMax time.Duration
	// AddressRate is how many credential attempts per second one source
	// address may make on average; default 10.
	AddressRate float64
	// AddressBurst is how many attempts one source address may make at
	// once; default 20.
	AddressBurst int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Store, when set, shares failure counts and locks with every process
	// on the same database. Without it they live in this process only.
	Store FailureStore
	// Logger receives errors of the Store; default discards.
	Logger *slog.Logger
}

// FailureStore keeps failure counts that several processes share.
// storage.Store implements it.
type FailureStore interface {
	LoginFailures(ctx context.Context, keys []string) (map[string]storage.LoginFailure, error)
	RecordLoginFailure(ctx context.Context, key string, now time.Time, lockUntil func(failures int) time.Time) (storage.LoginFailure, error)
	ClearLoginFailures(ctx context.Context, keys []string) error
}

// ThrottledError is returned when an attempt is refused by the brute-force
// limits before any credential is checked.
type ThrottledError struct {
	RetryAfter time.Duration
	// Reason is "lockout" for a locked key or "address" for the
	// per-address rate.
	Reason string
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many attempts; retry after %s", e.RetryAfter)
}

// RetryAfterSeconds returns the Retry-After header value, at least 1.
func (e *ThrottledError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// maxTrackedKeys bounds the memory of the failure and address tables. Past
// it, idle entries are dropped first, then entries that are neither locked
// nor in use. An attacker therefore cannot exhaust memory, but some old
// failure counts are lost.
const maxTrackedKeys = 100_000

// Guard key prefixes: one namespace per kind of credential.
const (
	ClientKeyPrefix = "client:"
	UserKeyPrefix   = "user:"
)

// Guard tracks failed credential attempts per username and per client id,
// and limits attempts per source address. An attempt is counted as failed
// from the moment it starts until it succeeds, so concurrent attempts
// cannot slip past the limit while the first ones are still being checked.
// With a FailureStore, failure counts and locks are shared by every
// process on the database; in-flight attempts and the per-address rate
// are counted per process. It is safe for concurrent use.
type Guard struct {
	cfg GuardConfig

	mu        sync.Mutex
	failures  map[string]*failureState
	addresses map[string]*addressState
}

type failureState struct {
	failures    int
	inFlight    int
	lockedUntil time.Time
	lastSeen    time.Time
	// sharedReadAt is when the key's shared record was last read.
	sharedReadAt time.Time
}

// sharedRecheck is how long a client key that has no failures skips the
// read of its shared record. A lock set by another process therefore
// reaches this one up to this late, so a guesser may try a few more times
// here. Against a 256-bit client secret that is harmless, and it saves a
// query on almost every client-credentials request. User keys, whose
// passwords can be guessed, are read on every attempt.
const sharedRecheck = time.Second

type addressState struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

// NewGuard returns a Guard with cfg's limits.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.LockoutBase == 0 {
		cfg.LockoutBase = time.Second
	}
	if cfg.LockoutMax == 0 {
		cfg.LockoutMax = 15 * time.Minute
	}
	if cfg.AddressRate == 0 {
		cfg.AddressRate = 10
	}
	if cfg.AddressBurst == 0 {
		cfg.AddressBurst = 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxFailures < 1 || cfg.LockoutBase < 0 || cfg.LockoutMax < cfg.LockoutBase || cfg.AddressRate < 0 || cfg.AddressBurst < 1 {
		return nil, fmt.Errorf("invalid brute-force limits: max failures %d, lockout %s to %s, %g attempts/s with burst %d",
			cfg.MaxFailures, cfg.LockoutBase, cfg.LockoutMax, cfg.AddressRate, cfg.AddressBurst)
	}
	return &Guard{
		cfg:       cfg,
		failures:  make(map[string]*failureState),
		addresses: make(map[string]*addressState),
	}, nil
}

// Attempt is one credential check in progress. Its owner must call Finish
// or FinishEach exactly once; an attempt never finished keeps counting as
// in flight against its keys.
type Attempt struct {
	guard *Guard
	keys  []string
	// shared holds the keys that had a shared failure record at Begin,
	// which a success must clear.
	shared []string
}

// Begin starts an attempt from address that names the given credential
// keys (such as "user:alice" and "client:client_…"). It returns a
// ThrottledError when the address is over its rate, or a key is locked or
// has as many attempts failed and in flight as the limit allows.
func (g *Guard) Begin(ctx context.Context, address string, keys ...string) (*Attempt, error) {
	read := g.keysToRead(keys)
	shared, err := g.sharedFailures(ctx, read)
	if err != nil {
		return nil, err
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	g.pruneLocked(now)

	if address != "" {
		st := g.addresses[address]
		if st == nil {
			st = &addressState{limiter: rate.NewLimiter(rate.Limit(g.cfg.AddressRate), g.cfg.AddressBurst)}
			g.addresses[address] = st
		}
		st.lastSeen = now
		r := st.limiter.ReserveN(now, 1)
		if delay := r.DelayFrom(now); delay > 0 {
			r.CancelAt(now)
			return nil, &ThrottledError{RetryAfter: delay, Reason: "address"}
		}
	}

	for _, k := range keys {
		if rec, ok := shared[k]; ok {
			if wait := rec.LockedUntil.Sub(now); wait > 0 {
				return nil, &ThrottledError{RetryAfter: wait, Reason: "lockout"}
			}
		}
		st := g.failures[k]
		if st == nil {
			continue
		}
		if rec, ok := shared[k]; ok {
			// Another process may have counted more failures.
			st.failures = max(st.failures, rec.Failures)
		}
		if wait := st.lockedUntil.Sub(now); wait > 0 {
			return nil, &ThrottledError{RetryAfter: wait, Reason: "lockout"}
		}
		// Attempts still running count as failures until they finish, so
		// concurrent requests cannot exceed the limit. Past the limit, once
		// the lockout ends, one attempt at a time is let through.
		limit := g.cfg.MaxFailures
		if st.failures >= limit {
			limit = st.failures + 1
		}
		inFlight := st.inFlight
		if strings.HasPrefix(k, ClientKeyPrefix) && st.failures == 0 {
			// A client with no failure may run any number of requests at
			// once: its 256-bit secret cannot be guessed in one concurrent
			// wave, and counting them would cap every busy client at
			// MaxFailures requests in flight.
			inFlight = 0
		}
		if st.failures+inFlight >= limit {
			return nil, &ThrottledError{RetryAfter: g.cfg.LockoutBase, Reason: "lockout"}
		}
	}

	a := &Attempt{guard: g, keys: keys}
	for _, k := range keys {
		st := g.failures[k]
		if st == nil {
			st = &failureState{}
			g.failures[k] = st
		}
		if rec, ok := shared[k]; ok {
			st.failures = max(st.failures, rec.Failures)
			a.shared = append(a.shared, k)
		}
		if slices.Contains(read, k) {
			st.sharedReadAt = now
		}
		st.inFlight++
		st.lastSeen = now
	}
	return a, nil
}

// keysToRead returns the keys whose shared records Begin must read: all
// but the client keys without failures that were read within
// sharedRecheck.
func (g *Guard) keysToRead(keys []string) []string {
	if g.cfg.Store == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	read := make([]string, 0, len(keys))
	for _, k := range keys {
		st := g.failures[k]
		if st != nil && st.failures == 0 && strings.HasPrefix(k, ClientKeyPrefix) && now.Sub(st.sharedReadAt) < sharedRecheck {
			continue
		}
		read = append(read, k)
	}
	return read
}

// sharedFailures reads the keys' shared records. A store error is logged
// and treated as no record: the guard then falls back to this process's
// own counts rather than locking every user out during an outage.
func (g *Guard) sharedFailures(ctx context.Context, keys []string) (map[string]storage.LoginFailure, error) {
	if g.cfg.Store == nil || len(keys) == 0 {
		return nil, nil
	}
	recs, err := g.cfg.Store.LoginFailures(ctx, keys)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		g.cfg.Logger.ErrorContext(ctx, "reading shared login failures failed; using this process's counts", "err", err)
		return nil, nil
	}
	return recs, nil
}

// Finish records one outcome for every key of the attempt.
func (a *Attempt) Finish(ctx context.Context, outcome Outcome) {
	a.FinishEach(ctx, func(string) Outcome { return outcome })
}

// FinishEach records the attempt's outcome per key, as outcome reports it.
// A success clears the failures of a key. A failure counts against the key
// and locks it once the count reaches the limit, for a time that doubles
// with each further failure. An outcome that proves nothing about a key's
// credential, such as a malformed request, passes neither.
func (a *Attempt) FinishEach(ctx context.Context, outcome func(key string) Outcome) {
	g := a.guard
	var failed, cleared []string
	g.mu.Lock()
	now := g.cfg.Now()
	for _, k := range a.keys {
		st := g.failures[k]
		if st == nil {
			continue
		}
		st.inFlight = max(0, st.inFlight-1)
		st.lastSeen = now
		switch outcome(k) {
		case Succeeded:
			st.failures = 0
			st.lockedUntil = time.Time{}
			if slices.Contains(a.shared, k) {
				cleared = append(cleared, k)
			}
		case Failed:
			st.failures++
			st.lockedUntil = g.lockUntil(now, st.failures)
			failed = append(failed, k)
		}
	}
	g.mu.Unlock()

	g.recordShared(ctx, now, failed, cleared)
}

// lockUntil returns the end of the lock that a count of failures earns, or
// zero for none.
func (g *Guard) lockUntil(now time.Time, failures int) time.Time {
	over := failures - g.cfg.MaxFailures
	if over < 0 {
		return time.Time{}
	}
	return now.Add(g.lockout(over))
}

// recordShared writes an attempt's outcome to the shared store. A failure
// raises the shared count, which may be higher than this process's; the
// lock follows the shared count, and this process adopts it.
func (g *Guard) recordShared(ctx context.Context, now time.Time, failed, cleared []string) {
	if g.cfg.Store == nil {
		return
	}
	// The request may have ended; the record must still be written.
	ctx = context.WithoutCancel(ctx)
	for _, k := range failed {
		rec, err := g.cfg.Store.RecordLoginFailure(ctx, k, now, func(n int) time.Time { return g.lockUntil(now, n) })
		if err != nil {
			g.cfg.Logger.ErrorContext(ctx, "recording a shared login failure failed", "err", err)
			continue
		}
		g.mu.Lock()
		if st := g.failures[k]; st != nil {
			st.failures = max(st.failures, rec.Failures)
			if rec.LockedUntil.After(st.lockedUntil) {
				st.lockedUntil = rec.LockedUntil
			}
		}
		g.mu.Unlock()
	}
	if len(cleared) > 0 {
		if err := g.cfg.Store.ClearLoginFailures(ctx, cleared); err != nil {
			g.cfg.Logger.ErrorContext(ctx, "clearing shared login failures failed", "err", err)
		}
	}
}

// Outcome is the result of a credential attempt, as the guard counts it.
type Outcome int

// Outcomes of an attempt.
const (
	Inconclusive Outcome = iota
	Succeeded
	Failed
)

func (g *Guard) lockout(over int) time.Duration {
	if over >= 30 {
		return g.cfg.LockoutMax
	}
	return min(g.cfg.LockoutBase<<over, g.cfg.LockoutMax)
}

// pruneLocked shrinks the tables once they grow past maxTrackedKeys:
// first entries idle longer than the longest lockout, then, if needed,
// every entry that is neither locked nor in use.
func (g *Guard) pruneLocked(now time.Time) {
	if len(g.failures)+len(g.addresses) < maxTrackedKeys {
		return
	}
	idle := now.Add(-g.cfg.LockoutMax)
	for k, st := range g.failures {
		if st.inFlight == 0 && st.lastSeen.Before(idle) {
			delete(g.failures, k)
		}
	}
	if len(g.failures) >= maxTrackedKeys/2 {
		// Still full of recent entries: keep only the locked and the
		// running ones, which are what the limits depend on.
		for k, st := range g.failures {
			if st.inFlight == 0 && !st.lockedUntil.After(now) {
				delete(g.failures, k)
			}
		}
	}
	for k, st := range g.addresses {
		if st.lastSeen.Before(now.Add(-time.Minute)) {
			delete(g.addresses, k)
		}
	}
	if len(g.addresses) >= maxTrackedKeys/2 {
		g.addresses = make(map[string]*addressState)
	}
}

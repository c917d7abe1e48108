package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// The change feed is the changes table. Every change to data that a
// process may hold in memory is appended to it in the transaction that
// makes the change. Every process reads the rows after the last seq it saw
// (see [Store.SyncChanges]). The kinds of change:
const (
	// changeClient: the client named by subject changed or was deleted.
	changeClient = "client"
	// changeUser: the user named by subject changed or was deleted, so
	// the clients it owns changed too.
	changeUser = "user"
	// changeTokenRevoked: the access token whose jti is subject was
	// revoked. The row lives until the token expires.
	changeTokenRevoked = "token"
)

// changeRetention is how long client and user rows stay in the feed. A
// process that has not read the feed for this long has also stopped
// trusting its cache (see cacheTrust), so it misses nothing.
const changeRetention = time.Hour

// Bounds of the in-memory state.
const (
	// maxCachedClients bounds the client cache; past it, arbitrary entries
	// are dropped.
	maxCachedClients = 10_000
	// cachedClientTTL is how long a cached client is used even while the
	// feed is in sync: a bound on the harm of a change made without the
	// feed, such as an operator's UPDATE in a SQL shell.
	cachedClientTTL = time.Minute
	// changeBatch is how many feed rows one query reads.
	changeBatch = 5000
)

// lockChanges serialises writers of the change feed on PostgreSQL, so that
// seq values become visible in increasing order and a reader that has seen
// seq n has seen every smaller one that will ever commit. On SQLite the
// single writer gives the same order. A transaction that records a change
// takes the lock before it writes any row: taken after row locks, two
// transactions could each wait for the other's.
const lockChanges int64 = 0x5155414e5803

type changeModel struct {
	Seq       int64 `gorm:"primaryKey;autoIncrement"`
	Kind      string
	Subject   string
	ExpiresAt time.Time
	CreatedAt time.Time
}

func (changeModel) TableName() string { return "changes" }

// replicaState is a process's in-memory copy of shared data: cached
// clients and revoked token ids, both kept current by the change feed.
type replicaState struct {
	mu sync.Mutex
	// cursor is the highest seq applied; -1 before the first sync.
	cursor int64
	// syncedAt is when the last sync succeeded; zero when the last one
	// failed.
	syncedAt time.Time
	// trust is how long after a successful sync the cache and the revoked
	// set are used; zero disables them.
	trust time.Duration
	// generation increases with every invalidation, so a lookup that read
	// the database before an invalidation does not cache what it read.
	generation uint64
	clients    map[string]cachedClient
	revoked    map[string]time.Time
	// pending holds, per open transaction, the invalidations to apply when
	// it commits: applied earlier, a concurrent lookup could cache the old
	// row again before the commit.
	pending map[*gorm.DB][]func(*replicaState)
}

type cachedClient struct {
	client   Client
	loadedAt time.Time
}

func newReplicaState() *replicaState {
	return &replicaState{
		cursor:  -1,
		clients: make(map[string]cachedClient),
		revoked: make(map[string]time.Time),
		pending: make(map[*gorm.DB][]func(*replicaState)),
	}
}

// afterCommit queues change to be applied when tx commits.
func (r *replicaState) afterCommit(tx *gorm.DB, change func(*replicaState)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[tx] = append(r.pending[tx], change)
}

// finish applies the changes queued for tx if it committed, and drops
// them either way.
func (r *replicaState) finish(tx *gorm.DB, committed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if committed {
		for _, change := range r.pending[tx] {
			change(r)
		}
	}
	delete(r.pending, tx)
}

// inSyncLocked reports whether the in-memory state may be used at now.
func (r *replicaState) inSyncLocked(now time.Time) bool {
	return r.trust > 0 && !r.syncedAt.IsZero() && now.Sub(r.syncedAt) <= r.trust
}

func (r *replicaState) invalidateClientLocked(id string) {
	r.generation++
	delete(r.clients, id)
}

func (r *replicaState) invalidateOwnerLocked(userID string) {
	r.generation++
	for id, c := range r.clients {
		if c.client.OwnerID == userID {
			delete(r.clients, id)
		}
	}
}

func (r *replicaState) resetLocked() {
	r.generation++
	r.cursor = -1
	r.syncedAt = time.Time{}
	clear(r.clients)
	clear(r.revoked)
}

// SetSyncInterval turns on the client cache and the in-memory revocation
// list, for a process that calls [Store.SyncChanges] every interval. Both
// are used only while the last successful sync is at most three intervals
// old. Otherwise lookups go to the database, so a process whose sync
// stalls is slower but is never wrong for longer than that. Without a
// call, or with 0, every lookup goes to the database.
func (s *Store) SetSyncInterval(interval time.Duration) {
	s.replica.mu.Lock()
	defer s.replica.mu.Unlock()
	s.replica.trust = 3 * interval
}

// SyncChanges applies the change feed's rows added since the last call:
// cached clients that changed are dropped, and revoked token ids are added
// to the in-memory list. The first call loads every revocation that has not
// expired. On an error the cache is emptied and the next call starts over.
func (s *Store) SyncChanges(ctx context.Context) error {
	r := s.replica
	r.mu.Lock()
	cursor := r.cursor
	r.mu.Unlock()

	var rows []changeModel
	for {
		var batch []changeModel
		err := s.db(ctx).Where("seq > ?", max(cursor, 0)).Order("seq").Limit(changeBatch).Find(&batch).Error
		if err != nil {
			r.mu.Lock()
			r.resetLocked()
			r.mu.Unlock()
			return fmt.Errorf("read change feed: %w", err)
		}
		rows = append(rows, batch...)
		if len(batch) < changeBatch {
			break
		}
		cursor = batch[len(batch)-1].Seq
	}

	now := s.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range rows {
		if c.Seq <= r.cursor {
			// A concurrent sync applied it.
			continue
		}
		switch c.Kind {
		case changeClient:
			r.invalidateClientLocked(c.Subject)
		case changeUser:
			r.invalidateOwnerLocked(c.Subject)
		case changeTokenRevoked:
			if c.ExpiresAt.After(now) {
				r.revoked[c.Subject] = c.ExpiresAt
			}
		}
		r.cursor = c.Seq
	}
	if r.cursor < 0 {
		r.cursor = 0
	}
	for jti, exp := range r.revoked {
		if !exp.After(now) {
			delete(r.revoked, jti)
		}
	}
	r.syncedAt = now
	return nil
}

// recordChange appends a change to the feed inside tx, a transaction that
// already holds lockChanges.
func (s *Store) recordChange(tx *gorm.DB, kind, subject string, expiresAt time.Time) error {
	now := s.now().UTC()
	m := changeModel{Kind: kind, Subject: subject, ExpiresAt: expiresAt.UTC(), CreatedAt: now}
	if err := tx.Create(&m).Error; err != nil {
		return fmt.Errorf("record %s change: %w", kind, err)
	}
	return nil
}

// changeIn records a change of kind (changeClient or changeUser) to the
// row id in tx, which holds lockChanges. This process applies it to its cache when tx commits, and
// other processes at their next sync.
func (s *Store) changeIn(tx *gorm.DB, kind, id string) error {
	if err := s.recordChange(tx, kind, id, s.now().Add(changeRetention)); err != nil {
		return err
	}
	s.replica.afterCommit(tx, func(r *replicaState) {
		if kind == changeUser {
			r.invalidateOwnerLocked(id)
		} else {
			r.invalidateClientLocked(id)
		}
	})
	return nil
}

// changeRow runs write, a statement on the client or user id, and records
// the change in the same transaction. It returns ErrNotFound when write
// matched no row, and translated database errors.
func (s *Store) changeRow(ctx context.Context, kind, id string, write func(tx *gorm.DB) *gorm.DB) error {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := s.lockTx(tx, lockChanges); err != nil {
			return err
		}
		res := write(tx)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return s.changeIn(tx, kind, id)
	})
	return translate(err)
}

// CachedClient returns the client with that id like [Store.Client]. It
// uses the cache outside a transaction, while the change feed is in sync,
// for at most a minute after the client was read.
func (s *Store) CachedClient(ctx context.Context, id string) (*Client, error) {
	if _, inTx := ctx.Value(txKey{}).(*gorm.DB); inTx {
		return s.Client(ctx, id)
	}
	r := s.replica
	now := s.now()
	r.mu.Lock()
	if !r.inSyncLocked(now) {
		r.mu.Unlock()
		return s.Client(ctx, id)
	}
	if e, ok := r.clients[id]; ok && now.Sub(e.loadedAt) < cachedClientTTL {
		r.mu.Unlock()
		c := e.client
		return &c, nil
	}
	generation := r.generation
	r.mu.Unlock()

	c, err := s.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.generation == generation {
		if len(r.clients) >= maxCachedClients {
			for k := range r.clients {
				delete(r.clients, k)
				break
			}
		}
		r.clients[id] = cachedClient{client: *c, loadedAt: now}
	}
	r.mu.Unlock()
	return c, nil
}

// RevokeTokenID revokes the access token with that jti, which expires at
// expiresAt, by adding it to the change feed. It is for tokens that have
// no record; this process rejects the token at once and other processes
// from their next sync.
func (s *Store) RevokeTokenID(ctx context.Context, jti string, expiresAt time.Time) error {
	if jti == "" {
		return errors.New("revoke token: empty jti")
	}
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := s.lockTx(tx, lockChanges); err != nil {
			return err
		}
		// Every process reads every row, so a token revoked again adds
		// none.
		var n int64
		err := tx.Model(&changeModel{}).Where("subject = ? AND kind = ?", jti, changeTokenRevoked).Count(&n).Error
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if err := s.recordChange(tx, changeTokenRevoked, jti, expiresAt); err != nil {
			return err
		}
		s.replica.afterCommit(tx, func(r *replicaState) { r.revoked[jti] = expiresAt })
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", jti, err)
	}
	return nil
}

// TokenIDRevoked reports whether the access token with that jti was
// revoked with [Store.RevokeTokenID]. While the change feed is in sync it
// looks in memory, and otherwise it queries the database.
func (s *Store) TokenIDRevoked(ctx context.Context, jti string) (bool, error) {
	r := s.replica
	r.mu.Lock()
	if r.inSyncLocked(s.now()) {
		_, revoked := r.revoked[jti]
		r.mu.Unlock()
		return revoked, nil
	}
	r.mu.Unlock()

	var n int64
	err := s.db(ctx).Model(&changeModel{}).
		Where("subject = ? AND kind = ?", jti, changeTokenRevoked).
		Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("look up revocation of token %s: %w", jti, err)
	}
	return n > 0, nil
}

// DeleteExpiredChanges deletes feed rows that expired before cutoff and
// returns how many it deleted.
func (s *Store) DeleteExpiredChanges(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.writer(ctx).Where("expires_at < ?", cutoff.UTC()).Delete(&changeModel{})
	if res.Error != nil {
		return 0, fmt.Errorf("delete expired changes: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// ReplicaStats describes a process's in-memory copy of shared data.
type ReplicaStats struct {
	CachedClients int
	RevokedTokens int
	// SyncAge is the time since the last successful read of the change
	// feed; zero when there was none or the last one failed.
	SyncAge time.Duration
}

// ReplicaStats returns the sizes of the client cache and the revocation
// list, and the age of the last successful sync.
func (s *Store) ReplicaStats() ReplicaStats {
	r := s.replica
	r.mu.Lock()
	defer r.mu.Unlock()
	stats := ReplicaStats{CachedClients: len(r.clients), RevokedTokens: len(r.revoked)}
	if !r.syncedAt.IsZero() {
		stats.SyncAge = s.now().Sub(r.syncedAt)
	}
	return stats
}

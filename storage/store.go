package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	pgdriver "gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrNotFound is returned by lookups outside fosite's interfaces when no row
// matches. fosite-facing methods return errors that satisfy
// errors.Is(err, fosite.ErrNotFound) instead.
var ErrNotFound = errors.New("storage: not found")

// ErrConflict is returned when a write would violate a uniqueness rule, such
// as a second user with the same normalised username.
var ErrConflict = errors.New("storage: conflict")

// Config for Open. Zero values mean the defaults.
type Config struct {
	// Database is a SQLite file path (the default is "authserver.db"), or a
	// postgres:// URL.
	Database string
	// BusyTimeout is how long a SQLite writer waits for the lock held by
	// another connection or process before failing; default 5s.
	BusyTimeout time.Duration
	// MaxOpenConns bounds the connection pool; default 20 on PostgreSQL
	// and 8 on SQLite, where only one connection writes at a time anyway.
	MaxOpenConns int
	// MaxIdleConns is how many idle connections the pool keeps; default
	// 10, at most MaxOpenConns.
	MaxIdleConns int
	// ConnMaxLifetime closes connections older than this; default 30m, so
	// a PostgreSQL failover or restart is picked up.
	ConnMaxLifetime time.Duration
	// NewSession returns an empty session for token lookups whose caller
	// passes none (revocation does). Required.
	NewSession func() fosite.Session
	// Logger receives lifecycle messages (migrations applied). Default:
	// discard.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store is the database. It is safe for concurrent use, and several
// processes may share one database file or server.
type Store struct {
	gdb        *gorm.DB
	postgres   bool
	newSession func() fosite.Session
	logger     *slog.Logger
	now        func() time.Time
	replica    *replicaState
}

// Open connects to the database named in cfg. It does not migrate; call
// [Store.Migrate].
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.NewSession == nil {
		return nil, errors.New("storage: config has no NewSession")
	}
	if cfg.Database == "" {
		cfg.Database = "authserver.db"
	}
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	postgres := isPostgresURL(cfg.Database)
	if cfg.MaxOpenConns == 0 {
		cfg.MaxOpenConns = 8
		if postgres {
			cfg.MaxOpenConns = 20
		}
	}
	if cfg.MaxIdleConns == 0 {
		cfg.MaxIdleConns = min(10, cfg.MaxOpenConns)
	}
	if cfg.ConnMaxLifetime == 0 {
		cfg.ConnMaxLifetime = 30 * time.Minute
	}
	if cfg.MaxOpenConns < 1 || cfg.MaxIdleConns < 0 || cfg.MaxIdleConns > cfg.MaxOpenConns || cfg.ConnMaxLifetime < 0 {
		return nil, fmt.Errorf("invalid connection pool: %d open, %d idle, lifetime %s", cfg.MaxOpenConns, cfg.MaxIdleConns, cfg.ConnMaxLifetime)
	}

	dialector, err := dialectorFor(cfg, postgres)
	if err != nil {
		return nil, err
	}
	gdb, err := gorm.Open(dialector, &gorm.Config{
		// Every write that must be atomic runs in an explicit transaction;
		// the implicit one gorm wraps around each single statement only
		// costs a round trip.
		SkipDefaultTransaction: true,
		// Each token request runs the same few statements; preparing them
		// once per connection saves SQLite's parse and plan on every call.
		PrepareStmt:    true,
		TranslateError: true,
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return cfg.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}

	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB.SetMaxOpenConns(cfg.MaxOpenConns)
	sqlDB.SetMaxIdleConns(cfg.MaxIdleConns)
	sqlDB.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		if postgres {
			return nil, fmt.Errorf("connect to database %s: %w", redactURL(cfg.Database), err)
		}
		return nil, fmt.Errorf("connect to database: %w", err)
	}

	return &Store{gdb: gdb, postgres: postgres, newSession: cfg.NewSession, logger: cfg.Logger, now: cfg.Now, replica: newReplicaState()}, nil
}

func isPostgresURL(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

func dialectorFor(cfg Config, postgres bool) (gorm.Dialector, error) {
	if postgres {
		if _, err := url.Parse(cfg.Database); err != nil {
			return nil, errors.New("database URL is not a valid postgres:// URL")
		}
		return pgdriver.Open(cfg.Database), nil
	}

	// WAL lets readers proceed while one connection writes, and the busy
	// timeout makes a second process (an admin command beside serve) wait
	// for the write lock instead of failing at once. BEGIN IMMEDIATE takes
	// the write lock at the start of a transaction, so two transactions
	// never deadlock upgrading from a read lock.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", fmt.Sprint(cfg.BusyTimeout.Milliseconds()))
	q.Set("_txlock", "immediate")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	return sqlite.Open("file:" + cfg.Database + "?" + q.Encode()), nil
}

// redactURL removes the password from a database URL so it can appear in
// errors and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Close closes the database connections.
func (s *Store) Close() error {
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return sqlDB.Close()
}

// Ping checks that the database responds.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return sqlDB.PingContext(ctx)
}

type txKey struct{}

// db returns the transaction that ctx carries, or the pool, bound to ctx.
func (s *Store) db(ctx context.Context) *gorm.DB {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx
	}
	return s.gdb.WithContext(ctx)
}

// BeginTX starts a transaction that the returned context carries; every
// Store method called with that context runs inside it. It implements
// fosite's storage.Transactional.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return nil, errors.New("begin transaction: one is already open in this context")
	}
	tx := s.gdb.WithContext(ctx).Begin()
	if tx.Error != nil {
		return nil, fmt.Errorf("begin transaction: %w", tx.Error)
	}
	return context.WithValue(ctx, txKey{}, tx), nil
}

// Commit commits the transaction that ctx carries.
func (s *Store) Commit(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*gorm.DB)
	if !ok {
		return errors.New("commit: no transaction in context")
	}
	err := tx.Commit().Error
	s.replica.finish(tx, err == nil)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback aborts the transaction that ctx carries.
func (s *Store) Rollback(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*gorm.DB)
	if !ok {
		return errors.New("rollback: no transaction in context")
	}
	err := tx.Rollback().Error
	s.replica.finish(tx, false)
	if errors.Is(err, sql.ErrTxDone) || (err != nil && ctx.Err() != nil) {
		// database/sql rolls a transaction back by itself when its context
		// ends, so there is nothing left to undo.
		return nil
	}
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// Advisory lock ids, PostgreSQL only: one per kind of serialised change.
const (
	lockMigrations int64 = 0x5155414e5801 // "QUANX" and 1
	lockKeys       int64 = 0x5155414e5802
)

// lockTx serialises tx against other transactions that take the same lock,
// across processes, until tx ends. On SQLite every writing transaction
// already holds the database's write lock (BEGIN IMMEDIATE), so it does
// nothing there.
func (s *Store) lockTx(tx *gorm.DB, id int64) error {
	if !s.postgres {
		return nil
	}
	if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", id).Error; err != nil {
		return fmt.Errorf("take advisory lock %d: %w", id, err)
	}
	return nil
}

// IsPostgres reports whether the store runs on PostgreSQL.
func (s *Store) IsPostgres() bool { return s.postgres }

// inTx runs fn in a transaction, or inside the one ctx already carries.
func (s *Store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return fn(tx)
	}
	var used *gorm.DB
	err := s.gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		used = tx
		return fn(tx)
	})
	if used != nil {
		s.replica.finish(used, err == nil)
	}
	return err
}

// translate maps gorm and driver errors onto this package's sentinels.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		// The row refers to a user or client that does not exist (any
		// more).
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	default:
		return err
	}
}

// PoolStats returns the connection pool's statistics.
func (s *Store) PoolStats() sql.DBStats {
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return sql.DBStats{}
	}
	return sqlDB.Stats()
}

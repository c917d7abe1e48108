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
	// and 8 on SQLite. On SQLite this pool only reads, and one more
	// connection, in a pool of its own, runs every write.
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
	// gdb runs the reads that no transaction carries.
	gdb *gorm.DB
	// wdb runs every transaction and every write but CreateClient's (see
	// [Store.writer]). On SQLite it holds one connection, so the writers of
	// this process wait for it in Go instead of sleeping in SQLite's busy
	// handler. database/sql (Go 1.26) hands a freed connection to a random
	// waiter, not the oldest. On PostgreSQL wdb is gdb.
	wdb        *gorm.DB
	postgres   bool
	statements statements
	newSession func() fosite.Session
	logger     *slog.Logger
	now        func() time.Time
	replica    *replicaState
	// batcher groups token INSERTs on SQLite; nil on PostgreSQL, where
	// many connections write at once.
	batcher *insertBatcher
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
	pool := poolConfig{maxOpen: cfg.MaxOpenConns, maxIdle: cfg.MaxIdleConns, maxLifetime: cfg.ConnMaxLifetime}
	gdb, err := openPool(ctx, cfg, dialector, true, pool)
	if err != nil {
		return nil, err
	}
	wdb := gdb
	if !postgres {
		wdb, err = openSQLiteWriter(ctx, cfg)
		if err != nil {
			_ = closePool(gdb)
			return nil, err
		}
	}

	s := &Store{
		gdb:        gdb,
		wdb:        wdb,
		postgres:   postgres,
		statements: newStatements(postgres),
		newSession: cfg.NewSession,
		logger:     cfg.Logger,
		now:        cfg.Now,
		replica:    newReplicaState(),
	}
	if !postgres {
		s.batcher = newInsertBatcher(s)
	}
	return s, nil
}

type poolConfig struct {
	maxOpen, maxIdle int
	maxLifetime      time.Duration
}

// openSQLiteWriter opens the pool of one connection that runs every write
// to the SQLite database of cfg.
func openSQLiteWriter(ctx context.Context, cfg Config) (*gorm.DB, error) {
	// SQLite lets one connection write at a time, so the writes of this
	// process share one connection. A second connection that tried would
	// sleep in SQLite's busy handler, for 1, 2, 5, 10 ms and longer, up to
	// 100 ms per sleep (sqliteDefaultBusyCallback in the SQLite that
	// mattn/go-sqlite3 v1.14.22 bundles).
	//
	// NOTE: with GOMAXPROCS=1 and the CPU saturated, the goroutine that
	// holds this connection can lose its P during the SQLite call and wait
	// in the run queue before it releases the connection, with every other
	// write queued behind it. bench/loadgen at concurrency 32 with the
	// server on one core showed a longer p99 than one shared pool for
	// reads and writes, and a shorter one with GOMAXPROCS=2 on that core.
	sqlDB, err := sql.Open(sqlite.DriverName, sqliteDSN(cfg))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB.SetMaxOpenConns(1)
	dialector := sqlite.New(sqlite.Config{Conn: newWriterPool(sqlDB)})
	// The writerPool keeps the statements prepared, in place of gorm.
	gdb, err := openPool(ctx, cfg, dialector, false, poolConfig{maxOpen: 1, maxIdle: 1, maxLifetime: cfg.ConnMaxLifetime})
	if err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	return gdb, nil
}

// openPool opens a connection pool on dialector and checks that it
// connects.
func openPool(ctx context.Context, cfg Config, dialector gorm.Dialector, prepareStmt bool, pool poolConfig) (*gorm.DB, error) {
	gdb, err := gorm.Open(dialector, &gorm.Config{
		// Every write that must be atomic runs in an explicit transaction;
		// the implicit one gorm wraps around each single statement only
		// costs a round trip.
		SkipDefaultTransaction: true,
		// Each token request runs the same few statements; preparing them
		// once per connection saves SQLite's parse and plan on every call.
		PrepareStmt:    prepareStmt,
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
	sqlDB.SetMaxOpenConns(pool.maxOpen)
	sqlDB.SetMaxIdleConns(pool.maxIdle)
	sqlDB.SetConnMaxLifetime(pool.maxLifetime)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		if isPostgresURL(cfg.Database) {
			return nil, fmt.Errorf("connect to database %s: %w", redactURL(cfg.Database), err)
		}
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return gdb, nil
}

func closePool(gdb *gorm.DB) error {
	if writer, ok := gdb.ConnPool.(*writerPool); ok {
		return writer.Close()
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
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

	return sqlite.Open(sqliteDSN(cfg)), nil
}

func sqliteDSN(cfg Config) string {
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
	return "file:" + cfg.Database + "?" + q.Encode()
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

// Close closes the connections of the read pool and the writer pool.
func (s *Store) Close() error {
	if s.batcher != nil {
		s.batcher.close()
	}
	err := closePool(s.gdb)
	if s.wdb != s.gdb {
		err = errors.Join(err, closePool(s.wdb))
	}
	if err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// Ping checks that the database responds on the read pool and, on SQLite,
// on the writer pool too. The writer's check waits for the writes queued
// before it, so a long transaction delays it.
func (s *Store) Ping(ctx context.Context) error {
	for _, gdb := range s.pools() {
		sqlDB, err := gdb.DB()
		if err != nil {
			return fmt.Errorf("ping database: %w", err)
		}
		if err := sqlDB.PingContext(ctx); err != nil {
			return fmt.Errorf("ping database: %w", err)
		}
	}
	return nil
}

// pools returns the read pool and, on SQLite, the writer pool.
func (s *Store) pools() []*gorm.DB {
	if s.wdb == s.gdb {
		return []*gorm.DB{s.gdb}
	}
	return []*gorm.DB{s.gdb, s.wdb}
}

type txKey struct{}

// db returns the transaction that ctx carries, or else the read pool,
// bound to ctx. Statements that write use [Store.writer] instead.
func (s *Store) db(ctx context.Context) *gorm.DB {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx
	}
	return s.gdb.WithContext(ctx)
}

// writer returns the transaction that ctx carries, or else the writer
// pool, bound to ctx. On SQLite the writer pool has one connection, so a
// caller that holds a transaction must pass its context to every Store
// method it calls until the transaction ends. A call without it waits for
// the connection that the caller itself holds, until its context ends.
//
// NOTE: CreateClient still writes through the read pool, so it waits for
// the write lock in SQLite's busy handler like a second process does.
func (s *Store) writer(ctx context.Context) *gorm.DB {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx
	}
	return s.wdb.WithContext(ctx)
}

// BeginTX starts a transaction that the returned context carries; every
// Store method called with that context runs inside it. It implements
// fosite's storage.Transactional.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return nil, errors.New("begin transaction: one is already open in this context")
	}
	tx := s.wdb.WithContext(ctx).Begin()
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

// inTx runs fn in a transaction on the writer pool, or inside the one ctx
// already carries. fn must run every statement through tx, or through a
// context that carries tx.
func (s *Store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return fn(tx)
	}
	var used *gorm.DB
	err := s.wdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
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

// PoolStats returns the statistics of the connection pools, summed over
// the read pool and, on SQLite, the one-connection writer pool. Its
// WaitCount and WaitDuration thus include the writes that queued for the
// writer.
func (s *Store) PoolStats() sql.DBStats {
	var total sql.DBStats
	for _, gdb := range s.pools() {
		sqlDB, err := gdb.DB()
		if err != nil {
			continue
		}
		st := sqlDB.Stats()
		total.MaxOpenConnections += st.MaxOpenConnections
		total.OpenConnections += st.OpenConnections
		total.InUse += st.InUse
		total.Idle += st.Idle
		total.WaitCount += st.WaitCount
		total.WaitDuration += st.WaitDuration
		total.MaxIdleClosed += st.MaxIdleClosed
		total.MaxIdleTimeClosed += st.MaxIdleTimeClosed
		total.MaxLifetimeClosed += st.MaxLifetimeClosed
	}
	return total
}

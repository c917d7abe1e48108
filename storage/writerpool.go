package storage

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// maxPreparedWrites bounds the statements a writerPool keeps prepared.
// Past it, new query texts run unprepared. The store writes with a few
// dozen distinct texts, and IN lists of new lengths add more.
const maxPreparedWrites = 256

// maxPreparedArgs is the maximum number of arguments of a statement that a
// writerPool prepares. Statements with more are batch inserts (audit
// events, copied rows), whose text changes with the batch length, so
// preparing them would fill the cache with texts that rarely run again.
const maxPreparedArgs = 64

// writerPool is the gorm.ConnPool of the SQLite writer pool, a *sql.DB of
// one connection, and keeps its statements prepared. It takes the place of
// gorm's PreparedStmtDB (gorm v1.31), which can deadlock with one
// connection.
// A write outside a transaction adds its statement to gorm's cache and
// waits for the connection to prepare it, and the transaction holding the
// connection then waits for that cache entry when it runs the same
// statement. Here no caller waits for the connection while it holds a
// lock or a cache entry, and a transaction never prepares on the pool.
type writerPool struct {
	db *sql.DB
	// prepared maps a query text to its *sql.Stmt on db.
	prepared sync.Map
	count    atomic.Int64
	// missedInTx contains the query texts that a transaction ran
	// unprepared at least once.
	missedInTx sync.Map
}

var (
	_ gorm.ConnPool         = (*writerPool)(nil)
	_ gorm.ConnPoolBeginner = (*writerPool)(nil)
	_ gorm.GetDBConnector   = (*writerPool)(nil)
	_ gorm.ConnPool         = (*writerTx)(nil)
	_ gorm.TxCommitter      = (*writerTx)(nil)
	_ gorm.GetDBConnector   = (*writerTx)(nil)
)

func newWriterPool(db *sql.DB) *writerPool {
	return &writerPool{db: db}
}

// cached returns the prepared statement of query, or nil if there is none.
func (p *writerPool) cached(query string) *sql.Stmt {
	if v, ok := p.prepared.Load(query); ok {
		return v.(*sql.Stmt)
	}
	return nil
}

// stmt returns the prepared statement of query, which takes argCount
// arguments, preparing it first if need be. It returns nil for a
// statement that stays unprepared, and when preparing fails, so that the
// caller runs the query unprepared and reports its error.
func (p *writerPool) stmt(ctx context.Context, query string, argCount int) *sql.Stmt {
	if argCount > maxPreparedArgs {
		return nil
	}
	if st := p.cached(query); st != nil {
		return st
	}
	if p.count.Load() >= maxPreparedWrites {
		return nil
	}
	// PrepareContext waits for the connection. Two callers may prepare the
	// same text at once, and the one that loses closes its statement.
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if v, loaded := p.prepared.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return v.(*sql.Stmt)
	}
	p.count.Add(1)
	return st
}

func (p *writerPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.db.PrepareContext(ctx, query)
}

func (p *writerPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.stmt(ctx, query, len(args)); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.db.ExecContext(ctx, query, args...)
}

func (p *writerPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query, len(args)); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.db.QueryContext(ctx, query, args...)
}

func (p *writerPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(ctx, query, len(args)); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

func (p *writerPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &writerTx{tx: tx, pool: p}, nil
}

func (p *writerPool) GetDBConn() (*sql.DB, error) {
	return p.db, nil
}

// Close closes the prepared statements and then the pool.
func (p *writerPool) Close() error {
	p.prepared.Range(func(_, v any) bool {
		_ = v.(*sql.Stmt).Close()
		return true
	})
	return p.db.Close()
}

// writerTx is a transaction on a writerPool. It uses the statements the
// pool has prepared and runs any other statement unprepared, since
// preparing on the pool would wait for the connection the transaction
// holds. A statement that transactions run unprepared a second time is
// prepared on the pool once the transaction ends, so statements that run
// only in transactions are prepared too, but the statements a migration
// runs once are not.
type writerTx struct {
	tx   *sql.Tx
	pool *writerPool

	mu        sync.Mutex
	toPrepare []string
}

// stmt returns the pool's prepared statement of query, which takes
// argCount arguments, or nil if there is none yet.
func (t *writerTx) stmt(query string, argCount int) *sql.Stmt {
	if argCount > maxPreparedArgs {
		return nil
	}
	if st := t.pool.cached(query); st != nil {
		return st
	}
	if _, seen := t.pool.missedInTx.LoadOrStore(query, struct{}{}); seen {
		t.mu.Lock()
		t.toPrepare = append(t.toPrepare, query)
		t.mu.Unlock()
	}
	return nil
}

// prepareMissed prepares on the pool, in the background, the statements
// that stmt listed. It runs after the transaction ends, because until then
// the preparing would wait for the transaction's own connection.
func (t *writerTx) prepareMissed() {
	t.mu.Lock()
	queries := t.toPrepare
	t.toPrepare = nil
	t.mu.Unlock()
	if len(queries) == 0 {
		return
	}
	go func() {
		for _, query := range queries {
			// A statement that fails to prepare stays unprepared until a
			// later transaction lists it again. stmt lists only
			// statements within maxPreparedArgs.
			t.pool.stmt(context.Background(), query, 0)
		}
	}()
}

func (t *writerTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, query)
}

func (t *writerTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(query, len(args)); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *writerTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query, len(args)); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *writerTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(query, len(args)); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t *writerTx) Commit() error {
	err := t.tx.Commit()
	t.prepareMissed()
	return err
}

func (t *writerTx) Rollback() error {
	err := t.tx.Rollback()
	t.prepareMissed()
	return err
}

func (t *writerTx) GetDBConn() (*sql.DB, error) {
	return t.pool.db, nil
}

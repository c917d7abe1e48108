package storage

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// The statements of the token path are written out here rather than built
// by gorm, whose statement building and reflection allocated about 7 KB
// per call of each (BenchmarkCreateAccessTokenSession and
// BenchmarkGetAccessTokenSession). They run on the pool's gorm.ConnPool,
// which caches one prepared statement per query text, and database/sql
// prepares that statement once on each connection it runs on.

const insertTokenSessionSQL = `INSERT INTO token_sessions (signature, kind, request_id, client_id, user_id,
	subject, access_signature, requested_scopes, granted_scopes, requested_audience, granted_audience,
	form, session, active, requested_at, expires_at, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertArgs returns the values of m in the column order of
// insertTokenSessionSQL.
func (m *tokenSessionModel) insertArgs() []any {
	return []any{
		m.Signature, string(m.Kind), m.RequestID, m.ClientID, m.UserID,
		m.Subject, m.AccessSignature, m.RequestedScopes, m.GrantedScopes, m.RequestedAudience, m.GrantedAudience,
		m.Form, m.Session, m.Active, m.RequestedAt, m.ExpiresAt, m.CreatedAt,
	}
}

const selectTokenSessionSQL = `SELECT t.request_id, t.client_id, t.requested_scopes, t.granted_scopes,
	t.requested_audience, t.granted_audience, t.form, t.session, t.active, t.requested_at, u.disabled
	FROM token_sessions t LEFT JOIN users u ON u.id = t.user_id
	WHERE t.signature = ? AND t.kind = ?`

// scanTargets returns the fields of r in the column order of
// selectTokenSessionSQL.
func (r *tokenSessionRow) scanTargets() []any {
	m := &r.Model
	return []any{
		&m.RequestID, &m.ClientID, &m.RequestedScopes, &m.GrantedScopes,
		&m.RequestedAudience, &m.GrantedAudience, &m.Form, &m.Session, &m.Active, &m.RequestedAt,
		&r.UserDisabled,
	}
}

const selectLoginFailuresSQL = `SELECT key, failures, locked_until FROM login_failures WHERE key IN `

// loginFailureKeysPrepared is how many keys the prebuilt login-failure
// queries cover. The guard of package oauth reads one or two keys per
// token request.
const loginFailureKeysPrepared = 4

// statements holds the hand-written statements in the placeholder syntax of
// the database.
type statements struct {
	postgres           bool
	insertTokenSession string
	selectTokenSession string
	// loginFailures[n-1] reads the records of n keys.
	loginFailures [loginFailureKeysPrepared]string
}

func newStatements(postgres bool) statements {
	st := statements{
		postgres:           postgres,
		insertTokenSession: bindFor(postgres, insertTokenSessionSQL),
		selectTokenSession: bindFor(postgres, selectTokenSessionSQL),
	}
	for i := range st.loginFailures {
		st.loginFailures[i] = buildLoginFailuresSQL(postgres, i+1)
	}
	return st
}

// loginFailuresSQL returns the query that reads the records of n keys.
func (st *statements) loginFailuresSQL(n int) string {
	if n <= len(st.loginFailures) {
		return st.loginFailures[n-1]
	}
	return buildLoginFailuresSQL(st.postgres, n)
}

func buildLoginFailuresSQL(postgres bool, n int) string {
	return bindFor(postgres, selectLoginFailuresSQL+"("+strings.Repeat("?, ", n-1)+"?)")
}

// bindFor rewrites the ? placeholders of query as $1, $2, … for
// PostgreSQL, whose driver (pgx) reads only that form. SQLite reads ?
// as written. query must have no ? inside a literal or comment.
func bindFor(postgres bool, query string) string {
	if !postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// sqlReader returns what runs a hand-written read: the transaction that ctx
// carries, or else the read pool.
func (s *Store) sqlReader(ctx context.Context) gorm.ConnPool {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx.Statement.ConnPool
	}
	return s.gdb.ConnPool
}

// sqlWriter returns what runs a hand-written write: the transaction that
// ctx carries, or else the writer pool.
func (s *Store) sqlWriter(ctx context.Context) gorm.ConnPool {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx.Statement.ConnPool
	}
	return s.wdb.ConnPool
}

// queryOne runs query and scans its first row into dest. It returns
// sql.ErrNoRows when there is none. It replaces QueryRowContext because,
// when preparing fails, gorm's PreparedStmtDB returns an empty
// *sql.Row, whose Scan panics.
func queryOne(ctx context.Context, pool gorm.ConnPool, query string, args []any, dest ...any) error {
	rows, err := pool.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	// The early returns below report an error of their own, so they drop
	// the error of Close. The return on success checks it.
	defer func() { _ = rows.Close() }()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// translateDriver maps a driver error onto this package's sentinels, as
// gorm's TranslateError does for the statements gorm runs.
func (s *Store) translateDriver(err error) error {
	if err == nil {
		return nil
	}
	if translator, ok := s.gdb.Dialector.(gorm.ErrorTranslator); ok {
		err = translator.Translate(err)
	}
	return translate(err)
}

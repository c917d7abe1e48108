package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// migration is one schema change. Migrations are append-only: once
// released, a migration's statements never change, so that every database
// passes through the same states in the same order.
type migration struct {
	version int
	name    string
	// statements use only SQL that SQLite and PostgreSQL read alike.
	statements []string
	// sqlite and postgres run after statements, on that database only,
	// for the few things the two spell differently.
	sqlite, postgres []string
	// after runs in the same transaction, after statements.
	after func(tx *gorm.DB, now time.Time) error
}

// LegacyClientID is the built-in public client through which the legacy
// login endpoint runs the password grant. Migration 2 creates it; the
// standard token endpoint refuses it, so its lack of a secret is not an
// open door.
const LegacyClientID = "quanux-legacy-login"

var migrations = []migration{
	{
		version: 1,
		name:    "create users",
		statements: []string{`CREATE TABLE users (
			id TEXT PRIMARY KEY,
			username TEXT NOT NULL,
			username_key TEXT NOT NULL UNIQUE,
			password_hash TEXT NOT NULL,
			scopes TEXT NOT NULL DEFAULT '',
			disabled BOOLEAN NOT NULL DEFAULT FALSE,
			created_at TIMESTAMP NOT NULL,
			updated_at TIMESTAMP NOT NULL
		)`},
	},
	{
		version: 2,
		name:    "create clients",
		statements: []string{
			`CREATE TABLE clients (
				id TEXT PRIMARY KEY,
				name TEXT NOT NULL,
				email TEXT NOT NULL DEFAULT '',
				secret_hash TEXT NOT NULL DEFAULT '',
				owner_id TEXT REFERENCES users(id) ON DELETE CASCADE,
				scopes TEXT NOT NULL DEFAULT '',
				grant_types TEXT NOT NULL DEFAULT '',
				public BOOLEAN NOT NULL DEFAULT FALSE,
				disabled BOOLEAN NOT NULL DEFAULT FALSE,
				created_at TIMESTAMP NOT NULL,
				updated_at TIMESTAMP NOT NULL
			)`,
			`CREATE INDEX clients_owner_id ON clients (owner_id)`,
		},
		// Raw SQL, not the model: the model follows the newest schema.
		after: func(tx *gorm.DB, now time.Time) error {
			return tx.Exec(`INSERT INTO clients (id, name, grant_types, public, created_at, updated_at)
				VALUES (?, 'QuanuX legacy login', 'password', TRUE, ?, ?)`, LegacyClientID, now, now).Error
		},
	},
	{
		version: 3,
		name:    "create token sessions",
		statements: []string{
			`CREATE TABLE token_sessions (
				signature TEXT PRIMARY KEY,
				kind TEXT NOT NULL,
				request_id TEXT NOT NULL,
				client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
				user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
				subject TEXT NOT NULL DEFAULT '',
				access_signature TEXT NOT NULL DEFAULT '',
				requested_scopes TEXT NOT NULL DEFAULT '',
				granted_scopes TEXT NOT NULL DEFAULT '',
				requested_audience TEXT NOT NULL DEFAULT '',
				granted_audience TEXT NOT NULL DEFAULT '',
				form TEXT NOT NULL DEFAULT '',
				session TEXT NOT NULL,
				active BOOLEAN NOT NULL DEFAULT TRUE,
				requested_at TIMESTAMP NOT NULL,
				expires_at TIMESTAMP NOT NULL,
				created_at TIMESTAMP NOT NULL
			)`,
			`CREATE INDEX token_sessions_request_id ON token_sessions (request_id)`,
			`CREATE INDEX token_sessions_client_id ON token_sessions (client_id)`,
			`CREATE INDEX token_sessions_user_id ON token_sessions (user_id)`,
			`CREATE INDEX token_sessions_expires_at ON token_sessions (expires_at)`,
		},
	},
	{
		version: 4,
		name:    "create signing keys",
		statements: []string{`CREATE TABLE signing_keys (
			kid TEXT PRIMARY KEY,
			algorithm TEXT NOT NULL,
			state TEXT NOT NULL,
			private_key TEXT NOT NULL,
			public_key TEXT NOT NULL,
			created_at TIMESTAMP NOT NULL,
			activated_at TIMESTAMP NULL,
			retired_at TIMESTAMP NULL
		)`},
	},
	{
		version:    5,
		name:       "let clients introspect any token",
		statements: []string{`ALTER TABLE clients ADD COLUMN introspect BOOLEAN NOT NULL DEFAULT FALSE`},
	},
	{
		version: 6,
		name:    "create login failures",
		statements: []string{
			`CREATE TABLE login_failures (
				key TEXT PRIMARY KEY,
				failures INTEGER NOT NULL,
				locked_until TIMESTAMP NULL,
				updated_at TIMESTAMP NOT NULL
			)`,
			`CREATE INDEX login_failures_updated_at ON login_failures (updated_at)`,
		},
	},
	{
		version: 7,
		name:    "create audit events",
		statements: []string{
			`CREATE TABLE audit_events (
				id TEXT PRIMARY KEY,
				occurred_at TIMESTAMP NOT NULL,
				type TEXT NOT NULL,
				user_id TEXT NOT NULL DEFAULT '',
				client_id TEXT NOT NULL DEFAULT '',
				address TEXT NOT NULL DEFAULT '',
				user_agent TEXT NOT NULL DEFAULT '',
				detail TEXT NOT NULL DEFAULT ''
			)`,
			`CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at)`,
			`CREATE INDEX audit_events_user_id ON audit_events (user_id, occurred_at)`,
			`CREATE INDEX audit_events_client_id ON audit_events (client_id, occurred_at)`,
		},
	},
	{
		version: 8,
		name:    "create the change feed and token epochs",
		statements: []string{
			`ALTER TABLE users ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0`,
			`ALTER TABLE clients ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0`,
		},
		// seq must never be reused, also after the rows with the highest
		// values are deleted, because every process reads the feed from
		// the last seq it saw. SQLite guarantees that only with
		// AUTOINCREMENT.
		sqlite:   createChanges("INTEGER PRIMARY KEY AUTOINCREMENT"),
		postgres: createChanges("BIGSERIAL PRIMARY KEY"),
	},
}

// createChanges returns the statements of migration 8 that create the
// change feed, with seq of the given type, the one part SQLite and
// PostgreSQL spell differently. Like every released migration, its output
// must never change.
func createChanges(seq string) []string {
	return []string{
		`CREATE TABLE changes (
			seq ` + seq + `,
			kind TEXT NOT NULL,
			subject TEXT NOT NULL,
			expires_at TIMESTAMP NOT NULL,
			created_at TIMESTAMP NOT NULL
		)`,
		`CREATE INDEX changes_expires_at ON changes (expires_at)`,
		`CREATE INDEX changes_subject ON changes (subject)`,
	}
}

type schemaMigration struct {
	Version   int `gorm:"primaryKey"`
	Name      string
	AppliedAt time.Time
}

func (schemaMigration) TableName() string { return "schema_migrations" }

// Migrate applies every migration the database lacks, each in its own
// transaction, and returns the versions it applied. Processes starting at
// once are safe: each migration re-checks its version inside a transaction
// that holds the write lock.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	err := s.wdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Replicas starting at once would race to create the table.
		if err := s.lockTx(tx, lockMigrations); err != nil {
			return err
		}
		return tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at TIMESTAMP NOT NULL
		)`).Error
	})
	if err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}

	var applied []int
	for _, m := range migrations {
		done, err := s.applyMigration(ctx, m)
		if err != nil {
			return applied, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if done {
			applied = append(applied, m.version)
			s.logger.InfoContext(ctx, "migration applied", "version", m.version, "name", m.name)
		}
	}
	return applied, nil
}

func (s *Store) applyMigration(ctx context.Context, m migration) (bool, error) {
	applied := false
	err := s.wdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockTx(tx, lockMigrations); err != nil {
			return err
		}
		var existing schemaMigration
		err := tx.Where("version = ?", m.version).Take(&existing).Error
		if err == nil {
			return nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}

		now := s.now().UTC()
		statements := slices.Concat(m.statements, m.sqlite)
		if s.postgres {
			statements = slices.Concat(m.statements, m.postgres)
		}
		for _, stmt := range statements {
			if err := tx.Exec(stmt).Error; err != nil {
				return err
			}
		}
		if m.after != nil {
			if err := m.after(tx, now); err != nil {
				return err
			}
		}
		applied = true
		return tx.Create(&schemaMigration{Version: m.version, Name: m.name, AppliedAt: now}).Error
	})
	return applied, err
}

// PendingMigrations returns the versions of migrations not yet applied.
func (s *Store) PendingMigrations(ctx context.Context) ([]int, error) {
	var done []int
	err := s.db(ctx).Model(&schemaMigration{}).Pluck("version", &done).Error
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	seen := make(map[int]bool, len(done))
	for _, v := range done {
		seen[v] = true
	}
	var pending []int
	for _, m := range migrations {
		if !seen[m.version] {
			pending = append(pending, m.version)
		}
	}
	return pending, nil
}

package storage_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/quanux/authserver/storage"
	"github.com/quanux/authserver/storage/storagetest"
)

// postgresDSNEnv names the variable with the URL of a PostgreSQL database
// the tests may create schemas in.
const postgresDSNEnv = "AUTHSERVER_TEST_POSTGRES_DSN"

// postgresSchema creates a schema of its own for one test on the
// PostgreSQL at $AUTHSERVER_TEST_POSTGRES_DSN, drops it when the test ends,
// and returns a database URL whose connections use it. It skips the test
// when the variable is unset.
func postgresSchema(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(postgresDSNEnv)
	if dsn == "" {
		tb.Skipf("%s is not set; skipping the PostgreSQL run (set it to a postgres:// URL, as .ci/run does)", postgresDSNEnv)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatalf("open %s: %v", postgresDSNEnv, err)
	}
	tb.Cleanup(func() { _ = admin.Close() })

	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "authserver_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(tb.Context(), "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		// The test's context is already cancelled during cleanup.
		if _, err := admin.ExecContext(contextForCleanup(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("parse %s: %v", postgresDSNEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// openPostgres returns a migrated store on a fresh schema.
func openPostgres(tb testing.TB) *storage.Store {
	tb.Helper()
	s := openPostgresURL(tb, postgresSchema(tb))
	mustMigrate(tb, s)
	return s
}

// openPostgresURL opens a store on dsn without migrating it, and closes it
// when the test ends.
func openPostgresURL(tb testing.TB, dsn string) *storage.Store {
	tb.Helper()
	s, err := storage.Open(tb.Context(), storage.Config{Database: dsn, NewSession: storagetest.NewSession})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformancePostgres(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) *storage.Store { return openPostgres(t) })
}

func TestReplicasPostgres(t *testing.T) {
	storagetest.RunReplicas(t, func(t *testing.T) func() *storage.Store {
		dsn := postgresSchema(t)
		mustMigrate(t, openPostgresURL(t, dsn))
		return func() *storage.Store { return openPostgresURL(t, dsn) }
	})
}

func TestConcurrentMigratePostgres(t *testing.T) {
	dsn := postgresSchema(t)
	const replicas = 4
	errs := make(chan error, replicas)
	for range replicas {
		go func() {
			s, err := storage.Open(t.Context(), storage.Config{Database: dsn, NewSession: storagetest.NewSession})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			_, err = s.Migrate(t.Context())
			errs <- err
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Errorf("Migrate from one of %d processes at once: %v", replicas, err)
		}
	}

	s, err := storage.Open(t.Context(), storage.Config{Database: dsn, NewSession: storagetest.NewSession})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pending, err := s.PendingMigrations(t.Context())
	if err != nil || len(pending) != 0 {
		t.Errorf("pending migrations after concurrent Migrate: %v, %v", pending, err)
	}
}

func contextForCleanup() context.Context { return context.Background() }

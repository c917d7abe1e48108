package storage_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/ory/fosite"

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

// TestRevocationsDoNotDeadlockPostgres runs the statements of disabling a
// client (one transaction: SetClientDisabled, then RevokeTokensOfClient)
// beside the revocation of every token of the client's owner. Both
// record changes in the feed; if either took the feed's lock after
// locking token rows, PostgreSQL would abort one of them as a deadlock.
func TestRevocationsDoNotDeadlockPostgres(t *testing.T) {
	s := openPostgres(t)
	ctx := t.Context()

	if err := s.CreateUser(ctx, storage.User{ID: "user-u", Username: "u", PasswordHash: "x", Scopes: []string{"openid"}}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.CreateClient(ctx, &storage.Client{ID: "client-x", OwnerID: "user-u", SecretHash: []byte("x"), GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	session, ok := storagetest.NewSession().(*storagetest.Session)
	if !ok {
		t.Fatal("unexpected session type")
	}
	session.User = "user-u"
	session.Subject = "client-x"
	session.ExpiresAt[fosite.AccessToken] = time.Now().Add(time.Hour)
	req := &fosite.Request{ID: "request-1", RequestedAt: time.Now(), Client: &storage.Client{ID: "client-x"}, Form: url.Values{}, Session: session}
	if err := s.CreateAccessTokenSession(ctx, "signature-1", req); err != nil {
		t.Fatalf("CreateAccessTokenSession: %v", err)
	}

	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatalf("BeginTX: %v", err)
	}
	if err := s.SetClientDisabled(txCtx, "client-x", true); err != nil {
		t.Fatalf("SetClientDisabled: %v", err)
	}
	userDone := make(chan error, 1)
	go func() {
		_, err := s.RevokeTokensOfUser(ctx, "user-u")
		userDone <- err
	}()
	// Give the owner's revocation time to reach the database and block.
	time.Sleep(300 * time.Millisecond)

	_, clientErr := s.RevokeTokensOfClient(txCtx, "client-x")
	if clientErr == nil {
		clientErr = s.Commit(txCtx)
	} else {
		_ = s.Rollback(txCtx)
	}
	if clientErr != nil {
		t.Errorf("disable-client transaction: %v", clientErr)
	}
	select {
	case err := <-userDone:
		if err != nil {
			t.Errorf("RevokeTokensOfUser: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RevokeTokensOfUser did not return within 20s")
	}
}

package storage_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
	"github.com/quanux/authserver/storage/storagetest"
)

// busyTimeout differs from the driver's default of 5 s, so the settings
// test shows that Config.BusyTimeout reaches the connection.
const busyTimeout = 4 * time.Second

// openFile opens a store on the SQLite file at path without migrating it,
// and closes it when the test ends.
func openFile(tb testing.TB, path string) *storage.Store {
	tb.Helper()
	return openFileWithBusyTimeout(tb, path, busyTimeout)
}

// openFileWithBusyTimeout is openFile with the given busy timeout.
func openFileWithBusyTimeout(tb testing.TB, path string, timeout time.Duration) *storage.Store {
	tb.Helper()
	s, err := storage.Open(tb.Context(), storage.Config{
		Database:    path,
		BusyTimeout: timeout,
		NewSession:  storagetest.NewSession,
	})
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close(%q): %v", path, err)
		}
	})
	return s
}

func mustMigrate(tb testing.TB, s *storage.Store) []int {
	tb.Helper()
	applied, err := s.Migrate(tb.Context())
	if err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return applied
}

// openMigrated returns a migrated store on a new SQLite file.
func openMigrated(tb testing.TB) *storage.Store {
	tb.Helper()
	s := openFile(tb, filepath.Join(tb.TempDir(), "authserver.db"))
	mustMigrate(tb, s)
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) *storage.Store { return openMigrated(t) })
}

func TestReplicas(t *testing.T) {
	storagetest.RunReplicas(t, func(t *testing.T) func() *storage.Store {
		path := filepath.Join(t.TempDir(), "authserver.db")
		mustMigrate(t, openFile(t, path))
		return func() *storage.Store { return openFile(t, path) }
	})
}

func TestSQLiteConnectionSettings(t *testing.T) {
	s := openMigrated(t)
	readPool, err := s.SQLDB()
	if err != nil {
		t.Fatalf("SQLDB: %v", err)
	}
	writerPool, err := s.WriterSQLDB()
	if err != nil {
		t.Fatalf("WriterSQLDB: %v", err)
	}
	if readPool == writerPool {
		t.Fatalf("SQLDB and WriterSQLDB return the same pool, want a writer pool of its own on SQLite")
	}
	if got := writerPool.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool allows %d open connections, want 1", got)
	}

	pools := []struct {
		name string
		db   *sql.DB
	}{
		{name: "read pool", db: readPool},
		{name: "writer pool", db: writerPool},
	}
	tests := []struct {
		name   string
		pragma string
		want   string
	}{
		{name: "WAL journal", pragma: "journal_mode", want: "wal"},
		{name: "busy timeout", pragma: "busy_timeout", want: fmt.Sprint(busyTimeout.Milliseconds())},
		{name: "foreign keys enforced", pragma: "foreign_keys", want: "1"},
		{name: "synchronous NORMAL", pragma: "synchronous", want: "1"},
	}
	for _, pool := range pools {
		for _, tc := range tests {
			t.Run(pool.name+"/"+tc.name, func(t *testing.T) {
				var got string
				if err := pool.db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
					t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
				}
				if got != tc.want {
					t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
				}
			})
		}
	}
}

func TestTokenSignatureNotStored(t *testing.T) {
	s := openMigrated(t)
	req := &fosite.Request{
		ID:          "req-1",
		RequestedAt: time.Now(),
		Client:      &storage.Client{ID: storage.LegacyClientID},
		Form:        url.Values{"grant_type": {"password"}},
		Session:     storagetest.NewSession(),
	}
	if err := s.CreateAccessTokenSession(t.Context(), "sig-abc", req); err != nil {
		t.Fatalf("CreateAccessTokenSession: %v", err)
	}
	if err := s.CreateRefreshTokenSession(t.Context(), "sig-refresh", "sig-abc", req); err != nil {
		t.Fatalf("CreateRefreshTokenSession: %v", err)
	}

	cells := tokenSessionCells(t, s)

	if len(cells) != 2 {
		t.Fatalf("token_sessions has %d rows, want 2", len(cells))
	}
	for _, signature := range []string{"sig-abc", "sig-refresh"} {
		for i, row := range cells {
			for column, value := range row {
				if strings.Contains(value, signature) {
					t.Errorf("row %d column %s contains signature %q: %q", i, column, signature, value)
				}
			}
		}
	}
}

// tokenSessionCells returns every row of token_sessions as text, keyed by
// column name.
func tokenSessionCells(t *testing.T, s *storage.Store) []map[string]string {
	t.Helper()
	db, err := s.SQLDB()
	if err != nil {
		t.Fatalf("SQLDB: %v", err)
	}
	rows, err := db.QueryContext(t.Context(), "SELECT * FROM token_sessions")
	if err != nil {
		t.Fatalf("select token_sessions: %v", err)
	}
	defer rows.Close()
	columns, err := rows.Columns()
	if err != nil {
		t.Fatalf("token_sessions columns: %v", err)
	}

	var cells []map[string]string
	for rows.Next() {
		values := make([]any, len(columns))
		pointers := make([]any, len(columns))
		for i := range values {
			pointers[i] = &values[i]
		}
		if err := rows.Scan(pointers...); err != nil {
			t.Fatalf("scan token_sessions row: %v", err)
		}
		row := make(map[string]string, len(columns))
		for i, column := range columns {
			if b, ok := values[i].([]byte); ok {
				row[column] = string(b)
				continue
			}
			row[column] = fmt.Sprint(values[i])
		}
		cells = append(cells, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read token_sessions: %v", err)
	}
	return cells
}

// TestTwoStoresOneFile covers serve and an admin command writing to one
// database file from two processes. The second writer waits for the first
// one's transaction instead of failing with SQLITE_BUSY.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authserver.db")
	first := openFile(t, path)
	mustMigrate(t, first)
	second := openFile(t, path)

	txCtx, err := first.BeginTX(t.Context())
	if err != nil {
		t.Fatalf("BeginTX: %v", err)
	}
	if err := first.CreateUser(txCtx, storage.User{ID: "user-1", Username: "alice", PasswordHash: "x"}); err != nil {
		t.Fatalf("CreateUser in first store's transaction: %v", err)
	}

	writeUser := func() error {
		return second.CreateUser(t.Context(), storage.User{ID: "user-2", Username: "bob", PasswordHash: "x"})
	}
	checkWriteWaitsForCommit(t, "second store's write", writeUser, first, txCtx, busyTimeout+5*time.Second)

	for _, s := range []*storage.Store{first, second} {
		for _, id := range []string{"user-1", "user-2"} {
			if _, err := s.UserByID(t.Context(), id); err != nil {
				t.Errorf("UserByID(%q): %v", id, err)
			}
		}
	}
}

// checkWriteWaitsForCommit starts write while the transaction that txCtx
// carries on holder is open. It checks that write waits for the
// transaction, commits the transaction, and checks that write then
// succeeds within limit.
func checkWriteWaitsForCommit(t *testing.T, what string, write func() error, holder *storage.Store, txCtx context.Context, limit time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- write()
	}()

	const holdFor = 100 * time.Millisecond
	select {
	case err := <-done:
		_ = holder.Rollback(txCtx)
		t.Fatalf("%s returned %v while the transaction was open, want it to wait", what, err)
	case <-time.After(holdFor):
	}
	if err := holder.Commit(txCtx); err != nil {
		t.Fatalf("Commit: %v", err)
	}

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s after commit: %v", what, err)
		}
	case <-time.After(limit):
		t.Fatalf("%s did not return within %v of the commit", what, limit)
	}
}

// allMigrations returns the version of every migration, from a fresh
// database.
func allMigrations(t *testing.T) []int {
	t.Helper()
	s := openFile(t, filepath.Join(t.TempDir(), "reference.db"))
	versions := mustMigrate(t, s)
	if len(versions) == 0 {
		t.Fatalf("Migrate on an empty database applied nothing")
	}
	return versions
}

// TestConcurrentMigrate covers replicas starting at once on one database
// file. Each round uses a fresh file, and several rounds give the race
// several chances to show.
func TestConcurrentMigrate(t *testing.T) {
	want := allMigrations(t)

	const rounds = 5
	for round := range rounds {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "authserver.db")
			stores := []*storage.Store{openFile(t, path), openFile(t, path)}

			applied := migrateTogether(t, stores)

			// Each migration runs in exactly one of the two stores.
			slices.Sort(applied)
			if diff := cmp.Diff(want, applied); diff != "" {
				t.Errorf("versions applied by both stores together (-want +got):\n%s", diff)
			}
			for i, s := range stores {
				pending, err := s.PendingMigrations(t.Context())
				if err != nil {
					t.Fatalf("store %d: PendingMigrations: %v", i, err)
				}
				if len(pending) != 0 {
					t.Errorf("store %d: PendingMigrations = %v, want none", i, pending)
				}
			}
			if _, err := stores[0].GetClient(t.Context(), storage.LegacyClientID); err != nil {
				t.Errorf("GetClient(%q) after concurrent Migrate: %v", storage.LegacyClientID, err)
			}
		})
	}
}

// migrateTogether runs Migrate on every store at once and returns the
// versions they applied, all together.
func migrateTogether(t *testing.T, stores []*storage.Store) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	type result struct {
		applied []int
		err     error
	}
	start := make(chan struct{})
	results := make(chan result, len(stores))
	for _, s := range stores {
		go func() {
			<-start
			applied, err := s.Migrate(ctx)
			results <- result{applied: applied, err: err}
		}()
	}
	close(start)

	var applied []int
	for range stores {
		r := <-results
		if r.err != nil {
			t.Errorf("concurrent Migrate: %v", r.err)
		}
		applied = append(applied, r.applied...)
	}
	return applied
}

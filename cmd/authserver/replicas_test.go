package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/oauth2/clientcredentials"
)

const postgresDSNEnv = "AUTHSERVER_TEST_POSTGRES_DSN"

// postgresInstance is an installation on a schema of its own in the
// PostgreSQL at $AUTHSERVER_TEST_POSTGRES_DSN, dropped when the test ends.
// It skips the test when the variable is unset.
func postgresInstance(t *testing.T) (*instance, *sql.DB) {
	t.Helper()
	dsn := os.Getenv(postgresDSNEnv)
	if dsn == "" {
		t.Skipf("%s is not set; skipping the PostgreSQL test (set it to a postgres:// URL, as .ci/run does)", postgresDSNEnv)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "authserver_e2e_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		// The test's context is already cancelled during cleanup.
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	in := &instance{t: t, dir: t.TempDir(), database: u.String(), env: []string{"AUTHSERVER_SECRET=" + hex.EncodeToString(secret)}}
	return in, db
}

func TestMigrateFromSQLiteToPostgres(t *testing.T) {
	t.Parallel()
	target, _ := postgresInstance(t)
	copyInstance(t, target, nil)
}

func TestReplicasShareState(t *testing.T) {
	t.Parallel()
	in, db := postgresInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	decodeJSON(t, in.cli("", "clients", "create", "--name", "desktop", "--owner", "alice", "--grant-types", "password refresh_token client_credentials", "--introspect", "--json"), &c)

	// Replicas behind one load balancer share one issuer URL.
	flags := []string{"--issuer", "http://auth.test", "--keys-reload-interval", "300ms", "--address-rate", "100000", "--address-burst", "100000"}
	a := in.serve(flags...)
	b := in.serve(flags...)

	t.Run("token from one replica works on the other", func(t *testing.T) {
		token := a.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
		if got := b.introspect(token, c.ClientID, c.ClientSecret); got["active"] != true {
			t.Errorf("introspection on replica B of a token from A: %v", got)
		}
		if r := b.postJSON("/api/auth/register-client", token, map[string]string{"client_name": "from-b"}); r.status != http.StatusOK {
			t.Errorf("register-client on B with a token from A: status %d", r.status)
		}
	})

	t.Run("refresh and revoke across replicas", func(t *testing.T) {
		resp := a.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice password 1"}}, c.ClientID, c.ClientSecret)
		if resp.status != http.StatusOK {
			t.Fatalf("password grant on A: %d %s", resp.status, resp.body)
		}
		first := resp.json(t)
		resp = b.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}, c.ClientID, c.ClientSecret)
		if resp.status != http.StatusOK {
			t.Fatalf("refresh on B of a token from A: %d %s", resp.status, resp.body)
		}
		second := resp.json(t)
		resp = a.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}, c.ClientID, c.ClientSecret)
		if resp.status != http.StatusBadRequest {
			t.Errorf("reuse on A of a refresh token rotated on B: status %d, want 400", resp.status)
		}
		if got := a.introspect(second["access_token"].(string), c.ClientID, c.ClientSecret); got["active"] != false {
			t.Errorf("reuse did not revoke the family: %v", got)
		}

		machine := a.login(map[string]string{"client_id": c.ClientID, "client_secret": c.ClientSecret})["token"].(string)
		if r := b.postForm("/oauth2/revoke", url.Values{"token": {machine}}, c.ClientID, c.ClientSecret); r.status != http.StatusOK {
			t.Fatalf("revoke on B: %d", r.status)
		}
		if got := a.introspect(machine, c.ClientID, c.ClientSecret); got["active"] != false {
			t.Errorf("token revoked on B is still active on A: %v", got)
		}
	})

	t.Run("concurrent refresh with one token", func(t *testing.T) {
		resp := a.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice password 1"}}, c.ClientID, c.ClientSecret)
		refresh := resp.json(t)["refresh_token"].(string)
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for i, s := range []*server{a, b} {
			wg.Go(func() {
				statuses[i] = s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, c.ClientID, c.ClientSecret).status
			})
		}
		wg.Wait()
		ok := 0
		for _, st := range statuses {
			if st == http.StatusOK {
				ok++
			}
		}
		if ok != 1 {
			t.Errorf("statuses %v: want exactly one success", statuses)
		}
	})

	t.Run("lockout is shared", func(t *testing.T) {
		in.createUser("mallory", "mallory password", "strategy:read")
		for i := range 5 {
			s := []*server{a, b}[i%2]
			if r := s.postJSON("/api/auth/login", "", map[string]string{"username": "mallory", "password": "wrong"}); r.status != http.StatusUnauthorized {
				t.Fatalf("failure %d: status %d", i+1, r.status)
			}
		}
		for name, s := range map[string]*server{"A": a, "B": b} {
			if r := s.postJSON("/api/auth/login", "", map[string]string{"username": "mallory", "password": "mallory password"}); r.status != http.StatusTooManyRequests {
				t.Errorf("replica %s after 5 failures spread over both: status %d, want 429", name, r.status)
			}
		}
	})

	t.Run("key rotation reaches both replicas", func(t *testing.T) {
		oldKid := verifyOffline(t, a, a.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)).kid
		in.cli("", "keys", "rotate")
		for name, s := range map[string]*server{"A": a, "B": b} {
			deadline := time.Now().Add(10 * time.Second)
			for {
				kid := verifyOffline(t, s, s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)).kid
				if kid != oldKid {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica %s still signs with %s 10s after the rotation", name, oldKid)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	t.Run("one replica dies during a burst", func(t *testing.T) {
		const requests = 200
		cfgs := map[*server]clientcredentials.Config{}
		for _, s := range []*server{a, b} {
			cfgs[s] = clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: s.url + "/oauth2/token"}
		}

		var mu sync.Mutex
		var issued []string
		var failedOnB []error
		var wg sync.WaitGroup
		jobs := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range jobs {
					target := []*server{a, b}[i%2]
					cfg := cfgs[target]
					tok, err := cfg.Token(t.Context())
					mu.Lock()
					switch {
					case err == nil:
						issued = append(issued, tok.AccessToken)
					case target == b:
						failedOnB = append(failedOnB, err)
					}
					mu.Unlock()
				}
			})
		}
		for i := range requests {
			if i == requests/2 {
				if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		// The kill is the test's doing, so the exit status is only logged.
		t.Logf("replica A exited: %v", <-a.done)
		a.done <- nil

		if len(failedOnB) > 0 {
			t.Errorf("%d requests to the surviving replica failed, the first: %v", len(failedOnB), failedOnB[0])
		}
		if len(issued) < requests/2 {
			t.Errorf("only %d of %d token requests succeeded", len(issued), requests)
		}
		// Every token a client received is recorded exactly once.
		for _, token := range issued {
			sig := token[strings.LastIndex(token, ".")+1:]
			sum := sha256.Sum256([]byte(sig))
			var n int
			if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM token_sessions WHERE signature = $1", hex.EncodeToString(sum[:])).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("an issued token has %d records, want 1", n)
			}
		}
		// The surviving replica keeps serving.
		cfg := cfgs[b]
		if _, err := cfg.Token(t.Context()); err != nil {
			t.Errorf("replica B after A died: %v", err)
		}
	})
}

func decodeJSON(t *testing.T, text string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(text), v); err != nil {
		t.Fatalf("decode %q: %v", text, err)
	}
}

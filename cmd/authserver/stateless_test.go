package main

import (
	"database/sql"
	"net/http"
	"net/url"
	"slices"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// accessTokenRecords counts the access-token records in the test
// instance's SQLite database.
func accessTokenRecords(t *testing.T, in *instance) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+in.database+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	defer func() { _ = db.Close() }()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM token_sessions WHERE kind = 'access'").Scan(&n); err != nil {
		t.Fatalf("count token records: %v", err)
	}
	return n
}

func TestStatelessClientTokens(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	rs := in.resourceServer()
	// Both processes issue tokens for one issuer, as replicas do.
	shared := append([]string{"--issuer", "http://auth.test"}, noAddressLimit...)
	s := in.serve(append([]string{"--stateless-client-tokens"}, shared...)...)
	replica := in.serve(shared...)

	records := accessTokenRecords(t, in)
	token := clientToken(t, s, runner)
	legacy, _ := s.login(map[string]string{"client_id": runner.ClientID, "client_secret": runner.ClientSecret})["token"].(string)
	if got := accessTokenRecords(t, in); got != records {
		t.Errorf("access-token records went from %d to %d; stateless tokens must not be recorded", records, got)
	}

	t.Run("introspection matches a recorded token", func(t *testing.T) {
		stateless := s.introspect(token, rs.ClientID, rs.ClientSecret)
		recorded := replica.introspect(clientToken(t, replica, runner), rs.ClientID, rs.ClientSecret)
		if stateless["active"] != true {
			t.Fatalf("stateless token introspects as %v", stateless)
		}
		if !slices.Equal(sortedKeys(stateless), sortedKeys(recorded)) {
			t.Errorf("introspection members: stateless %v, recorded %v", sortedKeys(stateless), sortedKeys(recorded))
		}
		for _, k := range []string{"client_id", "sub", "scope", "aud", "token_type", "token_use", "iss"} {
			if !equalJSON(stateless[k], recorded[k]) {
				t.Errorf("introspection %q: stateless %v, recorded %v", k, stateless[k], recorded[k])
			}
		}
		if !isActive(replica, rs, token) {
			t.Error("another process does not accept the stateless token")
		}
	})

	t.Run("own endpoints accept stateless tokens", func(t *testing.T) {
		// A client-credentials token may not register clients: 403 shows
		// the token itself was accepted.
		if got := registerStatus(s, legacy); got != http.StatusForbidden {
			t.Errorf("register-client with a stateless client token: status %d, want 403", got)
		}
	})

	t.Run("revocation reaches every process", func(t *testing.T) {
		victim := clientToken(t, s, runner)
		// fosite returns 200 to a client revoking another's token, as it
		// does for recorded tokens, and revokes nothing.
		if resp := replica.postForm("/oauth2/revoke", url.Values{"token": {victim}}, rs.ClientID, rs.ClientSecret); resp.status >= 500 {
			t.Errorf("revocation by another client: status %d, body %s", resp.status, resp.body)
		}
		if !isActive(s, rs, victim) {
			t.Fatal("a revocation by another client took effect")
		}
		if resp := replica.postForm("/oauth2/revoke", url.Values{"token": {victim}}, runner.ClientID, runner.ClientSecret); resp.status != http.StatusOK {
			t.Fatalf("revoke: status %d, body %s", resp.status, resp.body)
		}
		if isActive(replica, rs, victim) {
			t.Error("the revoking process still accepts the token")
		}
		awaitSync()
		if isActive(s, rs, victim) {
			t.Error("another process accepts a revoked token after a sync interval")
		}
		if !isActive(s, rs, token) {
			t.Error("revoking one token revoked another")
		}
	})

	t.Run("revocation survives a restart", func(t *testing.T) {
		victim := clientToken(t, s, runner)
		if resp := s.postForm("/oauth2/revoke", url.Values{"token": {victim}}, runner.ClientID, runner.ClientSecret); resp.status != http.StatusOK {
			t.Fatalf("revoke: status %d", resp.status)
		}
		fresh := in.serve(append([]string{"--stateless-client-tokens"}, shared...)...)
		if isActive(fresh, rs, victim) {
			t.Error("a new process accepts a token revoked before it started")
		}
	})

	t.Run("disable and rotate revoke stateless tokens", func(t *testing.T) {
		before := clientToken(t, s, runner)
		in.cli("", "clients", "disable", runner.ClientID)
		awaitSync()
		if isActive(s, rs, before) {
			t.Error("a disabled client's stateless token is active")
		}
		in.cli("", "clients", "enable", runner.ClientID)
		awaitSync()
		if isActive(s, rs, before) {
			t.Error("enabling the client revived a stateless token revoked at disable")
		}

		current := clientToken(t, s, runner)
		var rotated cliClient
		decodeJSON(t, in.cli("", "clients", "rotate-secret", runner.ClientID, "--json"), &rotated)
		awaitSync()
		if isActive(s, rs, current) {
			t.Error("a stateless token of the old secret is active after rotate-secret")
		}
		runner.ClientSecret = rotated.ClientSecret
		if next := clientToken(t, s, runner); !isActive(replica, rs, next) {
			t.Error("a token of the new secret is inactive")
		}

		owned := clientToken(t, s, runner)
		in.cli("alice password 2\n", "users", "set-password", "alice", "--password-stdin", "--revoke-tokens")
		awaitSync()
		if isActive(s, rs, owned) {
			t.Error("a stateless token is active after its owner's tokens were revoked")
		}
	})
}

// equalJSON compares two decoded JSON values.
func equalJSON(a, b any) bool {
	as, aList := a.([]any)
	bs, bList := b.([]any)
	if aList || bList {
		return aList && bList && slices.Equal(as, bs)
	}
	return a == b
}

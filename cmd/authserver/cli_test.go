package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUsersCreate(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	id := in.createUser("alice", "alice password 1", aliceScopes)
	if !userIDPattern.MatchString(id) {
		t.Fatalf("printed %q, want a user id", id)
	}

	tests := []struct {
		name    string
		stdin   string
		args    []string
		wantErr string
	}{
		{"same name in other case", "pw\n", []string{"--username", "ALICE", "--password-stdin"}, "already exists"},
		{"without password-stdin", "pw\n", []string{"--username", "bob"}, "--password-stdin"},
		{"empty password", "\n", []string{"--username", "bob", "--password-stdin"}, "empty"},
		{"space in username", "pw\n", []string{"--username", "bob smith", "--password-stdin"}, "invalid username"},
		{"bad scope", "pw\n", []string{"--username", "bob", "--scopes", `a"b`, "--password-stdin"}, "scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in.expectFailure(t, tt.stdin, append([]string{"users", "create"}, tt.args...), tt.wantErr)
		})
	}
}

// expectFailure runs an admin command that must fail with a message
// containing wantErr on standard error.
func (in *instance) expectFailure(t *testing.T, stdin string, args []string, wantErr string) {
	t.Helper()
	_, stderr, err := in.tryCLI(stdin, args...)
	if err == nil {
		t.Fatal("command succeeded, want an error")
	}
	if !strings.Contains(stderr, wantErr) {
		t.Errorf("stderr = %q, want it to mention %q", stderr, wantErr)
	}
}

func TestClientsCreate(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	ownerID := in.createUser("alice", "alice password 1", aliceScopes)

	out := in.cli("", "clients", "create", "--name", "ci-pipeline", "--owner", "Alice", "--scopes", "strategy:read", "--json")
	var got struct {
		ClientID     string   `json:"client_id"`
		ClientSecret string   `json:"client_secret"`
		OwnerID      string   `json:"owner_id"`
		Scopes       []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if !clientIDPattern.MatchString(got.ClientID) || !secretPattern.MatchString(got.ClientSecret) {
		t.Errorf("client_id %q or secret has the wrong form", got.ClientID)
	}
	if got.OwnerID != ownerID || len(got.Scopes) != 1 || got.Scopes[0] != "strategy:read" {
		t.Errorf("owner %q scopes %v, want %s and [strategy:read]", got.OwnerID, got.Scopes, ownerID)
	}

	text := in.cli("", "clients", "create", "--name", "second", "--owner", "alice")
	if !strings.Contains(text, "client_id: client_") || !strings.Contains(text, "client_secret: secret_") {
		t.Errorf("text output = %q", text)
	}

	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown owner", []string{"--name", "x", "--owner", "nobody"}, "not found"},
		{"scope the owner lacks", []string{"--name", "x", "--owner", "alice", "--scopes", "admin"}, "scope"},
		{"empty name", []string{"--name", "", "--owner", "alice"}, "client_name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in.expectFailure(t, "", append([]string{"clients", "create"}, tt.args...), tt.wantErr)
		})
	}
}

type keyListing struct {
	KeyID     string `json:"kid"`
	Algorithm string `json:"alg"`
	State     string `json:"state"`
	Published bool   `json:"published"`
}

func listKeys(t *testing.T, in *instance) []keyListing {
	t.Helper()
	var keys []keyListing
	out := in.cli("", "keys", "list", "--json")
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("keys list --json printed %q: %v", out, err)
	}
	return keys
}

func keyInState(keys []keyListing, state string) string {
	for _, k := range keys {
		if k.State == state {
			return k.KeyID
		}
	}
	return ""
}

func TestKeysCommands(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	first := listKeys(t, in)
	if len(first) != 2 || keyInState(first, "active") == "" || keyInState(first, "next") == "" {
		t.Fatalf("a new database has keys %+v, want one active and one next", first)
	}

	in.cli("", "keys", "rotate")
	second := listKeys(t, in)
	if got := keyInState(second, "active"); got != keyInState(first, "next") {
		t.Errorf("after rotate the active key is %s, want the former next key %s", got, keyInState(first, "next"))
	}
	if got := keyInState(second, "retired"); got != keyInState(first, "active") {
		t.Errorf("after rotate the retired key is %s, want the former active key", got)
	}
	for _, k := range second {
		if k.Algorithm != "RS256" || !k.Published {
			t.Errorf("key %+v: want RS256 and published", k)
		}
	}

	in.cli("", "keys", "rotate", "--signing-alg", "ES256")
	if third := listKeys(t, in); third[0].Algorithm == "" || algorithmOf(third, keyInState(third, "active")) != "ES256" {
		t.Errorf("after rotate --signing-alg ES256 the keys are %+v", third)
	}

	text := in.cli("", "keys", "list")
	if !strings.HasPrefix(text, "KID") {
		t.Errorf("keys list printed %q, want a table with a header", text)
	}
}

func algorithmOf(keys []keyListing, kid string) string {
	for _, k := range keys {
		if k.KeyID == kid {
			return k.Algorithm
		}
	}
	return ""
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	if out := in.cli("", "migrate"); !strings.Contains(out, "applied migrations") {
		t.Errorf("first migrate printed %q", out)
	}
	if out := in.cli("", "migrate"); !strings.Contains(out, "up to date") {
		t.Errorf("second migrate printed %q", out)
	}
}

// runWithEnv runs the binary with extra environment variables and no
// --database flag added.
func runWithEnv(t *testing.T, env []string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(minimalEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func TestEnvironmentAndSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	envDB := filepath.Join(dir, "env.db")
	flagDB := filepath.Join(dir, "flag.db")

	t.Run("environment names the database", func(t *testing.T) {
		_, stderr, err := runWithEnv(t, []string{"AUTHSERVER_DATABASE=" + envDB}, "pw\n", "users", "create", "--username", "alice", "--password-stdin")
		if err != nil {
			t.Fatalf("users create: %v\n%s", err, stderr)
		}
		if _, err := os.Stat(envDB); err != nil {
			t.Errorf("AUTHSERVER_DATABASE was not used: %v", err)
		}
	})

	t.Run("flag wins over environment", func(t *testing.T) {
		_, stderr, err := runWithEnv(t, []string{"AUTHSERVER_DATABASE=" + envDB}, "pw\n", "users", "create", "--username", "alice", "--password-stdin", "--database", flagDB)
		if err != nil {
			t.Fatalf("users create: %v\n%s", err, stderr)
		}
		if _, err := os.Stat(flagDB); err != nil {
			t.Errorf("--database was not used: %v", err)
		}
	})

	t.Run("generated secret file is private", func(t *testing.T) {
		fi, err := os.Stat(envDB + ".secret")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("secret file mode = %v, want 0600", fi.Mode().Perm())
		}
	})

	t.Run("short secret rejected", func(t *testing.T) {
		_, stderr, err := runWithEnv(t, []string{"AUTHSERVER_SECRET=short"}, "", "keys", "list", "--database", filepath.Join(dir, "other.db"))
		if err == nil || !strings.Contains(stderr, "need at least 32") {
			t.Errorf("err = %v, stderr = %q; want a refusal naming the minimum length", err, stderr)
		}
	})

	t.Run("secret file flag", func(t *testing.T) {
		secretFile := filepath.Join(dir, "secret")
		if err := os.WriteFile(secretFile, []byte(strings.Repeat("k", 40)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(dir, "file.db")
		if _, stderr, err := runWithEnv(t, nil, "", "keys", "list", "--database", db, "--secret-file", secretFile); err != nil {
			t.Fatalf("keys list: %v\n%s", err, stderr)
		}
		if _, err := os.Stat(db + ".secret"); err == nil {
			t.Error("a secret file was generated although --secret-file was given")
		}

		// The keys were sealed under that secret: another one cannot open
		// them.
		_, stderr, err := runWithEnv(t, []string{"AUTHSERVER_SECRET=" + strings.Repeat("x", 40)}, "", "keys", "list", "--database", db)
		if err == nil || !strings.Contains(stderr, "master secret") {
			t.Errorf("err = %v, stderr = %q; want an error about the master secret", err, stderr)
		}
	})

	t.Run("invalid duration in environment", func(t *testing.T) {
		_, stderr, err := runWithEnv(t, []string{"AUTHSERVER_ACCESS_TOKEN_TTL=soon"}, "", "serve", "--database", filepath.Join(dir, "d.db"), "--addr", "127.0.0.1:0")
		if err == nil || !strings.Contains(stderr, "AUTHSERVER_ACCESS_TOKEN_TTL") {
			t.Errorf("err = %v, stderr = %q; want the variable named", err, stderr)
		}
	})
}

func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	const password = "pw-that-must-not-leak-9f2c"
	in.createUser("alice", password, aliceScopes)
	s := in.serve()
	login := s.login(map[string]string{"username": "alice", "password": password})
	token := login["token"].(string)
	clientID, secret := s.registerClient(token, "runner")
	machine := s.login(map[string]string{"client_id": clientID, "client_secret": secret})
	_ = s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": password + "-wrong"})
	s.stop()

	logs := s.logs.String()
	secretFile, err := os.ReadFile(in.database + ".secret")
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"password":       password,
		"wrong password": password + "-wrong",
		"user token":     token,
		"client secret":  secret,
		"machine token":  machine["token"].(string),
		"master secret":  strings.TrimSpace(string(secretFile)),
	} {
		if strings.Contains(logs, value) {
			t.Errorf("the server log contains the %s", name)
		}
	}
}

// copyInstance fills a SQLite installation, copies it with
// `migrate --from` into target, and checks that a server on target
// carries on: same users, clients, keys and tokens.
func copyInstance(t *testing.T, target *instance, env []string) {
	t.Helper()
	src := newInstance(t)
	userID := src.createUser("alice", "alice password 1", aliceScopes)
	s := src.serve("--stateless-client-tokens")
	token := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	clientID, secret := s.registerClient(token, "runner")
	before := verifyOffline(t, s, token)
	revoked := s.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string)
	if resp := s.postForm("/oauth2/revoke", url.Values{"token": {revoked}}, clientID, secret); resp.status != http.StatusOK {
		t.Fatalf("revoke a stateless token: status %d", resp.status)
	}
	s.stop()

	secretBytes, err := os.ReadFile(src.database + ".secret")
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, "AUTHSERVER_SECRET="+strings.TrimSpace(string(secretBytes)))
	out, stderr, err := runWithEnv(t, env, "", "migrate", "--database", target.database, "--from", src.database)
	if err != nil {
		t.Fatalf("migrate --from: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "copied 1 users, 1 clients, 2 signing keys, 1 tokens, 1 revocations") {
		t.Errorf("migrate --from printed %q", out)
	}
	if _, stderr, err := runWithEnv(t, env, "", "migrate", "--database", target.database, "--from", src.database); err != nil {
		t.Errorf("a repeated copy failed: %v\n%s", err, stderr)
	}

	target.env = env
	t2 := target.serveAt(strings.TrimPrefix(s.url, "http://"))
	after := verifyOffline(t, t2, token)
	if after.kid != before.kid {
		t.Errorf("after the copy the token's kid is %s, want %s", after.kid, before.kid)
	}
	login := t2.login(map[string]string{"username": "alice", "password": "alice password 1"})
	if login["user_id"] != userID {
		t.Errorf("login after the copy: user_id %v, want %s", login["user_id"], userID)
	}
	if got := t2.introspect(t2.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string), clientID, secret); got["active"] != true {
		t.Errorf("client token after the copy introspects as %v", got)
	}
	if got := t2.introspect(revoked, clientID, secret); got["active"] != false {
		t.Errorf("a revoked stateless token introspects as %v after the copy", got)
	}
}

func TestMigrateFromSQLite(t *testing.T) {
	t.Parallel()
	copyInstance(t, newInstance(t), nil)
}

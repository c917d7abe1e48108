package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// listedUser is one user of `users list --json` and `users show --json`.
type listedUser struct {
	ID             string         `json:"id"`
	Username       string         `json:"username"`
	Scopes         []string       `json:"scopes"`
	Disabled       bool           `json:"disabled"`
	PasswordScheme string         `json:"password_scheme"`
	CreatedAt      string         `json:"created_at"`
	Clients        []listedClient `json:"clients"`
}

// listedClient is one client of `clients list --json` and
// `clients show --json`.
type listedClient struct {
	ClientID   string   `json:"client_id"`
	Name       string   `json:"name"`
	OwnerID    string   `json:"owner_id"`
	Owner      string   `json:"owner"`
	Scopes     []string `json:"scopes"`
	GrantTypes []string `json:"grant_types"`
	Introspect bool     `json:"introspect"`
	Disabled   bool     `json:"disabled"`
}

// resourceServer creates a user and a client that may introspect every
// token, as a resource server has, so tests can ask whether any token is
// active.
func (in *instance) resourceServer() cliClient {
	in.t.Helper()
	in.createUser("resource-server", "resource server password", "")
	return in.createClientWithCLI("resource-server", "--introspect")
}

// isActive introspects token as the resource server rs.
func isActive(s *server, rs cliClient, token string) bool {
	s.t.Helper()
	return s.introspect(token, rs.ClientID, rs.ClientSecret)["active"] == true
}

// userLogin logs in through the legacy API and returns the token.
func userLogin(s *server, username, password string) string {
	s.t.Helper()
	token, _ := s.login(map[string]string{"username": username, "password": password})["token"].(string)
	return token
}

// clientLoginStatus sends client credentials to the legacy login and
// returns the status.
func clientLoginStatus(s *server, clientID, secret string) int {
	s.t.Helper()
	return s.postJSON("/api/auth/login", "", map[string]string{"client_id": clientID, "client_secret": secret}).status
}

// registerStatus tries register-client with token and returns the status.
func registerStatus(s *server, token string) int {
	s.t.Helper()
	return s.postJSON("/api/auth/register-client", token, map[string]string{"client_name": "probe"}).status
}

func TestUsersListAndShow(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	bobID := in.createUser("bob", "bob password 1", "strategy:read")
	aliceID := in.createUser("Alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice", "--scopes", "forge:write")

	var all []listedUser
	decodeJSON(t, in.cli("", "users", "list", "--json"), &all)
	if len(all) != 2 || all[0].Username != "Alice" || all[1].Username != "bob" {
		t.Fatalf("users list --json = %+v, want Alice then bob", all)
	}
	if all[0].ID != aliceID || all[1].ID != bobID {
		t.Errorf("ids %s, %s; want %s, %s", all[0].ID, all[1].ID, aliceID, bobID)
	}
	if all[0].PasswordScheme != "argon2id" || all[0].Disabled || all[0].CreatedAt == "" {
		t.Errorf("alice listed as %+v, want enabled with an argon2id hash and a creation time", all[0])
	}
	if diff := cmp.Diff(strings.Fields(aliceScopes), all[0].Scopes); diff != "" {
		t.Errorf("alice's scopes (-want +got):\n%s", diff)
	}

	var page []listedUser
	decodeJSON(t, in.cli("", "users", "list", "--json", "--limit", "1", "--offset", "1"), &page)
	if len(page) != 1 || page[0].Username != "bob" {
		t.Errorf("users list --limit 1 --offset 1 = %+v, want bob alone", page)
	}

	text := in.cli("", "users", "list")
	if !strings.HasPrefix(text, "USERNAME") || !strings.Contains(text, aliceID) {
		t.Errorf("users list printed %q, want a table with a header and alice's id", text)
	}
	if strings.Contains(text, "$argon2id$") {
		t.Error("users list printed a password hash")
	}

	for _, name := range []string{"ALICE", aliceID} {
		var shown listedUser
		out := in.cli("", "users", "show", name, "--json")
		decodeJSON(t, out, &shown)
		if shown.ID != aliceID || len(shown.Clients) != 1 || shown.Clients[0].ClientID != runner.ClientID {
			t.Errorf("users show %s --json = %+v, want alice with client %s", name, shown, runner.ClientID)
		}
		if strings.Contains(out, "$argon2id$") || strings.Contains(out, "hmac-sha256$") {
			t.Errorf("users show %s printed a hash", name)
		}
	}
	if out := in.cli("", "users", "show", "alice"); !strings.Contains(out, runner.ClientID) || !strings.Contains(out, "argon2id") {
		t.Errorf("users show printed %q, want the client and the hash scheme", out)
	}

	in.expectFailure(t, "", []string{"users", "show", "nobody"}, `user "nobody" not found`)
	in.expectFailure(t, "", []string{"users", "list", "--limit", "-1"}, "negative")
}

func TestUsersDisableAndEnable(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	token := userLogin(s, "alice", "alice password 1")
	clientID, secret := s.registerClient(token, "runner")
	machine, _ := s.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string)

	out := in.cli("", "users", "disable", "alice")
	awaitSync()
	if !strings.Contains(out, `user "alice" disabled; 2 tokens revoked`) {
		t.Errorf("users disable printed %q", out)
	}
	if got := registerStatus(s, token); got != http.StatusUnauthorized {
		t.Errorf("register-client with a disabled user's token: status %d, want 401", got)
	}
	if isActive(s, rs, token) {
		t.Error("a disabled user's token introspects as active")
	}
	if isActive(s, rs, machine) {
		t.Error("the client token of a disabled user introspects as active")
	}
	if r := s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": "alice password 1"}); r.status != http.StatusUnauthorized {
		t.Errorf("login of a disabled user: status %d, want 401", r.status)
	}
	if got := clientLoginStatus(s, clientID, secret); got != http.StatusUnauthorized {
		t.Errorf("client login of a disabled user's client: status %d, want 401", got)
	}
	var shown listedUser
	decodeJSON(t, in.cli("", "users", "show", "alice", "--json"), &shown)
	if !shown.Disabled {
		t.Error("users show reports the disabled user as enabled")
	}

	if out := in.cli("", "users", "enable", "alice"); !strings.Contains(out, `user "alice" enabled`) {
		t.Errorf("users enable printed %q", out)
	}
	awaitSync()
	again := userLogin(s, "alice", "alice password 1")
	if got := registerStatus(s, again); got != http.StatusOK {
		t.Errorf("register-client with a token from after enable: status %d, want 200", got)
	}
	if isActive(s, rs, token) {
		t.Error("a token revoked at disable is active again after enable")
	}
	if got := clientLoginStatus(s, clientID, secret); got != http.StatusOK {
		t.Errorf("client login after enable: status %d, want 200", got)
	}

	in.expectFailure(t, "", []string{"users", "disable", "nobody"}, `user "nobody" not found`)
	in.expectFailure(t, "", []string{"users", "enable", "nobody"}, `user "nobody" not found`)
}

func TestUsersSetPassword(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	before := userLogin(s, "alice", "alice password 1")

	if out := in.cli("alice password 2\n", "users", "set-password", "alice", "--password-stdin"); !strings.Contains(out, `password of user "alice" changed`) {
		t.Errorf("users set-password printed %q", out)
	}
	if r := s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": "alice password 1"}); r.status != http.StatusUnauthorized {
		t.Errorf("login with the old password: status %d, want 401", r.status)
	}
	userLogin(s, "alice", "alice password 2")
	if !isActive(s, rs, before) {
		t.Error("set-password without --revoke-tokens revoked an earlier token")
	}

	out := in.cli("alice password 3\n", "users", "set-password", "alice", "--password-stdin", "--revoke-tokens")
	awaitSync()
	if !strings.Contains(out, "tokens revoked") {
		t.Errorf("users set-password --revoke-tokens printed %q", out)
	}
	if isActive(s, rs, before) {
		t.Error("set-password --revoke-tokens left an earlier token active")
	}
	userLogin(s, "alice", "alice password 3")

	in.expectFailure(t, "pw\n", []string{"users", "set-password", "alice"}, "--password-stdin")
	in.expectFailure(t, "\n", []string{"users", "set-password", "alice", "--password-stdin"}, "empty")
	in.expectFailure(t, "pw\n", []string{"users", "set-password", "nobody", "--password-stdin"}, `user "nobody" not found`)
}

func TestUsersSetScopes(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	before := userLogin(s, "alice", "alice password 1")

	if out := in.cli("", "users", "set-scopes", "alice", "--scopes", "strategy:read"); !strings.Contains(out, "strategy:read") {
		t.Errorf("users set-scopes printed %q", out)
	}
	awaitSync()

	login := s.login(map[string]string{"username": "alice", "password": "alice password 1"})
	if diff := cmp.Diff([]any{"strategy:read"}, login["scopes"]); diff != "" {
		t.Errorf("scopes of a new login (-want +got):\n%s", diff)
	}
	machine := s.login(map[string]string{"client_id": runner.ClientID, "client_secret": runner.ClientSecret})
	if diff := cmp.Diff([]any{"strategy:read"}, machine["scopes"]); diff != "" {
		t.Errorf("scopes of the client's new token, bounded by its owner (-want +got):\n%s", diff)
	}
	var client listedClient
	decodeJSON(t, in.cli("", "clients", "show", runner.ClientID, "--json"), &client)
	if diff := cmp.Diff(strings.Fields(aliceScopes), client.Scopes); diff != "" {
		t.Errorf("the client's own scope list changed (-want +got):\n%s", diff)
	}
	if got := s.introspect(before, rs.ClientID, rs.ClientSecret); got["active"] != true || got["scope"] != aliceScopes {
		t.Errorf("a token from before set-scopes introspects as %v, want active with its old scopes", got)
	}

	in.cli("", "users", "set-scopes", "alice", "--scopes", "strategy:read forge:write", "--revoke-tokens")
	awaitSync()
	if isActive(s, rs, before) {
		t.Error("set-scopes --revoke-tokens left an earlier token active")
	}

	in.expectFailure(t, "", []string{"users", "set-scopes", "alice", "--scopes", `a"b`}, "scope")
	in.expectFailure(t, "", []string{"users", "set-scopes", "alice"}, "scopes")
	in.expectFailure(t, "", []string{"users", "set-scopes", "nobody", "--scopes", "a"}, `user "nobody" not found`)
}

func TestUsersDelete(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	token := userLogin(s, "alice", "alice password 1")
	clientID, secret := s.registerClient(token, "runner")
	machine, _ := s.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string)

	in.expectFailure(t, "", []string{"users", "delete", "alice"}, "--yes")
	if !isActive(s, rs, token) {
		t.Fatal("users delete without --yes changed something")
	}

	if out := in.cli("", "users", "delete", "alice", "--yes"); !strings.Contains(out, `user "alice" deleted with 1 client`) {
		t.Errorf("users delete printed %q", out)
	}
	awaitSync()
	if got := registerStatus(s, token); got != http.StatusUnauthorized {
		t.Errorf("register-client with a deleted user's token: status %d, want 401", got)
	}
	if isActive(s, rs, token) || isActive(s, rs, machine) {
		t.Error("a token of the deleted user or its client introspects as active")
	}
	if got := clientLoginStatus(s, clientID, secret); got != http.StatusUnauthorized {
		t.Errorf("client login of a deleted user's client: status %d, want 401", got)
	}
	in.expectFailure(t, "", []string{"users", "show", "alice"}, `user "alice" not found`)
	in.expectFailure(t, "", []string{"clients", "show", clientID}, "not found")
	in.expectFailure(t, "", []string{"users", "delete", "alice", "--yes"}, `user "alice" not found`)
}

// storedHash reads a user's password hash straight from the database.
func storedHash(t *testing.T, in *instance, username string) string {
	t.Helper()
	store, err := storage.Open(t.Context(), storage.Config{
		Database:   in.database,
		NewSession: func() fosite.Session { return oauth.NewSession() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	u, err := store.UserByUsername(t.Context(), username)
	if err != nil {
		t.Fatalf("read user %s: %v", username, err)
	}
	return u.PasswordHash
}

func TestUsersImport(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("existing", "existing password", "")

	bcryptHash, err := bcrypt.GenerateFromPassword([]byte("carol old password"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := oauth.NewPasswordHasher(oauth.DefaultArgon2Params)
	if err != nil {
		t.Fatal(err)
	}
	argonHash, err := hasher.Hash("dave old password")
	if err != nil {
		t.Fatal(err)
	}
	line := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	lines := []string{
		line(map[string]any{"username": "carol", "password_hash": string(bcryptHash), "scopes": []string{"strategy:read", "forge:write"}}),
		line(map[string]any{"username": "dave", "password_hash": argonHash}),
		"",
		line(map[string]any{"username": "existing", "password_hash": string(bcryptHash)}),
		line(map[string]any{"username": "erin", "password_hash": "plain text password"}),
		line(map[string]any{"username": "frank", "password": "frank password"}),
		`{"username": "gina", `,
		line(map[string]any{"username": "hank smith", "password_hash": string(bcryptHash)}),
		line(map[string]any{"username": "ivan", "password_hash": string(bcryptHash), "scopes": "strategy:read"}),
	}
	file := filepath.Join(in.dir, "users.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, err := in.tryCLI("", "users", "import", file)
	if err == nil {
		t.Error("users import with failing lines exited 0, want 1")
	}
	if !strings.Contains(stdout, "imported 2 users; 6 lines failed") {
		t.Errorf("stdout = %q, want the counts", stdout)
	}
	for _, want := range []string{
		`line 4: user "existing" already exists`,
		`line 5: user "erin": password_hash must be`,
		`line 6: unknown field "password"`,
		"line 7: not a complete JSON object",
		`line 8: user "hank smith": invalid username`,
		`line 9: field "scopes" has the wrong type`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not report %q:\n%s", want, stderr)
		}
	}
	for _, secret := range []string{string(bcryptHash), argonHash, "plain text password", "frank password"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("users import printed a password or hash: %q", secret)
		}
	}

	// Importing the same file again imports nothing, and --json reports
	// why.
	out, _, _ := in.tryCLI("", "users", "import", file, "--json")
	var report struct {
		Imported int `json:"imported"`
		Failed   []struct {
			Line  int    `json:"line"`
			Error string `json:"error"`
		} `json:"failed"`
	}
	decodeJSON(t, out, &report)
	if report.Imported != 0 || len(report.Failed) != 8 || report.Failed[0].Line != 1 || !strings.Contains(report.Failed[0].Error, "already exists") {
		t.Errorf("second import --json = %+v, want 0 imported and lines 1, 2, 4-9 failed", report)
	}

	var listed []listedUser
	decodeJSON(t, in.cli("", "users", "list", "--json"), &listed)
	schemes := map[string]string{}
	for _, u := range listed {
		schemes[u.Username] = u.PasswordScheme
	}
	if schemes["carol"] != "bcrypt" || schemes["dave"] != "argon2id" {
		t.Errorf("password schemes after import = %v, want carol bcrypt and dave argon2id", schemes)
	}

	s := in.serve(noAddressLimit...)
	carol := s.login(map[string]string{"username": "carol", "password": "carol old password"})
	if diff := cmp.Diff([]any{"strategy:read", "forge:write"}, carol["scopes"]); diff != "" {
		t.Errorf("imported scopes at login (-want +got):\n%s", diff)
	}
	userLogin(s, "dave", "dave old password")
	if r := s.postJSON("/api/auth/login", "", map[string]string{"username": "carol", "password": "wrong"}); r.status != http.StatusUnauthorized {
		t.Errorf("login with a wrong password for an imported user: status %d, want 401", r.status)
	}

	if got := storedHash(t, in, "carol"); !strings.HasPrefix(got, "$argon2id$") {
		t.Errorf("carol's stored hash after login has scheme %q, want argon2id", strings.SplitN(got, "$", 3)[1])
	}
	if got := storedHash(t, in, "dave"); got != argonHash {
		t.Error("dave's argon2id hash with the current parameters was replaced at login")
	}
	userLogin(s, "carol", "carol old password")
}

func TestUsersImportStandardInput(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	stdin := `{"username": "carol", "password_hash": "` + string(hash) + `"}` + "\r\n" + strings.Repeat("x", 70<<10) + "\n"
	stdout, stderr, err := in.tryCLI(stdin, "users", "import", "-")
	if err == nil {
		t.Error("an import with an overlong line exited 0")
	}
	if !strings.Contains(stdout, "imported 1 user; 1 line failed") || !strings.Contains(stderr, "line 2: line longer than") {
		t.Errorf("stdout %q, stderr %q; want carol imported and line 2 reported as too long", stdout, stderr)
	}

	in.expectFailure(t, "", []string{"users", "import", filepath.Join(in.dir, "missing.jsonl")}, "open import file")
}

func TestClientsListAndShow(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	aliceID := in.createUser("alice", "alice password 1", aliceScopes)
	in.createUser("bob", "bob password 1", "strategy:read")
	first := in.createClientWithCLI("alice", "--scopes", "forge:write")
	second := in.createClientWithCLI("bob", "--introspect")

	var all []listedClient
	out := in.cli("", "clients", "list", "--json")
	decodeJSON(t, out, &all)
	if len(all) != 2 || all[0].ClientID != first.ClientID || all[1].ClientID != second.ClientID {
		t.Fatalf("clients list --json = %+v, want the two clients oldest first and not the built-in one", all)
	}
	if all[0].Owner != "alice" || all[0].OwnerID != aliceID || !slices.Equal(all[0].Scopes, []string{"forge:write"}) {
		t.Errorf("first client listed as %+v", all[0])
	}
	if !all[1].Introspect || all[1].Owner != "bob" {
		t.Errorf("second client listed as %+v, want bob's introspecting client", all[1])
	}
	if strings.Contains(out, first.ClientSecret) || strings.Contains(out, "hmac-sha256$") || strings.Contains(out, storage.LegacyClientID) {
		t.Error("clients list printed a secret, a secret hash or the built-in client")
	}

	var mine []listedClient
	decodeJSON(t, in.cli("", "clients", "list", "--owner", "bob", "--json"), &mine)
	if len(mine) != 1 || mine[0].ClientID != second.ClientID {
		t.Errorf("clients list --owner bob = %+v, want bob's client alone", mine)
	}
	if text := in.cli("", "clients", "list"); !strings.HasPrefix(text, "CLIENT_ID") || !strings.Contains(text, first.ClientID) {
		t.Errorf("clients list printed %q", text)
	}

	var shown listedClient
	decodeJSON(t, in.cli("", "clients", "show", first.ClientID, "--json"), &shown)
	if diff := cmp.Diff(all[0], shown); diff != "" {
		t.Errorf("clients show --json differs from the listing (-list +show):\n%s", diff)
	}
	if text := in.cli("", "clients", "show", first.ClientID); !strings.Contains(text, "owner:") || strings.Contains(text, first.ClientSecret) {
		t.Errorf("clients show printed %q", text)
	}

	in.expectFailure(t, "", []string{"clients", "show", "client_nope"}, `client "client_nope" not found`)
	in.expectFailure(t, "", []string{"clients", "show", storage.LegacyClientID}, "not found")
	in.expectFailure(t, "", []string{"clients", "list", "--owner", "nobody"}, `user "nobody" not found`)
}

func TestClientsDisableAndEnable(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	machine, _ := s.login(map[string]string{"client_id": runner.ClientID, "client_secret": runner.ClientSecret})["token"].(string)
	user := userLogin(s, "alice", "alice password 1")

	if out := in.cli("", "clients", "disable", runner.ClientID); !strings.Contains(out, "disabled; 1 token revoked") {
		t.Errorf("clients disable printed %q", out)
	}
	awaitSync()
	if isActive(s, rs, machine) {
		t.Error("a disabled client's token introspects as active")
	}
	if got := clientLoginStatus(s, runner.ClientID, runner.ClientSecret); got != http.StatusUnauthorized {
		t.Errorf("client login of a disabled client: status %d, want 401", got)
	}
	if !isActive(s, rs, user) {
		t.Error("disabling a client revoked its owner's own login")
	}

	in.cli("", "clients", "enable", runner.ClientID)
	awaitSync()
	if got := clientLoginStatus(s, runner.ClientID, runner.ClientSecret); got != http.StatusOK {
		t.Errorf("client login after enable: status %d, want 200", got)
	}
	if isActive(s, rs, machine) {
		t.Error("a token revoked at disable is active again after enable")
	}

	for _, id := range []string{"client_nope", storage.LegacyClientID} {
		in.expectFailure(t, "", []string{"clients", "disable", id}, "not found")
	}
	userLogin(s, "alice", "alice password 1")
}

func TestClientsDelete(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	machine, _ := s.login(map[string]string{"client_id": runner.ClientID, "client_secret": runner.ClientSecret})["token"].(string)

	in.expectFailure(t, "", []string{"clients", "delete", runner.ClientID}, "--yes")
	if !isActive(s, rs, machine) {
		t.Fatal("clients delete without --yes changed something")
	}

	in.cli("", "clients", "delete", runner.ClientID, "--yes")
	awaitSync()
	if isActive(s, rs, machine) {
		t.Error("a deleted client's token introspects as active")
	}
	if got := clientLoginStatus(s, runner.ClientID, runner.ClientSecret); got != http.StatusUnauthorized {
		t.Errorf("client login of a deleted client: status %d, want 401", got)
	}
	in.expectFailure(t, "", []string{"clients", "show", runner.ClientID}, "not found")
	in.expectFailure(t, "", []string{"clients", "delete", storage.LegacyClientID, "--yes"}, "not found")
	userLogin(s, "alice", "alice password 1")
}

func TestClientsRotateSecret(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	machine, _ := s.login(map[string]string{"client_id": runner.ClientID, "client_secret": runner.ClientSecret})["token"].(string)

	var rotated cliClient
	decodeJSON(t, in.cli("", "clients", "rotate-secret", runner.ClientID, "--json"), &rotated)
	awaitSync()
	if rotated.ClientID != runner.ClientID || !secretPattern.MatchString(rotated.ClientSecret) || rotated.ClientSecret == runner.ClientSecret {
		t.Fatalf("rotate-secret --json = %+v, want a new secret for %s", rotated, runner.ClientID)
	}
	if got := clientLoginStatus(s, runner.ClientID, runner.ClientSecret); got != http.StatusUnauthorized {
		t.Errorf("client login with the old secret: status %d, want 401", got)
	}
	if isActive(s, rs, machine) {
		t.Error("a token obtained with the old secret is still active")
	}
	if got := clientLoginStatus(s, runner.ClientID, rotated.ClientSecret); got != http.StatusOK {
		t.Errorf("client login with the new secret: status %d, want 200", got)
	}

	if text := in.cli("", "clients", "rotate-secret", runner.ClientID); !strings.Contains(text, "client_secret: secret_") {
		t.Errorf("rotate-secret printed %q", text)
	}
	in.expectFailure(t, "", []string{"clients", "rotate-secret", storage.LegacyClientID}, "not found")
	in.expectFailure(t, "", []string{"clients", "rotate-secret", "client_nope"}, `client "client_nope" not found`)
}

func TestClientsSetScopes(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	s := in.serve(noAddressLimit...)

	if out := in.cli("", "clients", "set-scopes", runner.ClientID, "--scopes", "strategy:read"); !strings.Contains(out, "now has scopes: strategy:read") {
		t.Errorf("clients set-scopes printed %q", out)
	}
	awaitSync()
	machine := s.login(map[string]string{"client_id": runner.ClientID, "client_secret": runner.ClientSecret})
	if diff := cmp.Diff([]any{"strategy:read"}, machine["scopes"]); diff != "" {
		t.Errorf("scopes of a new client token (-want +got):\n%s", diff)
	}
	resp := s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"forge:write"}}, runner.ClientID, runner.ClientSecret)
	if resp.status != http.StatusBadRequest || errorField(resp) != "invalid_scope" {
		t.Errorf("a scope removed from the client: status %d, error %q; want 400 invalid_scope", resp.status, errorField(resp))
	}

	in.expectFailure(t, "", []string{"clients", "set-scopes", runner.ClientID, "--scopes", "admin"}, "scope")
	in.expectFailure(t, "", []string{"clients", "set-scopes", storage.LegacyClientID, "--scopes", "strategy:read"}, "not found")
}

// legacyErrorBody is the JSON error body of the legacy API.
type legacyErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func TestSelfServiceClients(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	rs := in.resourceServer()
	s := in.serve(noAddressLimit...)
	token := userLogin(s, "alice", "alice password 1")
	first, firstSecret := s.registerClient(token, "first")
	second, secondSecret := s.registerClient(token, "second")

	resp := s.do(http.MethodGet, "/api/auth/clients", "", "Bearer "+token, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("GET /api/auth/clients: status %d, body %s", resp.status, resp.body)
	}
	var listed []map[string]any
	decodeJSON(t, string(resp.body), &listed)
	if len(listed) != 2 || listed[0]["client_id"] != first || listed[1]["client_id"] != second {
		t.Fatalf("listed %v, want first and second", listed)
	}
	if diff := cmp.Diff([]string{"client_id", "client_name", "created_at", "disabled", "email", "scopes"}, sortedKeys(listed[0])); diff != "" {
		t.Errorf("client fields (-want +got):\n%s", diff)
	}
	if strings.Contains(string(resp.body), firstSecret) || strings.Contains(string(resp.body), "hmac-sha256") {
		t.Error("the client listing contains a secret or its hash")
	}
	if got := resp.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}

	machine, _ := s.login(map[string]string{"client_id": first, "client_secret": firstSecret})["token"].(string)
	resp = s.do(http.MethodPost, "/api/auth/clients/"+first+"/rotate-secret", "", "Bearer "+token, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("rotate-secret: status %d, body %s", resp.status, resp.body)
	}
	rotated := resp.json(t)
	if diff := cmp.Diff([]string{"client_id", "client_secret", "message"}, sortedKeys(rotated)); diff != "" {
		t.Errorf("rotate-secret fields (-want +got):\n%s", diff)
	}
	newSecret, _ := rotated["client_secret"].(string)
	if rotated["client_id"] != first || !secretPattern.MatchString(newSecret) {
		t.Errorf("rotate-secret returned %v", rotated)
	}
	if got := clientLoginStatus(s, first, firstSecret); got != http.StatusUnauthorized {
		t.Errorf("client login with the old secret: status %d, want 401", got)
	}
	if got := clientLoginStatus(s, first, newSecret); got != http.StatusOK {
		t.Errorf("client login with the new secret: status %d, want 200", got)
	}
	if isActive(s, rs, machine) {
		t.Error("a token from before the rotation is still active")
	}

	afterRotation, _ := s.login(map[string]string{"client_id": first, "client_secret": newSecret})["token"].(string)
	resp = s.do(http.MethodDelete, "/api/auth/clients/"+first, "", "Bearer "+token, nil)
	if resp.status != http.StatusNoContent || len(resp.body) != 0 {
		t.Errorf("DELETE: status %d, body %q; want 204 and no body", resp.status, resp.body)
	}
	if got := clientLoginStatus(s, first, newSecret); got != http.StatusUnauthorized {
		t.Errorf("client login after delete: status %d, want 401", got)
	}
	if isActive(s, rs, afterRotation) {
		t.Error("a deleted client's token is still active")
	}
	decodeJSON(t, string(s.do(http.MethodGet, "/api/auth/clients", "", "Bearer "+token, nil).body), &listed)
	if len(listed) != 1 || listed[0]["client_id"] != second {
		t.Errorf("after delete the listing is %v, want second alone", listed)
	}

	t.Run("client token", func(t *testing.T) {
		machine, _ := s.login(map[string]string{"client_id": second, "client_secret": secondSecret})["token"].(string)
		for _, req := range []struct{ method, path string }{
			{http.MethodGet, "/api/auth/clients"},
			{http.MethodPost, "/api/auth/clients/" + second + "/rotate-secret"},
			{http.MethodDelete, "/api/auth/clients/" + second},
			{http.MethodPost, "/api/auth/logout"},
		} {
			resp := s.do(req.method, req.path, "", "Bearer "+machine, nil)
			if resp.status != http.StatusForbidden || !strings.Contains(resp.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Errorf("%s %s with a client token: status %d, WWW-Authenticate %q; want 403 insufficient_scope", req.method, req.path, resp.status, resp.header.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("no token", func(t *testing.T) {
		for _, req := range []struct{ method, path string }{
			{http.MethodGet, "/api/auth/clients"},
			{http.MethodPost, "/api/auth/clients/" + second + "/rotate-secret"},
			{http.MethodDelete, "/api/auth/clients/" + second},
			{http.MethodPost, "/api/auth/logout"},
		} {
			resp := s.do(req.method, req.path, "", "", nil)
			if resp.status != http.StatusUnauthorized || !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s without a token: status %d, want 401 with a Bearer challenge", req.method, req.path, resp.status)
			}
		}
	})
}

func TestSelfServiceIsolation(t *testing.T) {
	t.Parallel()
	checkSelfServiceIsolation(t, newInstance(t))
}

func TestSelfServiceIsolationPostgres(t *testing.T) {
	t.Parallel()
	in, _ := postgresInstance(t)
	checkSelfServiceIsolation(t, in)
}

// checkSelfServiceIsolation checks that user B can neither see, rotate
// nor delete user A's client, that B learns nothing about which ids
// exist, and that A's client keeps working after B's attempts.
func checkSelfServiceIsolation(t *testing.T, in *instance) {
	in.createUser("alice", "alice password 1", aliceScopes)
	in.createUser("bob", "bob password 1", aliceScopes)
	s := in.serve(noAddressLimit...)
	alice := userLogin(s, "alice", "alice password 1")
	bob := userLogin(s, "bob", "bob password 1")
	aliceClient, aliceSecret := s.registerClient(alice, "alice-runner")
	bobClient, _ := s.registerClient(bob, "bob-runner")

	resp := s.do(http.MethodGet, "/api/auth/clients", "", "Bearer "+bob, nil)
	var listed []map[string]any
	decodeJSON(t, string(resp.body), &listed)
	if len(listed) != 1 || listed[0]["client_id"] != bobClient {
		t.Errorf("bob's listing = %v, want his client alone", listed)
	}

	var notFound []legacyErrorBody
	for _, id := range []string{aliceClient, "client_00000000000000000000000000000000", storage.LegacyClientID, strings.Repeat("x", 300)} {
		for _, req := range []struct{ method, path string }{
			{http.MethodPost, "/api/auth/clients/" + id + "/rotate-secret"},
			{http.MethodDelete, "/api/auth/clients/" + id},
		} {
			resp := s.do(req.method, req.path, "", "Bearer "+bob, nil)
			if resp.status != http.StatusNotFound {
				t.Errorf("bob: %s %.60s: status %d, want 404; body %s", req.method, req.path, resp.status, resp.body)
				continue
			}
			var body legacyErrorBody
			decodeJSON(t, string(resp.body), &body)
			notFound = append(notFound, body)
		}
	}
	for _, body := range notFound {
		if diff := cmp.Diff(notFound[0], body); diff != "" || body.Error != "not_found" {
			t.Errorf("404 bodies differ, so they tell ids apart (-first +this):\n%s", diff)
		}
	}

	if got := clientLoginStatus(s, aliceClient, aliceSecret); got != http.StatusOK {
		t.Errorf("alice's client after bob's attempts: status %d, want 200", got)
	}
	resp = s.do(http.MethodGet, "/api/auth/clients", "", "Bearer "+alice, nil)
	decodeJSON(t, string(resp.body), &listed)
	if len(listed) != 1 || listed[0]["client_id"] != aliceClient {
		t.Errorf("alice's listing after bob's attempts = %v", listed)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	desktop := in.createClientWithCLI("alice", "--grant-types", "password refresh_token")
	s := in.serve(noAddressLimit...)
	token := userLogin(s, "alice", "alice password 1")
	other := userLogin(s, "alice", "alice password 1")

	resp := s.postJSON("/api/auth/logout", token, "")
	if resp.status != http.StatusNoContent {
		t.Fatalf("logout: status %d, body %s; want 204", resp.status, resp.body)
	}
	if got := registerStatus(s, token); got != http.StatusUnauthorized {
		t.Errorf("register-client after logout: status %d, want 401", got)
	}
	if resp := s.postJSON("/api/auth/logout", token, ""); resp.status != http.StatusUnauthorized {
		t.Errorf("second logout with the same token: status %d, want 401", resp.status)
	}
	if got := registerStatus(s, other); got != http.StatusOK {
		t.Errorf("another login of the same user after logout: status %d, want 200", got)
	}

	// Logging out with an access token also ends the refresh token of its
	// family.
	grant := s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice password 1"}}, desktop.ClientID, desktop.ClientSecret)
	if grant.status != http.StatusOK {
		t.Fatalf("password grant: status %d, body %s", grant.status, grant.body)
	}
	tokens := grant.json(t)
	access, _ := tokens["access_token"].(string)
	refresh, _ := tokens["refresh_token"].(string)
	if resp := s.postJSON("/api/auth/logout", access, ""); resp.status != http.StatusNoContent {
		t.Fatalf("logout with a token of the standard grant: status %d", resp.status)
	}
	again := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, desktop.ClientID, desktop.ClientSecret)
	if again.status != http.StatusBadRequest || errorField(again) != "invalid_grant" {
		t.Errorf("refresh after logout: status %d, error %q; want 400 invalid_grant", again.status, errorField(again))
	}
}

func TestUserinfoEndpoint(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	userID := in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	s := in.serve(noAddressLimit...)
	token := userLogin(s, "alice", "alice password 1")

	resp := s.do(http.MethodGet, "/userinfo", "", "Bearer "+token, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("userinfo: status %d, body %s", resp.status, resp.body)
	}
	want := map[string]any{"sub": userID, "username": "alice", "scope": aliceScopes, "scopes": []any{"strategy:read", "strategy:write", "forge:write"}}
	if diff := cmp.Diff(want, resp.json(t)); diff != "" {
		t.Errorf("userinfo body (-want +got):\n%s", diff)
	}
	if got := resp.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}

	machine, _ := s.login(map[string]string{"client_id": runner.ClientID, "client_secret": runner.ClientSecret})["token"].(string)
	resp = s.do(http.MethodGet, "/userinfo", "", "Bearer "+machine, nil)
	if resp.status != http.StatusForbidden || !strings.Contains(resp.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("userinfo with a client token: status %d, WWW-Authenticate %q; want 403 insufficient_scope", resp.status, resp.header.Get("WWW-Authenticate"))
	}

	resp = s.do(http.MethodGet, "/userinfo", "", "", nil)
	if resp.status != http.StatusUnauthorized || resp.header.Get("WWW-Authenticate") != `Bearer realm="quanux"` {
		t.Errorf("userinfo without a token: status %d, WWW-Authenticate %q; want 401 and a challenge without an error code", resp.status, resp.header.Get("WWW-Authenticate"))
	}

	in.cli("", "users", "disable", "alice")
	awaitSync()
	resp = s.do(http.MethodGet, "/userinfo", "", "Bearer "+token, nil)
	if resp.status != http.StatusUnauthorized || !strings.Contains(resp.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("userinfo with a disabled user's token: status %d, want 401 invalid_token", resp.status)
	}
}

func TestManagementCommandsHelp(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	commands := []struct {
		args []string
		// want are words the help text must contain, such as the unit or
		// default of a flag.
		want []string
	}{
		{[]string{"users", "list"}, []string{"--json", "--limit", "0 prints all", "--offset"}},
		{[]string{"users", "show"}, []string{"--json", "user id"}},
		{[]string{"users", "disable"}, []string{"revoked", "users enable"}},
		{[]string{"users", "enable"}, []string{"stay revoked"}},
		{[]string{"users", "set-password"}, []string{"--password-stdin", "--revoke-tokens", "argon2id"}},
		{[]string{"users", "set-scopes"}, []string{"--scopes", "--revoke-tokens"}},
		{[]string{"users", "delete"}, []string{"--yes"}},
		{[]string{"users", "import"}, []string{"password_hash", "$2b$", "$argon2id$", "64 KiB", "--json", "line number"}},
		{[]string{"clients", "list"}, []string{"--owner", "--json", "--limit", "0 prints all"}},
		{[]string{"clients", "show"}, []string{"--json", "never printed"}},
		{[]string{"clients", "disable"}, []string{"revoked"}},
		{[]string{"clients", "enable"}, []string{"stay revoked"}},
		{[]string{"clients", "delete"}, []string{"--yes"}},
		{[]string{"clients", "rotate-secret"}, []string{"--json", "shown only once", "revoked"}},
		{[]string{"clients", "set-scopes"}, []string{"--scopes", "subset of the owner's"}},
	}
	for _, c := range commands {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out := in.cli("", append(c.args, "--help")...)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("help does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}

// waitForAuditEvent polls `audit --json --type eventType` until an event
// of user and client appears, because a running server writes its events
// in batches. It fails the test after 10 seconds.
func waitForAuditEvent(t *testing.T, in *instance, eventType, userID, clientID string) auditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var events []auditEvent
		decodeJSON(t, in.cli("", "audit", "--json", "--type", eventType), &events)
		for _, e := range events {
			if e.UserID == userID && e.ClientID == clientID {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event of user %q and client %q within 10s; events: %+v", eventType, userID, clientID, events)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestManagementAudited(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	aliceID := in.createUser("alice", "alice password 1", aliceScopes)
	runner := in.createClientWithCLI("alice")
	other := in.createClientWithCLI("alice")

	in.cli("", "users", "disable", "alice")
	if e := waitForAuditEvent(t, in, "user_disabled", aliceID, ""); !strings.Contains(e.Detail, "revoked_tokens=") {
		t.Errorf("user_disabled detail = %q, want the number of revoked tokens", e.Detail)
	}
	in.cli("", "users", "enable", "alice")
	waitForAuditEvent(t, in, "user_enabled", aliceID, "")
	in.cli("", "clients", "rotate-secret", runner.ClientID)
	waitForAuditEvent(t, in, "secret_rotated", aliceID, runner.ClientID)
	in.cli("", "clients", "disable", runner.ClientID)
	waitForAuditEvent(t, in, "client_disabled", aliceID, runner.ClientID)
	in.cli("", "clients", "delete", runner.ClientID, "--yes")
	waitForAuditEvent(t, in, "client_deleted", aliceID, runner.ClientID)

	// The self-service endpoints go through the same rules on the server.
	s := in.serve(noAddressLimit...)
	token := userLogin(s, "alice", "alice password 1")
	if resp := s.do(http.MethodDelete, "/api/auth/clients/"+other.ClientID, "", "Bearer "+token, nil); resp.status != http.StatusNoContent {
		t.Fatalf("DELETE: status %d, body %s", resp.status, resp.body)
	}
	waitForAuditEvent(t, in, "client_deleted", aliceID, other.ClientID)
	if resp := s.postJSON("/api/auth/logout", token, ""); resp.status != http.StatusNoContent {
		t.Fatalf("logout: status %d", resp.status)
	}
	if e := waitForAuditEvent(t, in, "token_revoked", aliceID, storage.LegacyClientID); e.Detail != "logout" {
		t.Errorf("token_revoked detail = %q, want logout", e.Detail)
	}

	in.cli("", "users", "delete", "alice", "--yes")
	waitForAuditEvent(t, in, "user_deleted", aliceID, "")
}

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/quanux/authserver/oauth"
)

const aliceScopes = "strategy:read strategy:write forge:write"

// verifiedToken is an access token checked independently of the server's
// code: go-jose against the served JWKS.
type verifiedToken struct {
	kid    string
	typ    string
	claims jwt.Claims
	extra  map[string]any
}

// verifyOffline verifies token as a resource server would, with nothing
// but the JWKS.
func verifyOffline(t *testing.T, s *server, token string) verifiedToken {
	t.Helper()
	resp := s.do(http.MethodGet, "/.well-known/jwks.json", "", "", nil)
	if resp.status != http.StatusOK {
		t.Fatalf("jwks: status %d", resp.status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.body, &set); err != nil {
		t.Fatalf("jwks: %v", err)
	}

	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	h := tok.Headers[0]
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q matches %d keys in the JWKS", h.KeyID, len(keys))
	}
	var v verifiedToken
	if err := tok.Claims(keys[0].Key, &v.claims, &v.extra); err != nil {
		t.Fatalf("verify token signature: %v", err)
	}
	err = v.claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      s.issuer,
		AnyAudience: jwt.Audience{"quanux-api"},
		Time:        time.Now(),
	}, time.Second)
	if err != nil {
		t.Fatalf("validate claims: %v", err)
	}
	v.kid = h.KeyID
	v.typ, _ = h.ExtraHeaders["typ"].(string)
	return v
}

var (
	userIDPattern   = regexp.MustCompile(`^user_[0-9a-f]{32}$`)
	clientIDPattern = regexp.MustCompile(`^client_[0-9a-f]{32}$`)
	secretPattern   = regexp.MustCompile(`^secret_[0-9a-f]{64}$`)
)

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestWalkthrough(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	userID := in.createUser("alice", "correct horse battery staple", aliceScopes)
	if !userIDPattern.MatchString(userID) {
		t.Fatalf("users create printed %q, want a user_ id", userID)
	}
	s := in.serve()

	// The reference page's first example: log in with username and
	// password.
	login := s.login(map[string]string{"username": "alice", "password": "correct horse battery staple"})
	if diff := cmp.Diff([]string{"expires_in", "scopes", "token", "token_type", "user_id"}, sortedKeys(login)); diff != "" {
		t.Errorf("login reply fields (-want +got):\n%s", diff)
	}
	if login["user_id"] != userID {
		t.Errorf("login user_id = %v, want %s", login["user_id"], userID)
	}
	if diff := cmp.Diff([]any{"strategy:read", "strategy:write", "forge:write"}, login["scopes"]); diff != "" {
		t.Errorf("login scopes (-want +got):\n%s", diff)
	}
	userToken, _ := login["token"].(string)
	ut := verifyOffline(t, s, userToken)
	if ut.claims.Subject != userID || ut.extra["user_id"] != userID {
		t.Errorf("user token sub = %q, user_id = %v; want %s for both", ut.claims.Subject, ut.extra["user_id"], userID)
	}

	// Register a client for a script.
	resp := s.postJSON("/api/auth/register-client", userToken, map[string]string{"client_name": "backtest-runner"})
	if resp.status != http.StatusOK {
		t.Fatalf("register-client: status %d, body %s", resp.status, resp.body)
	}
	reg := resp.json(t)
	if diff := cmp.Diff([]string{"client_id", "client_secret", "message", "scopes"}, sortedKeys(reg)); diff != "" {
		t.Errorf("register-client reply fields (-want +got):\n%s", diff)
	}
	clientID, _ := reg["client_id"].(string)
	secret, _ := reg["client_secret"].(string)
	if !clientIDPattern.MatchString(clientID) {
		t.Errorf("client_id = %q, want client_ and 32 hex digits", clientID)
	}
	if !secretPattern.MatchString(secret) {
		t.Errorf("client_secret does not have the secret_ prefix and 64 hex digits")
	}
	if reg["message"] != "Client 'backtest-runner' registered successfully." {
		t.Errorf("message = %q", reg["message"])
	}
	if got := resp.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("register-client Cache-Control = %q, want no-store", got)
	}

	// The script gets tokens through the standard grant, authenticating
	// both ways RFC 6749 §2.3.1 allows.
	var ccToken string
	for _, style := range []struct {
		name  string
		style oauth2.AuthStyle
	}{
		{"client_secret_basic", oauth2.AuthStyleInHeader},
		{"client_secret_post", oauth2.AuthStyleInParams},
	} {
		t.Run(style.name, func(t *testing.T) {
			cfg := clientcredentials.Config{
				ClientID:     clientID,
				ClientSecret: secret,
				TokenURL:     s.url + "/oauth2/token",
				Scopes:       []string{"forge:write"},
				AuthStyle:    style.style,
			}
			tok, err := cfg.Token(t.Context())
			if err != nil {
				t.Fatalf("client credentials: %v", err)
			}
			v := verifyOffline(t, s, tok.AccessToken)
			if v.typ != "at+jwt" {
				t.Errorf("typ = %q, want at+jwt", v.typ)
			}
			if v.kid == "" {
				t.Error("token header has no kid")
			}
			want := map[string]any{"client_id": clientID, "user_id": userID, "scope": "forge:write"}
			for k, w := range want {
				if v.extra[k] != w {
					t.Errorf("claim %s = %v, want %v", k, v.extra[k], w)
				}
			}
			if v.claims.Subject != clientID {
				t.Errorf("sub = %q, want the client id", v.claims.Subject)
			}
			if v.claims.ID == "" || v.claims.IssuedAt == nil || v.claims.Expiry == nil {
				t.Errorf("jti, iat and exp must be set: %+v", v.claims)
			}
			ccToken = tok.AccessToken
		})
	}

	// Introspection before and after revocation.
	if got := s.introspect(ccToken, clientID, secret); got["active"] != true || got["sub"] != clientID {
		t.Errorf("introspection before revocation = %v, want active with sub %s", got, clientID)
	}
	if r := s.postForm("/oauth2/revoke", url.Values{"token": {ccToken}}, clientID, secret); r.status != http.StatusOK {
		t.Fatalf("revoke: status %d, body %s", r.status, r.body)
	}
	got := s.introspect(ccToken, clientID, secret)
	if diff := cmp.Diff(map[string]any{"active": false}, got); diff != "" {
		t.Errorf("introspection after revocation (-want +got):\n%s", diff)
	}

	// The legacy login with client credentials runs the same grant; the
	// reply names the owner.
	machine := s.login(map[string]string{"client_id": clientID, "client_secret": secret})
	if machine["user_id"] != userID {
		t.Errorf("client login user_id = %v, want the owner %s", machine["user_id"], userID)
	}
	mt := verifyOffline(t, s, machine["token"].(string))
	if mt.claims.Subject != clientID {
		t.Errorf("client login token sub = %q, want %s", mt.claims.Subject, clientID)
	}
	all := s.login(map[string]string{"username": "alice", "password": "correct horse battery staple", "client_id": clientID, "client_secret": secret})
	if all["user_id"] != userID {
		t.Errorf("four-field login user_id = %v, want %s", all["user_id"], userID)
	}

	// A restart keeps users, clients and keys.
	s.stop()
	s2 := in.serveAt(strings.TrimPrefix(s.url, "http://"))
	if v := verifyOffline(t, s2, userToken); v.kid != ut.kid {
		t.Errorf("after restart the token's kid %s is served as %s", ut.kid, v.kid)
	}
	if got := s2.introspect(machine["token"].(string), clientID, secret); got["active"] != true {
		t.Errorf("token issued before restart introspects as %v", got)
	}
	again := s2.login(map[string]string{"username": "alice", "password": "correct horse battery staple"})
	if v := verifyOffline(t, s2, again["token"].(string)); v.kid != ut.kid {
		t.Errorf("after restart tokens are signed by %s, before by %s", v.kid, ut.kid)
	}
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: s2.url + "/oauth2/token"}
	if _, err := cfg.Token(t.Context()); err != nil {
		t.Errorf("client credentials after restart: %v", err)
	}
}

// setupAlice creates alice and bob, starts a server, and returns it with
// a user token and a client of alice's.
func setupAlice(t *testing.T, in *instance, serveArgs ...string) (s *server, userToken, clientID, secret string) {
	t.Helper()
	in.createUser("alice", "alice password 1", aliceScopes)
	in.createUser("bob", "bob password 1", "strategy:read")
	s = in.serve(serveArgs...)
	userToken = s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	clientID, secret = s.registerClient(userToken, "backtest-runner")
	return s, userToken, clientID, secret
}

func TestLoginStatusCodes(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s, _, clientID, secret := setupAlice(t, in)
	bobToken := s.login(map[string]string{"username": "bob", "password": "bob password 1"})["token"].(string)
	bobClient, bobSecret := s.registerClient(bobToken, "bob-script")

	tests := []struct {
		name       string
		body       any
		wantStatus int
	}{
		{"wrong password", map[string]string{"username": "alice", "password": "nope"}, http.StatusUnauthorized},
		{"unknown user", map[string]string{"username": "mallory", "password": "nope"}, http.StatusUnauthorized},
		{"username in other case", map[string]string{"username": "ALICE", "password": "alice password 1"}, http.StatusOK},
		{"bad client secret", map[string]string{"client_id": clientID, "client_secret": "secret_00"}, http.StatusUnauthorized},
		{"client id without secret", map[string]string{"client_id": clientID}, http.StatusUnauthorized},
		{"unknown client", map[string]string{"client_id": "client_0000", "client_secret": secret}, http.StatusUnauthorized},
		{"internal client id", map[string]string{"client_id": "quanux-legacy-login", "client_secret": "x"}, http.StatusUnauthorized},
		{"all four with wrong password", map[string]string{"username": "alice", "password": "nope", "client_id": clientID, "client_secret": secret}, http.StatusUnauthorized},
		{"all four, client of another user", map[string]string{"username": "alice", "password": "alice password 1", "client_id": bobClient, "client_secret": bobSecret}, http.StatusUnauthorized},
		{"malformed JSON", `{"username": "alice",`, http.StatusBadRequest},
		{"empty object", `{}`, http.StatusBadRequest},
		{"username without password", map[string]string{"username": "alice"}, http.StatusBadRequest},
		{"number for username", `{"username": 7, "password": "x"}`, http.StatusBadRequest},
		{"JSON array", `[]`, http.StatusBadRequest},
		{"trailing data", `{"username":"alice","password":"alice password 1"} {}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.postJSON("/api/auth/login", "", tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			m := resp.json(t)
			if tt.wantStatus == http.StatusOK {
				return
			}
			if m["error"] == "" || m["message"] == "" || len(m) != 2 {
				t.Errorf("error body = %v, want exactly error and message", m)
			}
		})
	}

	t.Run("wrong media type", func(t *testing.T) {
		resp := s.do(http.MethodPost, "/api/auth/login", "application/x-www-form-urlencoded", "", strings.NewReader("username=alice&password=x"))
		if resp.status != http.StatusUnsupportedMediaType {
			t.Errorf("status = %d, want 415", resp.status)
		}
	})
}

func TestRegisterClientStatusCodes(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s, userToken, clientID, secret := setupAlice(t, in)
	machineToken := s.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string)

	revoked := s.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string)
	if r := s.postForm("/oauth2/revoke", url.Values{"token": {revoked}}, clientID, secret); r.status != http.StatusOK {
		t.Fatalf("revoke: status %d", r.status)
	}
	tampered := userToken[:len(userToken)-4] + "AAAA"

	tests := []struct {
		name          string
		authorization string
		body          string
		wantStatus    int
		wantChallenge string
	}{
		{"no token", "", `{"client_name":"x"}`, http.StatusUnauthorized, `Bearer realm="quanux"`},
		{"basic scheme", "Basic YTpi", `{"client_name":"x"}`, http.StatusUnauthorized, `error="invalid_request"`},
		{"garbage token", "Bearer not-a-token", `{"client_name":"x"}`, http.StatusUnauthorized, `error="invalid_token"`},
		{"tampered signature", "Bearer " + tampered, `{"client_name":"x"}`, http.StatusUnauthorized, `error="invalid_token"`},
		{"revoked token", "Bearer " + revoked, `{"client_name":"x"}`, http.StatusUnauthorized, `error="invalid_token"`},
		{"client credentials token", "Bearer " + machineToken, `{"client_name":"x"}`, http.StatusForbidden, `error="insufficient_scope"`},
		{"scope beyond the owner's", "Bearer " + userToken, `{"client_name":"x","scopes":["admin"]}`, http.StatusForbidden, ""},
		{"narrower scopes", "Bearer " + userToken, `{"client_name":"reader","scopes":["strategy:read"]}`, http.StatusOK, ""},
		{"malformed JSON", "Bearer " + userToken, `{"client_name":`, http.StatusBadRequest, ""},
		{"missing client_name", "Bearer " + userToken, `{"email":"ops@example.com"}`, http.StatusBadRequest, ""},
		{"bad email", "Bearer " + userToken, `{"client_name":"x","email":"not an email"}`, http.StatusBadRequest, ""},
		{"control character in name", "Bearer " + userToken, `{"client_name":"bad\u0007name"}`, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.do(http.MethodPost, "/api/auth/register-client", "application/json", tt.authorization, strings.NewReader(tt.body))
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			if challenge := resp.header.Get("WWW-Authenticate"); !strings.Contains(challenge, tt.wantChallenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", challenge, tt.wantChallenge)
			}
			m := resp.json(t)
			if tt.wantStatus != http.StatusOK && (m["error"] == nil || m["message"] == nil) {
				t.Errorf("error body = %v, want error and message", m)
			}
		})
	}
}

func TestExpiredTokenRejected(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve("--access-token-ttl", "1s")
	token := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)

	// exp has one-second resolution, fosite rounds it to the nearest
	// second, and the server tolerates oauth.ClaimsLeeway of clock skew,
	// so wait past all three.
	time.Sleep(time.Second + oauth.ClaimsLeeway + 2*time.Second)
	resp := s.postJSON("/api/auth/register-client", token, map[string]string{"client_name": "late"})
	if resp.status != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401; body %s", resp.status, resp.body)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s, _, clientID, secret := setupAlice(t, in)

	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		wantStatus int
		wantError  string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}}, clientID, "secret_bad", http.StatusUnauthorized, "invalid_client"},
		{"scope beyond the client", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, clientID, secret, http.StatusBadRequest, "invalid_scope"},
		{"grant not allowed", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice password 1"}}, clientID, secret, http.StatusBadRequest, "unauthorized_client"},
		{"internal client", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice password 1"}, "client_id": {"quanux-legacy-login"}}, "", "", http.StatusUnauthorized, "invalid_client"},
		{"unknown grant", url.Values{"grant_type": {"urn:example:nope"}}, clientID, secret, http.StatusBadRequest, "invalid_request"},
		{"missing grant", url.Values{"scope": {"forge:write"}}, clientID, secret, http.StatusBadRequest, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.postForm("/oauth2/token", tt.form, tt.user, tt.pass)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			if got := resp.json(t)["error"]; got != tt.wantError {
				t.Errorf("error = %v, want %s", got, tt.wantError)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve()
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		t.Run(path, func(t *testing.T) {
			resp := s.do(http.MethodGet, path, "", "", nil)
			if resp.status != http.StatusOK {
				t.Fatalf("status = %d", resp.status)
			}
			m := resp.json(t)
			want := map[string]string{
				"issuer":                 s.url,
				"token_endpoint":         s.url + "/oauth2/token",
				"introspection_endpoint": s.url + "/oauth2/introspect",
				"revocation_endpoint":    s.url + "/oauth2/revoke",
				"jwks_uri":               s.url + "/.well-known/jwks.json",
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %s", k, m[k], v)
				}
			}
		})
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s := in.serve()
	for _, path := range []string{"/health/alive", "/health/ready"} {
		if resp := s.do(http.MethodGet, path, "", "", nil); resp.status != http.StatusOK {
			t.Errorf("%s: status %d", path, resp.status)
		}
	}
}

func TestKeyRotationReachesRunningServer(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve("--keys-reload-interval", "200ms")
	before := verifyOffline(t, s, s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string))

	out := in.cli("", "keys", "rotate")
	if !strings.Contains(out, "active key:") {
		t.Fatalf("keys rotate printed %q", out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		after := verifyOffline(t, s, s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string))
		if after.kid != before.kid {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the server still signs with %s 10s after rotation", before.kid)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The retired key is still published, so its tokens still verify.
	_ = verifyOffline(t, s, s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string))
	resp := s.do(http.MethodGet, "/.well-known/jwks.json", "", "", nil)
	if !strings.Contains(string(resp.body), before.kid) {
		t.Errorf("the retired key %s is no longer published", before.kid)
	}
}

func TestPasswordAndRefreshGrants(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	userID := in.createUser("alice", "alice password 1", aliceScopes)
	out := in.cli("", "clients", "create", "--name", "desktop", "--owner", "alice", "--grant-types", "password refresh_token", "--json")
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("clients create --json printed %q: %v", out, err)
	}
	s := in.serve()
	cfg := oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: s.url + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:       []string{"strategy:read", "forge:write"},
	}

	tok, err := cfg.PasswordCredentialsToken(t.Context(), "alice", "alice password 1")
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("password grant returned no refresh token to a client allowed refresh_token")
	}
	first := verifyOffline(t, s, tok.AccessToken)
	if first.claims.Subject != userID || first.extra["scope"] != "strategy:read forge:write" {
		t.Errorf("password token sub %q scope %v", first.claims.Subject, first.extra["scope"])
	}

	// Refresh, narrowing the scopes (RFC 6749 §6).
	resp := s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"forge:write"}}, c.ClientID, c.ClientSecret)
	if resp.status != http.StatusOK {
		t.Fatalf("refresh: status %d, body %s", resp.status, resp.body)
	}
	refreshed := resp.json(t)
	second := verifyOffline(t, s, refreshed["access_token"].(string))
	if second.extra["scope"] != "forge:write" || second.claims.Subject != userID || second.extra["user_id"] != userID {
		t.Errorf("refreshed token scope %v sub %q user_id %v", second.extra["scope"], second.claims.Subject, second.extra["user_id"])
	}
	if second.claims.ID == first.claims.ID {
		t.Error("the refreshed token reuses the jti of the first")
	}
	newRefresh, _ := refreshed["refresh_token"].(string)
	if newRefresh == "" || newRefresh == tok.RefreshToken {
		t.Fatal("refresh did not rotate the refresh token")
	}

	// A refresh cannot widen the scopes.
	resp = s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {newRefresh}, "scope": {"strategy:write"}}, c.ClientID, c.ClientSecret)
	if resp.status != http.StatusBadRequest || resp.json(t)["error"] != "invalid_scope" {
		t.Errorf("widening refresh: status %d body %s, want 400 invalid_scope", resp.status, resp.body)
	}

	// Reusing the first refresh token revokes the whole family.
	resp = s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, c.ClientID, c.ClientSecret)
	if resp.status != http.StatusBadRequest || resp.json(t)["error"] != "invalid_grant" {
		t.Errorf("reused refresh token: status %d body %s, want 400 invalid_grant", resp.status, resp.body)
	}
	resp = s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {newRefresh}}, c.ClientID, c.ClientSecret)
	if resp.status == http.StatusOK {
		t.Error("the rotated refresh token still works after its family was revoked for reuse")
	}
	if got := s.introspect(refreshed["access_token"].(string), c.ClientID, c.ClientSecret); got["active"] != false {
		t.Errorf("access token of a revoked family introspects as %v", got)
	}
}

func TestAutomaticKeyRotation(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve("--keys-reload-interval", "200ms", "--keys-rotate-interval", "1s")
	login := func() string {
		return s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	}
	first := verifyOffline(t, s, login()).kid

	deadline := time.Now().Add(10 * time.Second)
	for verifyOffline(t, s, login()).kid == first {
		if time.Now().After(deadline) {
			t.Fatalf("the server still signs with %s 10s into a 1s rotation interval", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	keys := listKeys(t, in)
	active := 0
	for _, k := range keys {
		if k.State == "active" {
			active++
		}
	}
	if active != 1 {
		t.Errorf("after automatic rotation there are %d active keys: %+v", active, keys)
	}
}

func TestServeRaisesMaxProcsOnOneCore(t *testing.T) {
	t.Parallel()
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset (util-linux) is not installed; it pins the server to one core")
	}

	in := newInstance(t)
	in.wrap = []string{taskset, "-c", "0"}
	s := in.serve()
	if logs := s.logs.String(); !strings.Contains(logs, "GOMAXPROCS raised") || !strings.Contains(logs, "from=1 to=2") {
		t.Errorf("a server pinned to one core did not raise GOMAXPROCS to 2; logs:\n%s", logs)
	}

	explicit := newInstance(t)
	explicit.wrap = in.wrap
	explicit.env = []string{"GOMAXPROCS=1"}
	if logs := explicit.serve().logs.String(); strings.Contains(logs, "GOMAXPROCS raised") {
		t.Errorf("GOMAXPROCS set by the operator was changed; logs:\n%s", logs)
	}
}

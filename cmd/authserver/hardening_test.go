package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// lockoutFailures is the --max-failures of lockoutFlags.
const lockoutFailures = 3

// lockoutFlags lock a username or client id after three failures for 30s,
// and set the per-address limit high enough that it never decides a
// result.
var lockoutFlags = []string{"--max-failures", "3", "--lockout", "30s", "--address-rate", "1000", "--address-burst", "1000"}

// noAddressLimit keeps the per-address limit out of tests that make many
// credential attempts from 127.0.0.1.
var noAddressLimit = []string{"--address-rate", "1000", "--address-burst", "1000"}

// face is the API a credential attempt is sent to.
type face string

const (
	legacyFace face = "legacy login"
	tokenFace  face = "token endpoint"
)

// cliClient is the output of `clients create --json`.
type cliClient struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// createClientWithCLI creates a confidential client owned by owner with
// `clients create`. The args add flags such as --grant-types or --scopes.
func (in *instance) createClientWithCLI(owner string, args ...string) cliClient {
	in.t.Helper()
	out := in.cli("", append([]string{"clients", "create", "--name", "test-client", "--owner", owner, "--json"}, args...)...)
	var c cliClient
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		in.t.Fatalf("clients create --json printed %q: %v", out, err)
	}
	return c
}

// passwordLogin sends a username and password to the legacy login, or as
// a password grant from client to the token endpoint.
func passwordLogin(s *server, at face, client cliClient, username, password string) response {
	s.t.Helper()
	if at == legacyFace {
		return s.postJSON("/api/auth/login", "", map[string]string{"username": username, "password": password})
	}
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	return s.postForm("/oauth2/token", form, client.ClientID, client.ClientSecret)
}

// clientLogin sends client credentials to the legacy login, or as a
// client-credentials grant to the token endpoint.
func clientLogin(s *server, at face, clientID, secret string) response {
	s.t.Helper()
	if at == legacyFace {
		return s.postJSON("/api/auth/login", "", map[string]string{"client_id": clientID, "client_secret": secret})
	}
	return s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, clientID, secret)
}

// checkFailedLogin checks the response to a wrong password: 401 on the
// legacy login, 400 invalid_grant at the token endpoint (RFC 6749 §5.2).
func checkFailedLogin(t *testing.T, at face, attempt int, resp response) {
	t.Helper()
	if at == legacyFace {
		if resp.status != http.StatusUnauthorized {
			t.Errorf("%s, failed attempt %d: status = %d, want 401; body %s", at, attempt, resp.status, resp.body)
		}
		return
	}
	if resp.status != http.StatusBadRequest {
		t.Errorf("%s, failed attempt %d: status = %d, want 400; body %s", at, attempt, resp.status, resp.body)
	}
	if got := errorField(resp); got != "invalid_grant" {
		t.Errorf("%s, failed attempt %d: error = %q, want invalid_grant", at, attempt, got)
	}
}

// checkThrottled checks a locked or rate-limited response: 429 with
// Retry-After in whole seconds, and the error body of the face.
func checkThrottled(t *testing.T, at face, resp response) {
	t.Helper()
	if resp.status != http.StatusTooManyRequests {
		// The other checks describe a 429 response and would only repeat this.
		t.Errorf("%s: status = %d, want 429; body %.300s", at, resp.status, resp.body)
		return
	}
	retryAfter := resp.header.Get("Retry-After")
	if seconds, err := strconv.Atoi(retryAfter); err != nil || seconds < 1 {
		t.Errorf("%s: Retry-After = %q, want an integer number of seconds of at least 1", at, retryAfter)
	}
	if at == legacyFace {
		checkLegacyError(t, resp)
		return
	}
	if errorField(resp) == "" {
		t.Errorf("%s: body %s has no RFC 6749 error field", at, resp.body)
	}
}

// checkLegacyError checks that resp's body is exactly the legacy error
// object {"error": …, "message": …} with both fields non-empty.
func checkLegacyError(t *testing.T, resp response) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resp.body, &m); err != nil {
		t.Errorf("body %q is not a JSON object: %v", resp.body, err)
		return
	}
	if diff := cmp.Diff([]string{"error", "message"}, sortedKeys(m)); diff != "" {
		t.Errorf("error body fields (-want +got):\n%s", diff)
	}
	for _, k := range []string{"error", "message"} {
		if v, _ := m[k].(string); v == "" {
			t.Errorf("error body %s: %q is %v, want a non-empty string", resp.body, k, m[k])
		}
	}
}

// errorField returns the "error" string of a JSON error body, or "" when
// the body is not a JSON object or has none.
func errorField(resp response) string {
	var m map[string]any
	if err := json.Unmarshal(resp.body, &m); err != nil {
		return ""
	}
	s, _ := m["error"].(string)
	return s
}

// postJSONStatus posts body to target and returns the status. It reports
// errors instead of failing the test, so goroutines other than the test's
// may call it.
func postJSONStatus(ctx context.Context, target string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

func TestLoginLockout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		username string // the account, whose password is username + " password"
		failAs   string // the username the failed attempts send
		failAt   face
		probeAt  face
	}{
		{"legacy failures lock legacy login", "carol", "carol", legacyFace, legacyFace},
		{"legacy failures lock password grant", "dave", "dave", legacyFace, tokenFace},
		{"password grant failures lock legacy login", "erin", "erin", tokenFace, legacyFace},
		{"password grant failures lock password grant", "frank", "frank", tokenFace, tokenFace},
		{"upper-case username shares the lock", "grace", "GRACE", tokenFace, legacyFace},
		// Full-width letters (U+FF41 to U+FF5A) fold to ASCII under the
		// width mapping of the RFC 8265 UsernameCaseMapped profile.
		{"full-width username shares the lock", "heidi", "ｈｅｉｄｉ", legacyFace, tokenFace},
	}
	in := newInstance(t)
	clients := map[string]cliClient{}
	for _, tt := range tests {
		in.createUser(tt.username, tt.username+" password", aliceScopes)
		// Failed password grants also count against the client that sends
		// them, so each case gets a client of its own.
		clients[tt.username] = in.createClientWithCLI(tt.username, "--grant-types", "password refresh_token")
	}
	s := in.serve(lockoutFlags...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := clients[tt.username]
			for attempt := 1; attempt <= lockoutFailures; attempt++ {
				resp := passwordLogin(s, tt.failAt, client, tt.failAs, "wrong password")
				checkFailedLogin(t, tt.failAt, attempt, resp)
			}

			// The right password does not get through a lock.
			resp := passwordLogin(s, tt.probeAt, client, tt.username, tt.username+" password")
			checkThrottled(t, tt.probeAt, resp)
		})
	}
}

func TestConcurrentFailedLogins(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve(lockoutFlags...)

	// The attempts are released together, so most start before the first
	// argon2id check ends. Only counting attempts in flight holds them to
	// the limit.
	const attempts = lockoutFailures + 10
	body := []byte(`{"username":"alice","password":"wrong password"}`)
	statuses := make([]int, attempts)
	errs := make([]error, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			<-start
			statuses[i], errs[i] = postJSONStatus(t.Context(), s.url+"/api/auth/login", body)
		})
	}
	close(start)
	wg.Wait()

	counts := map[int]int{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("attempt %d: %v", i, err)
			continue
		}
		counts[statuses[i]]++
	}
	if counts[http.StatusUnauthorized] > lockoutFailures {
		t.Errorf("%d of %d concurrent wrong passwords were checked (401), want at most %d", counts[http.StatusUnauthorized], attempts, lockoutFailures)
	}
	if counts[http.StatusUnauthorized] == 0 {
		t.Errorf("no concurrent attempt was checked (401); statuses %v", counts)
	}
	if got := counts[http.StatusUnauthorized] + counts[http.StatusTooManyRequests]; got != attempts {
		t.Errorf("statuses %v, want only 401 and 429", counts)
	}
}

func TestClientLockout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		failAt face
	}{
		{"failures at the token endpoint", tokenFace},
		{"failures at the legacy login", legacyFace},
	}
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	clients := make([]cliClient, len(tests))
	for i := range tests {
		clients[i] = in.createClientWithCLI("alice")
	}
	s := in.serve(lockoutFlags...)

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := clients[i]
			for attempt := 1; attempt <= lockoutFailures; attempt++ {
				resp := clientLogin(s, tt.failAt, client.ClientID, "secret_wrong")
				if resp.status != http.StatusUnauthorized {
					t.Errorf("%s, failed attempt %d: status = %d, want 401; body %s", tt.failAt, attempt, resp.status, resp.body)
				}
			}

			// The lock holds on both faces, also for the right secret.
			for _, probe := range []face{tokenFace, legacyFace} {
				checkThrottled(t, probe, clientLogin(s, probe, client.ClientID, client.ClientSecret))
			}
		})
	}
}

func TestAddressRateLimit(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve("--address-rate", "1", "--address-burst", "3")

	// Three attempts spend the burst. Each names another username, so no
	// per-username lock is involved. They take well under the second that
	// the rate needs to refill one attempt.
	for i, username := range []string{"mallory", "trudy", "oscar"} {
		resp := s.postJSON("/api/auth/login", "", map[string]string{"username": username, "password": "wrong password"})
		if resp.status != http.StatusUnauthorized {
			t.Errorf("attempt %d as %s: status = %d, want 401; body %s", i+1, username, resp.status, resp.body)
		}
	}

	resp := s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": "alice password 1"})
	checkThrottled(t, legacyFace, resp)
}

func TestSuccessResetsFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		at       face
		username string
	}{
		{"legacy login", legacyFace, "alice"},
		{"password grant", tokenFace, "bob"},
	}
	in := newInstance(t)
	clients := map[string]cliClient{}
	for _, tt := range tests {
		in.createUser(tt.username, tt.username+" password", aliceScopes)
		clients[tt.username] = in.createClientWithCLI(tt.username, "--grant-types", "password refresh_token")
	}
	s := in.serve(lockoutFlags...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := clients[tt.username]
			for round := 1; round <= 2; round++ {
				for attempt := 1; attempt < lockoutFailures; attempt++ {
					checkFailedLogin(t, tt.at, attempt, passwordLogin(s, tt.at, client, tt.username, "wrong password"))
				}
				resp := passwordLogin(s, tt.at, client, tt.username, tt.username+" password")
				if resp.status != http.StatusOK {
					t.Errorf("round %d: login after %d failures: status = %d, want 200; body %s", round, lockoutFailures-1, resp.status, resp.body)
				}
			}
		})
	}
}

func TestUsernameNormalisation(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	aliceID := in.createUser("alice", "alice password 1", aliceScopes)

	_, stderr, err := in.tryCLI("other password\n", "users", "create", "--username", "Alice", "--password-stdin")
	if err == nil {
		t.Error("users create --username Alice succeeded after alice, want an error")
	}
	if !strings.Contains(stderr, "already exists") {
		t.Errorf("users create --username Alice: stderr = %q, want it to contain %q", stderr, "already exists")
	}

	s := in.serve(noAddressLimit...)
	resp := s.postJSON("/api/auth/login", "", map[string]string{"username": "Alice", "password": "other password"})
	if resp.status != http.StatusUnauthorized {
		t.Errorf("login as Alice with the rejected password: status = %d, want 401; body %s", resp.status, resp.body)
	}

	for _, username := range []string{"ALICE", "ａｌｉｃｅ"} {
		t.Run(username, func(t *testing.T) {
			resp := s.postJSON("/api/auth/login", "", map[string]string{"username": username, "password": "alice password 1"})
			if resp.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", resp.status, resp.body)
			}
			if got := resp.json(t)["user_id"]; got != aliceID {
				t.Errorf("user_id = %v, want alice's %s", got, aliceID)
			}
		})
	}
}

func TestPasswordLength(t *testing.T) {
	t.Parallel()
	password := strings.Repeat("0123456789abcdef", 64)
	if len(password) != 1024 {
		t.Fatalf("test password is %d bytes, want 1024", len(password))
	}
	in := newInstance(t)
	in.createUser("alice", password, aliceScopes)
	_, _, err := in.tryCLI(password+"x\n", "users", "create", "--username", "bob", "--password-stdin")
	if err == nil {
		t.Error("users create with a 1025-byte password succeeded, want an error")
	}
	s := in.serve(noAddressLimit...)

	tests := []struct {
		name       string
		password   string
		wantStatus int
	}{
		{"1024 bytes", password, http.StatusOK},
		// A hash that read only a prefix would accept this one.
		{"first 1023 bytes", password[:1023], http.StatusUnauthorized},
		{"1025 bytes", password + "x", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": tt.password})
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantStatus != http.StatusOK {
				checkLegacyError(t, resp)
			}
		})
	}
}

// basicHeader returns an HTTP Basic Authorization value for id and secret
// exactly as given, without the form-encoding RFC 6749 §2.3.1 adds.
func basicHeader(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func TestRequestParsing(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	client := in.createClientWithCLI("alice")
	s := in.serve(noAddressLimit...)

	const (
		jsonType = "application/json"
		formType = "application/x-www-form-urlencoded"
	)
	basic := basicHeader(url.QueryEscape(client.ClientID), url.QueryEscape(client.ClientSecret))
	// Client ids and secrets contain "_", which form-encodes as "%5F".
	escapedOnce := basicHeader(strings.ReplaceAll(client.ClientID, "_", "%5F"), strings.ReplaceAll(client.ClientSecret, "_", "%5F"))
	escapedTwice := basicHeader(client.ClientID, strings.ReplaceAll(client.ClientSecret, "_", "%255F"))

	tests := []struct {
		name          string
		method        string
		path          string
		contentType   string
		authorization string
		body          string
		wantStatus    int
		// wantError is the exact "error" field. An empty wantError accepts
		// any non-empty one.
		wantError string
		// legacyBody requires the legacy {"error", "message"} body, which
		// routing errors use too.
		legacyBody bool
		// wantHeader must contain wantHeaderValue.
		wantHeader, wantHeaderValue string
	}{
		{
			name: "legacy body over 64 KiB", method: http.MethodPost, path: "/api/auth/login", contentType: jsonType,
			body:       `{"username":"` + strings.Repeat("a", 65<<10) + `","password":"x"}`,
			wantStatus: http.StatusRequestEntityTooLarge, legacyBody: true,
		},
		{
			name: "token body over 16 KiB", method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: basic,
			body:       "grant_type=client_credentials&scope=" + strings.Repeat("a", 17<<10),
			wantStatus: http.StatusRequestEntityTooLarge,
		},
		{
			name: "legacy text/plain", method: http.MethodPost, path: "/api/auth/login", contentType: "text/plain",
			body:       `{"username":"alice","password":"alice password 1"}`,
			wantStatus: http.StatusUnsupportedMediaType, legacyBody: true,
		},
		{
			name: "legacy form body", method: http.MethodPost, path: "/api/auth/login", contentType: formType,
			body:       "username=alice&password=alice+password+1",
			wantStatus: http.StatusUnsupportedMediaType, legacyBody: true,
		},
		{
			name: "malformed JSON", method: http.MethodPost, path: "/api/auth/login", contentType: jsonType,
			body:       `{"username":"alice","password":`,
			wantStatus: http.StatusBadRequest, legacyBody: true,
		},
		{
			name: "duplicate key", method: http.MethodPost, path: "/api/auth/login", contentType: jsonType,
			body:       `{"username":"a","username":"b","password":"x"}`,
			wantStatus: http.StatusBadRequest, legacyBody: true,
		},
		{
			name: "invalid UTF-8", method: http.MethodPost, path: "/api/auth/login", contentType: jsonType,
			body:       "{\"username\":\"al\xff\xfeice\",\"password\":\"x\"}",
			wantStatus: http.StatusBadRequest, legacyBody: true,
		},
		{
			name: "NUL in a string", method: http.MethodPost, path: "/api/auth/login", contentType: jsonType,
			body:       `{"username":"alice\u0000","password":"alice password 1"}`,
			wantStatus: http.StatusBadRequest, legacyBody: true,
		},
		{
			name: "username of 300 bytes", method: http.MethodPost, path: "/api/auth/login", contentType: jsonType,
			body:       `{"username":"` + strings.Repeat("a", 300) + `","password":"x"}`,
			wantStatus: http.StatusBadRequest, legacyBody: true,
		},
		{
			name: "repeated token parameter", method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: basic,
			body:       "grant_type=client_credentials&grant_type=client_credentials",
			wantStatus: http.StatusBadRequest, wantError: "invalid_request",
		},
		{
			name: "token parameter in the query", method: http.MethodPost, contentType: formType,
			path:       "/oauth2/token?client_secret=" + url.QueryEscape(client.ClientSecret),
			body:       "grant_type=client_credentials&client_id=" + url.QueryEscape(client.ClientID),
			wantStatus: http.StatusBadRequest, wantError: "invalid_request",
		},
		{
			name: "Basic header and client_secret", method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: basic,
			body:       "grant_type=client_credentials&client_secret=" + url.QueryEscape(client.ClientSecret),
			wantStatus: http.StatusBadRequest, wantError: "invalid_request",
		},
		{
			name: "Basic credentials escaped once", method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: escapedOnce,
			body:       "grant_type=client_credentials",
			wantStatus: http.StatusOK,
		},
		{
			name: "Basic secret escaped twice", method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: escapedTwice,
			body:       "grant_type=client_credentials",
			wantStatus: http.StatusUnauthorized, wantError: "invalid_client",
		},
		{
			name: "Basic header not base64", method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: "Basic !!not-base64!!",
			body:       "grant_type=client_credentials",
			wantStatus: http.StatusUnauthorized, wantError: "invalid_client",
			wantHeader: "WWW-Authenticate", wantHeaderValue: "Basic",
		},
		{
			name: "unknown path", method: http.MethodGet, path: "/api/auth/nothing-here",
			wantStatus: http.StatusNotFound, legacyBody: true,
		},
		{
			name: "GET on the legacy login", method: http.MethodGet, path: "/api/auth/login",
			wantStatus: http.StatusMethodNotAllowed, legacyBody: true,
			wantHeader: "Allow", wantHeaderValue: http.MethodPost,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.do(tt.method, tt.path, tt.contentType, tt.authorization, strings.NewReader(tt.body))
			if resp.status >= 500 {
				t.Errorf("status = %d, a server error; body %s", resp.status, resp.body)
			}
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantHeader != "" {
				if got := resp.header.Get(tt.wantHeader); !strings.Contains(got, tt.wantHeaderValue) {
					t.Errorf("%s = %q, want it to contain %q", tt.wantHeader, got, tt.wantHeaderValue)
				}
			}
			if tt.wantStatus == http.StatusOK {
				if token, _ := resp.json(t)["access_token"].(string); token == "" {
					t.Errorf("body %s has no access_token", resp.body)
				}
				return
			}
			if tt.legacyBody {
				checkLegacyError(t, resp)
				return
			}
			got := errorField(resp)
			if got == "" {
				t.Errorf("body %s has no JSON error field", resp.body)
			}
			if tt.wantError != "" && got != tt.wantError {
				t.Errorf("error = %q, want %q", got, tt.wantError)
			}
		})
	}
}

// rsaPublicKey returns the RSA public key the JWKS publishes under kid.
func rsaPublicKey(t *testing.T, s *server, kid string) *rsa.PublicKey {
	t.Helper()
	resp := s.do(http.MethodGet, "/.well-known/jwks.json", "", "", nil)
	if resp.status != http.StatusOK {
		t.Fatalf("jwks: status %d", resp.status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.body, &set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q matches %d keys in the JWKS, want 1", kid, len(keys))
	}
	pub, ok := keys[0].Key.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("key %q is a %T, want an RSA public key", kid, keys[0].Key)
	}
	return pub
}

// encodeSegment returns v as a base64url JWS segment (RFC 7515 §2).
func encodeSegment(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signHS256 returns signingInput and its HS256 signature under key,
// joined into a compact JWS.
func signHS256(signingInput string, key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestForgedBearerTokens(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	desktop := in.createClientWithCLI("alice", "--grant-types", "password refresh_token")
	s := in.serve(noAddressLimit...)

	userToken := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	parts := strings.Split(userToken, ".")
	if len(parts) != 3 {
		t.Fatalf("the user token has %d segments, want 3", len(parts))
	}
	kid := verifyOffline(t, s, userToken).kid

	// alg none with the real payload (RFC 7518 §3.6).
	unsigned := encodeSegment(t, map[string]string{"alg": "none", "kid": kid, "typ": "at+jwt"}) + "." + parts[1] + "."

	// HS256 keyed with the server's public RSA key, as PEM and as DER. A
	// verifier that takes alg from the token would accept these.
	der, err := x509.MarshalPKIXPublicKey(rsaPublicKey(t, s, kid))
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsHeader := encodeSegment(t, map[string]string{"alg": "HS256", "kid": kid, "typ": "at+jwt"})
	hmacWithPEM := signHS256(hsHeader+"."+parts[1], pemKey)
	hmacWithDER := signHS256(hsHeader+"."+parts[1], der)

	// The real header and signature over a payload with a wider scope.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["scope"] = "strategy:read strategy:write forge:write admin"
	altered := parts[0] + "." + encodeSegment(t, claims) + "." + parts[2]

	// A user token from the password grant, accepted once and then revoked
	// by its client.
	resp := s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice password 1"}}, desktop.ClientID, desktop.ClientSecret)
	if resp.status != http.StatusOK {
		t.Fatalf("password grant: status %d, body %s", resp.status, resp.body)
	}
	revoked, _ := resp.json(t)["access_token"].(string)
	s.registerClient(revoked, "before-revocation")
	if r := s.postForm("/oauth2/revoke", url.Values{"token": {revoked}}, desktop.ClientID, desktop.ClientSecret); r.status != http.StatusOK {
		t.Fatalf("revoke: status %d, body %s", r.status, r.body)
	}

	tests := []struct {
		name       string
		token      string
		wantStatus int
	}{
		{"genuine token", userToken, http.StatusOK},
		{"alg none", unsigned, http.StatusUnauthorized},
		{"HS256 keyed with the PEM public key", hmacWithPEM, http.StatusUnauthorized},
		{"HS256 keyed with the DER public key", hmacWithDER, http.StatusUnauthorized},
		{"payload with a wider scope", altered, http.StatusUnauthorized},
		{"thousands of dots", strings.Repeat(".", 5000), http.StatusUnauthorized},
		{"bearer value over the token limit", strings.Repeat("a", 9<<10), http.StatusUnauthorized},
		// Go's server rejects a header block over MaxHeaderBytes (16 KiB)
		// before any handler runs.
		{"1 MB bearer value", strings.Repeat("a", 1<<20), http.StatusRequestHeaderFieldsTooLarge},
		{"revoked token", revoked, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.do(http.MethodPost, "/api/auth/register-client", "application/json", "Bearer "+tt.token, strings.NewReader(`{"client_name":"forged"}`))
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %.200s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantStatus != http.StatusUnauthorized {
				return
			}
			if challenge := resp.header.Get("WWW-Authenticate"); !strings.HasPrefix(challenge, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", challenge)
			}
		})
	}
}

// clientToken returns a new client-credentials access token of c.
func clientToken(t *testing.T, s *server, c cliClient) string {
	t.Helper()
	resp := s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, c.ClientID, c.ClientSecret)
	if resp.status != http.StatusOK {
		t.Fatalf("client credentials: status %d, body %s", resp.status, resp.body)
	}
	token, _ := resp.json(t)["access_token"].(string)
	return token
}

// introspectAs returns the decoded introspection response for token as
// seen by client c, failing the test unless the status is 200.
func introspectAs(t *testing.T, s *server, c cliClient, token string) map[string]any {
	t.Helper()
	resp := s.postForm("/oauth2/introspect", url.Values{"token": {token}}, c.ClientID, c.ClientSecret)
	if resp.status != http.StatusOK {
		t.Fatalf("introspect: status %d, body %s", resp.status, resp.body)
	}
	return resp.json(t)
}

func TestGrantRules(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	reader := in.createClientWithCLI("alice", "--scopes", "strategy:read")
	clientA := in.createClientWithCLI("alice")
	clientB := in.createClientWithCLI("alice")
	resourceServer := in.createClientWithCLI("alice", "--introspect")
	s := in.serve(noAddressLimit...)
	inactive := map[string]any{"active": false}

	t.Run("scope beyond the client's", func(t *testing.T) {
		// The owner has forge:write, but the client does not.
		resp := s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"forge:write"}}, reader.ClientID, reader.ClientSecret)
		if resp.status != http.StatusBadRequest {
			t.Errorf("status = %d, want 400; body %s", resp.status, resp.body)
		}
		if got := errorField(resp); got != "invalid_scope" {
			t.Errorf("error = %q, want invalid_scope", got)
		}
	})

	t.Run("password grant of a client_credentials client", func(t *testing.T) {
		resp := passwordLogin(s, tokenFace, clientA, "alice", "alice password 1")
		if resp.status != http.StatusBadRequest {
			t.Errorf("status = %d, want 400; body %s", resp.status, resp.body)
		}
		if got := errorField(resp); got != "unauthorized_client" {
			t.Errorf("error = %q, want unauthorized_client", got)
		}
	})

	t.Run("other client introspects", func(t *testing.T) {
		token := clientToken(t, s, clientA)
		if diff := cmp.Diff(inactive, introspectAs(t, s, clientB, token)); diff != "" {
			t.Errorf("client B introspecting client A's token (-want +got):\n%s", diff)
		}
	})

	t.Run("client with the introspect right", func(t *testing.T) {
		token := clientToken(t, s, clientA)
		got := introspectAs(t, s, resourceServer, token)
		if got["active"] != true {
			t.Errorf("active = %v, want true; response %v", got["active"], got)
		}
		if got["client_id"] != clientA.ClientID {
			t.Errorf("client_id = %v, want %s", got["client_id"], clientA.ClientID)
		}
	})

	t.Run("unknown token introspects as inactive", func(t *testing.T) {
		if diff := cmp.Diff(inactive, introspectAs(t, s, clientA, "unknown-token")); diff != "" {
			t.Errorf("introspection of an unknown token (-want +got):\n%s", diff)
		}
	})

	t.Run("revoking an unknown token", func(t *testing.T) {
		resp := s.postForm("/oauth2/revoke", url.Values{"token": {"unknown-token"}}, clientA.ClientID, clientA.ClientSecret)
		if resp.status != http.StatusOK {
			t.Errorf("status = %d, want 200 (RFC 7009 §2.2); body %s", resp.status, resp.body)
		}
	})

	t.Run("other client revokes", func(t *testing.T) {
		token := clientToken(t, s, clientA)
		resp := s.postForm("/oauth2/revoke", url.Values{"token": {token}}, clientB.ClientID, clientB.ClientSecret)
		if resp.status >= 500 {
			t.Errorf("revoke by client B: status = %d, a server error; body %s", resp.status, resp.body)
		}
		if got := introspectAs(t, s, clientA, token); got["active"] != true {
			t.Errorf("after client B revoked it, client A's token introspects as %v, want active", got)
		}
	})
}

func TestRegisterClientValidation(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve(noAddressLimit...)
	userToken := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)

	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{"scope the owner lacks", `{"client_name":"x","scopes":["admin"]}`, http.StatusForbidden},
		// 100 two-byte characters: the limit counts characters.
		{"name of 100 characters", `{"client_name":"` + strings.Repeat("é", 100) + `"}`, http.StatusOK},
		{"name of 101 characters", `{"client_name":"` + strings.Repeat("a", 101) + `"}`, http.StatusBadRequest},
		{"control character in name", `{"client_name":"bad\u0007name"}`, http.StatusBadRequest},
		{"bidirectional override in name", `{"client_name":"bad\u202ename"}`, http.StatusBadRequest},
		{"invalid email", `{"client_name":"x","email":"bad"}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.postJSON("/api/auth/register-client", userToken, tt.body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantStatus != http.StatusOK {
				checkLegacyError(t, resp)
			}
		})
	}

	t.Run("same name twice", func(t *testing.T) {
		first := cliClient{}
		first.ClientID, first.ClientSecret = s.registerClient(userToken, "backtest-runner")
		second := cliClient{}
		second.ClientID, second.ClientSecret = s.registerClient(userToken, "backtest-runner")
		if first.ClientID == second.ClientID {
			t.Fatalf("both registrations returned client id %s", first.ClientID)
		}
		if first.ClientSecret == second.ClientSecret {
			t.Error("both registrations returned the same client secret")
		}
		// The second registration left the first client as it was.
		if resp := clientLogin(s, tokenFace, first.ClientID, first.ClientSecret); resp.status != http.StatusOK {
			t.Errorf("first client with its own secret: status = %d, want 200; body %s", resp.status, resp.body)
		}
		if resp := clientLogin(s, tokenFace, first.ClientID, second.ClientSecret); resp.status != http.StatusUnauthorized {
			t.Errorf("first client with the second client's secret: status = %d, want 401; body %s", resp.status, resp.body)
		}
	})
}

// readIfExists returns the contents of path, or nil when it does not exist.
func readIfExists(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // a file in the test's temporary directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecretsNotStoredInDatabase(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	const password = "alice password 1"
	in.createUser("alice", password, aliceScopes)
	desktop := in.createClientWithCLI("alice", "--grant-types", "password refresh_token")
	s := in.serve(noAddressLimit...)

	type secret struct{ name, value string }
	secrets := []secret{
		{"the password", password},
		{"the CLI client's secret", desktop.ClientSecret},
		{"the private-key PEM label", "PRIVATE KEY"},
	}
	addAccessToken := func(name, token string) {
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("%s has %d segments, want 3", name, len(parts))
		}
		secrets = append(secrets, secret{name, token}, secret{"the signature of " + name, parts[2]})
	}
	addRefreshToken := func(name, token string) {
		if token == "" {
			t.Fatalf("%s is empty", name)
		}
		// fosite v0.49.0 issues refresh tokens as "ory_rt_<key>.<signature>".
		_, signature, _ := strings.Cut(token, ".")
		secrets = append(secrets, secret{name, token}, secret{"the signature of " + name, signature})
	}

	login := s.login(map[string]string{"username": "alice", "password": password})
	userToken, _ := login["token"].(string)
	addAccessToken("the legacy login token", userToken)

	clientID, clientSecret := s.registerClient(userToken, "backtest-runner")
	secrets = append(secrets, secret{"the registered client's secret", clientSecret})
	addAccessToken("the client-credentials token", clientToken(t, s, cliClient{ClientID: clientID, ClientSecret: clientSecret}))
	machine := s.login(map[string]string{"client_id": clientID, "client_secret": clientSecret})
	machineToken, _ := machine["token"].(string)
	addAccessToken("the legacy client login token", machineToken)

	resp := passwordLogin(s, tokenFace, desktop, "alice", password)
	if resp.status != http.StatusOK {
		t.Fatalf("password grant: status %d, body %s", resp.status, resp.body)
	}
	grant := resp.json(t)
	grantToken, _ := grant["access_token"].(string)
	refreshToken, _ := grant["refresh_token"].(string)
	addAccessToken("the password-grant token", grantToken)
	addRefreshToken("the refresh token", refreshToken)

	resp = s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, desktop.ClientID, desktop.ClientSecret)
	if resp.status != http.StatusOK {
		t.Fatalf("refresh: status %d, body %s", resp.status, resp.body)
	}
	refreshed := resp.json(t)
	refreshedToken, _ := refreshed["access_token"].(string)
	rotatedRefresh, _ := refreshed["refresh_token"].(string)
	addAccessToken("the refreshed access token", refreshedToken)
	addRefreshToken("the rotated refresh token", rotatedRefresh)

	masterSecret := strings.TrimSpace(string(readIfExists(t, in.database+".secret")))
	if masterSecret == "" {
		t.Fatalf("no master secret in %s.secret", in.database)
	}
	secrets = append(secrets, secret{"the master secret", masterSecret})

	// The server is still running, so recent writes are in the WAL file.
	files := map[string][]byte{
		"database": readIfExists(t, in.database),
		"WAL file": readIfExists(t, in.database+"-wal"),
	}
	for name, content := range files {
		if len(content) == 0 {
			t.Errorf("the %s is missing or empty", name)
		}
		for _, sec := range secrets {
			if bytes.Contains(content, []byte(sec.value)) {
				t.Errorf("the %s contains %s", name, sec.name)
			}
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	client := in.createClientWithCLI("alice")
	s := in.serve(noAddressLimit...)
	userToken := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	token := clientToken(t, s, client)

	const (
		noStore   = "no-store"
		cacheable = "max-age"
	)
	tests := []struct {
		name       string
		send       func() response
		wantStatus int
		// wantCache must be contained in Cache-Control. An empty wantCache
		// checks nothing.
		wantCache string
	}{
		{"token response", func() response {
			return s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, client.ClientID, client.ClientSecret)
		}, http.StatusOK, noStore},
		{"legacy login", func() response {
			return s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": "alice password 1"})
		}, http.StatusOK, noStore},
		{"register-client", func() response {
			return s.postJSON("/api/auth/register-client", userToken, map[string]string{"client_name": "headers"})
		}, http.StatusOK, noStore},
		{"introspection", func() response {
			return s.postForm("/oauth2/introspect", url.Values{"token": {token}}, client.ClientID, client.ClientSecret)
		}, http.StatusOK, noStore},
		{"OpenID configuration", func() response {
			return s.do(http.MethodGet, "/.well-known/openid-configuration", "", "", nil)
		}, http.StatusOK, cacheable},
		{"authorization server metadata", func() response {
			return s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", "", nil)
		}, http.StatusOK, cacheable},
		{"JWKS", func() response {
			return s.do(http.MethodGet, "/.well-known/jwks.json", "", "", nil)
		}, http.StatusOK, cacheable},
		{"revocation", func() response {
			return s.postForm("/oauth2/revoke", url.Values{"token": {"unknown-token"}}, client.ClientID, client.ClientSecret)
		}, http.StatusOK, ""},
		{"health", func() response {
			return s.do(http.MethodGet, "/health/ready", "", "", nil)
		}, http.StatusOK, ""},
		{"legacy login error", func() response {
			return s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": "wrong password"})
		}, http.StatusUnauthorized, noStore},
		{"token error", func() response {
			return s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, client.ClientID, "secret_wrong")
		}, http.StatusUnauthorized, noStore},
		{"unknown path", func() response {
			return s.do(http.MethodGet, "/nothing-here", "", "", nil)
		}, http.StatusNotFound, ""},
		{"wrong method", func() response {
			return s.do(http.MethodGet, "/oauth2/token", "", "", nil)
		}, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.send()
			if resp.status != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			if got := resp.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			cacheControl := resp.header.Get("Cache-Control")
			if !strings.Contains(cacheControl, tt.wantCache) {
				t.Errorf("Cache-Control = %q, want it to contain %q", cacheControl, tt.wantCache)
			}
			if tt.wantCache == cacheable && strings.Contains(cacheControl, noStore) {
				t.Errorf("Cache-Control = %q, want a cacheable response without no-store", cacheControl)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	golangjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/quanux/authserver/verify"
)

// signingAlgs are the values of --signing-alg.
var signingAlgs = []string{"RS256", "ES256", "EdDSA"}

// interopToken is an access token from a running server, a copy whose
// payload widens the scope under the original signature, and the ids the
// token names.
type interopToken struct {
	s        *server
	token    string
	tampered string
	clientID string
	userID   string
}

// issueInteropToken starts a server signing with alg and gets a
// client-credentials token for forge:write through
// golang.org/x/oauth2/clientcredentials.
func issueInteropToken(t *testing.T, alg string) interopToken {
	t.Helper()
	in := newInstance(t)
	userID := in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve("--signing-alg", alg)
	userToken := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	clientID, secret := s.registerClient(userToken, "interop")

	cfg := clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		TokenURL:     s.url + "/oauth2/token",
		Scopes:       []string{"forge:write"},
	}
	tok, err := cfg.Token(t.Context())
	if err != nil {
		t.Fatalf("client credentials grant: %v", err)
	}
	return interopToken{
		s:        s,
		token:    tok.AccessToken,
		tampered: widenScope(t, tok.AccessToken),
		clientID: clientID,
		userID:   userID,
	}
}

// widenScope returns token with "admin" added to its scope claim and the
// original signature, which every verifier must reject.
func widenScope(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["scope"] = claims["scope"].(string) + " admin"
	if payload, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// TestInterop verifies the server's tokens with JWT libraries this project
// does not own, and with the verify package, for every signing algorithm.
func TestInterop(t *testing.T) {
	t.Parallel()
	for _, alg := range signingAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			it := issueInteropToken(t, alg)
			t.Run("go-oidc", func(t *testing.T) { checkGoOIDC(t, it, alg) })
			t.Run("jwx", func(t *testing.T) { checkJWX(t, it) })
			t.Run("golang-jwt with keyfunc", func(t *testing.T) { checkGolangJWT(t, it, alg) })
			t.Run("verify", func(t *testing.T) { checkVerifyPackage(t, it) })
		})
	}
}

// checkGoOIDC uses github.com/coreos/go-oidc for discovery, then its ID
// token verifier with ClientID set to the audience because it checks aud
// against ClientID, and then the bare signature check of its key set.
func checkGoOIDC(t *testing.T, it interopToken, alg string) {
	provider, err := oidc.NewProvider(t.Context(), it.s.url)
	if err != nil {
		t.Fatalf("NewProvider (discovery): %v", err)
	}
	verifier := provider.VerifierContext(t.Context(), &oidc.Config{ClientID: "quanux-api", SupportedSigningAlgs: []string{alg}})
	idt, err := verifier.Verify(t.Context(), it.token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if idt.Subject != it.clientID || idt.Issuer != it.s.url {
		t.Errorf("sub %q iss %q, want %s and %s", idt.Subject, idt.Issuer, it.clientID, it.s.url)
	}
	if _, err := verifier.Verify(t.Context(), it.tampered); err == nil {
		t.Error("Verify accepted the tampered token")
	}

	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	keySet := oidc.NewRemoteKeySet(t.Context(), meta.JWKSURI)
	if _, err := keySet.VerifySignature(t.Context(), it.token); err != nil {
		t.Errorf("RemoteKeySet.VerifySignature: %v", err)
	}
	if _, err := keySet.VerifySignature(t.Context(), it.tampered); err == nil {
		t.Error("RemoteKeySet.VerifySignature accepted the tampered token")
	}
}

// checkJWX uses github.com/lestrrat-go/jwx: fetch the JWKS, parse with
// validation of iss, aud and the time claims, and read typ.
func checkJWX(t *testing.T, it interopToken) {
	set, err := jwk.Fetch(t.Context(), it.s.url+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("jwk.Fetch: %v", err)
	}
	parse := func(token string) (jwxjwt.Token, error) {
		return jwxjwt.Parse([]byte(token),
			jwxjwt.WithKeySet(set),
			jwxjwt.WithValidate(true),
			jwxjwt.WithIssuer(it.s.url),
			jwxjwt.WithAudience("quanux-api"),
			jwxjwt.WithRequiredClaim("exp"),
			jwxjwt.WithRequiredClaim("iat"),
		)
	}
	tok, err := parse(it.token)
	if err != nil {
		t.Fatalf("jwt.Parse: %v", err)
	}
	if sub, _ := tok.Subject(); sub != it.clientID {
		t.Errorf("sub = %q, want %s", sub, it.clientID)
	}
	if _, err := parse(it.tampered); err == nil {
		t.Error("jwt.Parse accepted the tampered token")
	}

	msg, err := jws.Parse([]byte(it.token))
	if err != nil {
		t.Fatalf("jws.Parse: %v", err)
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Errorf("typ = %q, want at+jwt", typ)
	}
}

// checkGolangJWT uses github.com/golang-jwt/jwt with the JWKS key function
// of github.com/MicahParks/keyfunc.
func checkGolangJWT(t *testing.T, it interopToken, alg string) {
	// The key function refreshes in the background until the context
	// ends with the test.
	kf, err := keyfunc.NewDefaultCtx(t.Context(), []string{it.s.url + "/.well-known/jwks.json"})
	if err != nil {
		t.Fatalf("keyfunc: %v", err)
	}
	parse := func(token string) (*golangjwt.Token, error) {
		return golangjwt.Parse(token, kf.Keyfunc,
			golangjwt.WithValidMethods([]string{alg}),
			golangjwt.WithIssuer(it.s.url),
			golangjwt.WithAudience("quanux-api"),
			golangjwt.WithExpirationRequired(),
			golangjwt.WithIssuedAt(),
		)
	}
	tok, err := parse(it.token)
	if err != nil {
		t.Fatalf("jwt.Parse: %v", err)
	}
	if typ := tok.Header["typ"]; typ != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt", typ)
	}
	if sub, _ := tok.Claims.GetSubject(); sub != it.clientID {
		t.Errorf("sub = %q, want %s", sub, it.clientID)
	}
	if _, err := parse(it.tampered); err == nil {
		t.Error("jwt.Parse accepted the tampered token")
	}
}

// checkVerifyPackage uses this repository's verify package, configured by
// discovery as a resource server would.
func checkVerifyPackage(t *testing.T, it interopToken) {
	v, err := verify.New(t.Context(), verify.Config{Issuer: it.s.url, Audience: "quanux-api"})
	if err != nil {
		t.Fatalf("verify.New: %v", err)
	}
	defer v.Close()

	claims, err := v.Verify(t.Context(), it.token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if claims.Subject != it.clientID || claims.ClientID != it.clientID || claims.UserID != it.userID {
		t.Errorf("sub %q client_id %q user_id %q, want %s, %s and %s", claims.Subject, claims.ClientID, claims.UserID, it.clientID, it.clientID, it.userID)
	}
	if !claims.HasScope("forge:write") || claims.HasScope("admin") {
		t.Errorf("scopes = %v, want forge:write only", claims.Scopes)
	}
	if _, err := v.Verify(t.Context(), it.tampered); !errors.Is(err, verify.ErrInvalidToken) {
		t.Errorf("Verify of the tampered token: error = %v, want ErrInvalidToken", err)
	}
}

// TestNodeJoseVerifies runs interop/node/verify.mjs, which verifies a
// token with the jose package for Node.js.
func TestNodeJoseVerifies(t *testing.T) {
	t.Parallel()
	script, err := filepath.Abs(filepath.Join("..", "..", "interop", "node", "verify.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH; install Node.js 20 or later, then run: npm ci --prefix interop/node")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "jose")); err != nil {
		t.Skip("interop/node/node_modules/jose is missing; install it with: npm ci --prefix interop/node")
	}

	for _, alg := range signingAlgs {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			it := issueInteropToken(t, alg)
			runNode := func(env ...string) (int, string) {
				t.Helper()
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, node, script)
				cmd.Env = append(minimalEnv(), append([]string{"ISSUER=" + it.s.url}, env...)...)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
					return exitErr.ExitCode(), out.String()
				}
				if err != nil {
					t.Fatalf("run node: %v\n%s", err, out.String())
				}
				return 0, out.String()
			}

			if code, out := runNode("TOKEN="+it.token, "TAMPERED="+it.tampered); code != 0 {
				t.Errorf("verify.mjs with the real token and the tampered one exited %d, want 0\n%s", code, out)
			}
			if code, out := runNode("TOKEN=" + it.tampered); code != 1 {
				t.Errorf("verify.mjs with only the tampered token exited %d, want 1 (rejected)\n%s", code, out)
			}
		})
	}
}

// TestDiscoveryValuesAreBacked checks every member of the metadata
// document against the running server: each endpoint responds, each grant
// type and each client authentication method works, and each listed claim
// is in the tokens. A member without a check here fails the test.
func TestDiscoveryValuesAreBacked(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	userID := in.createUser("alice", "alice password 1", aliceScopes)
	out := in.cli("", "clients", "create", "--name", "desktop", "--owner", "alice",
		"--grant-types", "client_credentials password refresh_token", "--json")
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("clients create --json printed %q: %v", out, err)
	}
	out = in.cli("", "clients", "create", "--name", "second", "--owner", "alice", "--grant-types", "password", "--json")
	var second struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &second); err != nil {
		t.Fatalf("clients create --json printed %q: %v", out, err)
	}
	s := in.serve()

	resp := s.do(http.MethodGet, "/.well-known/openid-configuration", "", "", nil)
	if resp.status != http.StatusOK {
		t.Fatalf("openid-configuration: status %d", resp.status)
	}
	doc := resp.json(t)
	if other := s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", "", nil).json(t); !jsonEqual(doc, other) {
		t.Errorf("the two metadata documents differ:\n%v\n%v", doc, other)
	}

	// passwordToken runs the password grant for a client and returns the
	// token response.
	passwordToken := func(t *testing.T, clientID, secret string) *oauth2.Token {
		t.Helper()
		cfg := oauth2.Config{
			ClientID:     clientID,
			ClientSecret: secret,
			Endpoint:     oauth2.Endpoint{TokenURL: s.url + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
			Scopes:       []string{"strategy:read", "forge:write"},
		}
		tok, err := cfg.PasswordCredentialsToken(t.Context(), "alice", "alice password 1")
		if err != nil {
			t.Fatalf("password grant: %v", err)
		}
		return tok
	}

	checks := map[string]func(t *testing.T, value any){
		"issuer": func(t *testing.T, value any) {
			if value != s.url {
				t.Errorf("issuer = %v, want %s", value, s.url)
			}
		},
		"token_endpoint":         func(t *testing.T, value any) { checkPostEndpoint(t, s, value, "/oauth2/token") },
		"introspection_endpoint": func(t *testing.T, value any) { checkPostEndpoint(t, s, value, "/oauth2/introspect") },
		"revocation_endpoint":    func(t *testing.T, value any) { checkPostEndpoint(t, s, value, "/oauth2/revoke") },
		"jwks_uri": func(t *testing.T, value any) {
			path := endpointPath(t, s, value)
			resp := s.do(http.MethodGet, path, "", "", nil)
			var set jose.JSONWebKeySet
			if resp.status != http.StatusOK || json.Unmarshal(resp.body, &set) != nil || len(set.Keys) == 0 {
				t.Errorf("GET %s: status %d, body %s; want a JWKS with keys", path, resp.status, resp.body)
			}
		},
		"grant_types_supported": func(t *testing.T, value any) {
			for _, grant := range stringList(t, value) {
				t.Run(grant, func(t *testing.T) {
					switch grant {
					case "client_credentials":
						cfg := clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: s.url + "/oauth2/token"}
						if _, err := cfg.Token(t.Context()); err != nil {
							t.Errorf("client credentials grant: %v", err)
						}
					case "password":
						passwordToken(t, c.ClientID, c.ClientSecret)
					case "refresh_token":
						tok := passwordToken(t, c.ClientID, c.ClientSecret)
						form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
						if r := s.postForm("/oauth2/token", form, c.ClientID, c.ClientSecret); r.status != http.StatusOK {
							t.Errorf("refresh grant: status %d, body %s", r.status, r.body)
						}
					default:
						t.Errorf("grant type %q is listed but this test has no check for it", grant)
					}
				})
			}
		},
		"response_types_supported": func(t *testing.T, value any) {
			// No authorization endpoint is served, so no response type.
			if got := stringList(t, value); len(got) != 0 {
				t.Errorf("response_types_supported = %v, want empty", got)
			}
		},
		"token_endpoint_auth_methods_supported": func(t *testing.T, value any) {
			for _, method := range stringList(t, value) {
				t.Run(method, func(t *testing.T) {
					r := postWithClientAuth(t, s, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, method, c.ClientID, c.ClientSecret)
					if r.status != http.StatusOK {
						t.Errorf("token request with %s: status %d, body %s", method, r.status, r.body)
					}
				})
			}
		},
		"introspection_endpoint_auth_methods_supported": func(t *testing.T, value any) {
			for _, method := range stringList(t, value) {
				t.Run(method, func(t *testing.T) {
					tok := passwordToken(t, c.ClientID, c.ClientSecret)
					r := postWithClientAuth(t, s, "/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, method, c.ClientID, c.ClientSecret)
					if r.status != http.StatusOK || r.json(t)["active"] != true {
						t.Errorf("introspection with %s: status %d, body %s; want an active token", method, r.status, r.body)
					}
				})
			}
		},
		"revocation_endpoint_auth_methods_supported": func(t *testing.T, value any) {
			for _, method := range stringList(t, value) {
				t.Run(method, func(t *testing.T) {
					tok := passwordToken(t, c.ClientID, c.ClientSecret)
					r := postWithClientAuth(t, s, "/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, method, c.ClientID, c.ClientSecret)
					if r.status != http.StatusOK {
						t.Fatalf("revocation with %s: status %d, body %s", method, r.status, r.body)
					}
					if got := s.introspect(tok.AccessToken, c.ClientID, c.ClientSecret); got["active"] != false {
						t.Errorf("token revoked with %s introspects as %v", method, got)
					}
				})
			}
		},
		"claims_supported": func(t *testing.T, value any) {
			tok := passwordToken(t, c.ClientID, c.ClientSecret)
			claims := verifyOffline(t, s, tok.AccessToken).extra
			for _, name := range stringList(t, value) {
				if _, ok := claims[name]; !ok {
					t.Errorf("claim %s is listed but missing from a password-grant token: %v", name, sortedKeys(claims))
				}
			}
		},
		"subject_types_supported": func(t *testing.T, value any) {
			if got := stringList(t, value); !slices.Equal(got, []string{"public"}) {
				t.Fatalf("subject_types_supported = %v, want [public]", got)
			}
			// "public" means one sub for a user whichever client requests the token.
			first := verifyOffline(t, s, passwordToken(t, c.ClientID, c.ClientSecret).AccessToken)
			other := verifyOffline(t, s, passwordToken(t, second.ClientID, second.ClientSecret).AccessToken)
			if first.claims.Subject != userID || other.claims.Subject != userID {
				t.Errorf("sub for two clients = %q and %q, want %s for both", first.claims.Subject, other.claims.Subject, userID)
			}
		},
		"userinfo_endpoint": func(t *testing.T, value any) {
			path := endpointPath(t, s, value)
			if r := s.do(http.MethodGet, path, "", "", nil); r.status != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: status %d, want 401", path, r.status)
			}
			tok := passwordToken(t, c.ClientID, c.ClientSecret)
			r := s.do(http.MethodGet, path, "", "Bearer "+tok.AccessToken, nil)
			if r.status != http.StatusOK || r.json(t)["sub"] != userID {
				t.Errorf("GET %s with a user token: status %d, body %s; want 200 with sub %s", path, r.status, r.body, userID)
			}
		},
		"access_token_signing_alg_values_supported": func(t *testing.T, value any) {
			tok := passwordToken(t, c.ClientID, c.ClientSecret)
			parsed, err := jose.ParseSignedCompact(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
			if err != nil {
				t.Fatal(err)
			}
			if alg := parsed.Signatures[0].Header.Algorithm; !slices.Contains(stringList(t, value), alg) {
				t.Errorf("tokens are signed with %s, not one of %v", alg, value)
			}
		},
	}

	for name, value := range doc {
		check, ok := checks[name]
		if !ok {
			t.Errorf("metadata member %q has no check in this test; add one that proves the server does what it says", name)
			continue
		}
		t.Run(name, func(t *testing.T) { check(t, value) })
	}
	for _, required := range []string{"issuer", "token_endpoint", "jwks_uri", "response_types_supported", "subject_types_supported"} {
		if _, ok := doc[required]; !ok {
			t.Errorf("metadata lacks the required member %s", required)
		}
	}
}

// endpointPath checks that value is a URL under the server's issuer and
// returns its path.
func endpointPath(t *testing.T, s *server, value any) string {
	t.Helper()
	raw, _ := value.(string)
	if !strings.HasPrefix(raw, s.url+"/") {
		t.Fatalf("endpoint %v is not under the issuer %s", value, s.url)
	}
	return strings.TrimPrefix(raw, s.url)
}

// checkPostEndpoint checks that value is the URL of wantPath and that an
// empty, unauthenticated POST there gets an OAuth error as JSON with 400
// or 401, which shows the endpoint is served.
func checkPostEndpoint(t *testing.T, s *server, value any, wantPath string) {
	t.Helper()
	path := endpointPath(t, s, value)
	if path != wantPath {
		t.Errorf("endpoint path = %s, want %s", path, wantPath)
	}
	r := s.do(http.MethodPost, path, "application/x-www-form-urlencoded", "", strings.NewReader(""))
	if r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized {
		t.Errorf("POST %s without credentials: status %d, want 400 or 401; body %s", path, r.status, r.body)
	}
	if code, _ := r.json(t)["error"].(string); code == "" {
		t.Errorf("POST %s: body %s has no error code", path, r.body)
	}
}

// postWithClientAuth posts form to path, authenticating the client with
// method as RFC 6749 §2.3.1 describes.
func postWithClientAuth(t *testing.T, s *server, path string, form url.Values, method, clientID, secret string) response {
	t.Helper()
	switch method {
	case "client_secret_basic":
		return s.postForm(path, form, clientID, secret)
	case "client_secret_post":
		withCredentials := url.Values{"client_id": {clientID}, "client_secret": {secret}}
		for k, v := range form {
			withCredentials[k] = v
		}
		return s.postForm(path, withCredentials, "", "")
	default:
		t.Fatalf("auth method %q is listed but this test has no check for it", method)
		return response{}
	}
}

func stringList(t *testing.T, value any) []string {
	t.Helper()
	list, ok := value.([]any)
	if !ok {
		t.Fatalf("value %v is not a JSON array", value)
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("value %v has a member that is not a string", value)
		}
		out = append(out, s)
	}
	return out
}

func jsonEqual(a, b map[string]any) bool {
	ra, errA := json.Marshal(a)
	rb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ra, rb)
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// issuer is a stand-in authorization server: discovery and a JWKS with one
// ES256 key, and a signer for tokens under that key.
type issuer struct {
	url    string
	signer jose.Signer
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	public := jose.JSONWebKey{Key: priv.Public(), KeyID: "test-key", Algorithm: "ES256", Use: "sig"}
	mux := http.NewServeMux()
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": server.URL, "jwks_uri": server.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{public}})
	})

	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: "test-key"}},
		(&jose.SignerOptions{}).WithType("at+jwt"),
	)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{url: server.URL, signer: signer}
}

// token returns an access token for user_1 with scope, as the
// authorization server issues them.
func (is *issuer) token(t *testing.T, scope string) string {
	t.Helper()
	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss": is.url, "sub": "user_1", "aud": []string{"quanux-api"},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "jti-1", "client_id": "client_1", "scope": scope, "user_id": "user_1",
	})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := is.signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// startServer runs the resource server against is on a loopback port and
// returns its base URL. Cleanup stops it and checks that run returns nil.
func startServer(t *testing.T, is *issuer) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	go func() { done <- run(ctx, []string{"--issuer", is.url, "--addr", "127.0.0.1:0"}, logger, ready) }()

	select {
	case addr := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run returned %v after shutdown", err)
			}
		})
		return "http://" + addr.String()
	case err := <-done:
		cancel()
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("resource server not listening after 10s")
	}
	return ""
}

func TestForgeEndpoint(t *testing.T) {
	is := newIssuer(t)
	base := startServer(t, is)
	const reference = `{ "component_type": "strategy", "name": "MyStrategy", "target_lang": "python" }`

	tests := []struct {
		name        string
		bearer      string
		contentType string
		body        string
		wantStatus  int
		wantError   string
	}{
		{"forge:write token", is.token(t, "strategy:read forge:write"), "application/json", reference, http.StatusOK, ""},
		{"no token", "", "application/json", reference, http.StatusUnauthorized, "invalid_token"},
		{"bad token", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "application/json", reference, http.StatusUnauthorized, "invalid_token"},
		{"tampered token", tamper(t, is.token(t, "strategy:read")), "application/json", reference, http.StatusUnauthorized, "invalid_token"},
		{"token without forge:write", is.token(t, "strategy:read strategy:write"), "application/json", reference, http.StatusForbidden, "insufficient_scope"},
		{"malformed JSON", is.token(t, "forge:write"), "application/json", `{"component_type": "strategy",`, http.StatusBadRequest, "invalid_request"},
		{"JSON array", is.token(t, "forge:write"), "application/json", `[]`, http.StatusBadRequest, "invalid_request"},
		{"data after the object", is.token(t, "forge:write"), "application/json", reference + ` {}`, http.StatusBadRequest, "invalid_request"},
		{"missing name", is.token(t, "forge:write"), "application/json", `{"component_type": "strategy", "target_lang": "python"}`, http.StatusBadRequest, "invalid_request"},
		{"number for name", is.token(t, "forge:write"), "application/json", `{"component_type": "strategy", "name": 7, "target_lang": "python"}`, http.StatusBadRequest, "invalid_request"},
		{"name too long", is.token(t, "forge:write"), "application/json", `{"component_type": "strategy", "name": "` + strings.Repeat("n", 101) + `", "target_lang": "python"}`, http.StatusBadRequest, "invalid_request"},
		{"control character", is.token(t, "forge:write"), "application/json", `{"component_type": "strategy", "name": "a\u0007b", "target_lang": "python"}`, http.StatusBadRequest, "invalid_request"},
		{"body over 64 KiB", is.token(t, "forge:write"), "application/json", `{"name": "` + strings.Repeat("n", maxBodySize) + `"}`, http.StatusRequestEntityTooLarge, "invalid_request"},
		{"form body", is.token(t, "forge:write"), "application/x-www-form-urlencoded", "name=x", http.StatusUnsupportedMediaType, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/foundry/forge", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.contentType)
			if tt.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, raw)
			}
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body is not a JSON object: %v\n%s", err, raw)
			}

			if tt.wantStatus != http.StatusOK {
				if body["error"] != tt.wantError || body["message"] == "" {
					t.Errorf("error body = %v, want error %q and a message", body, tt.wantError)
				}
				return
			}
			want := map[string]any{
				"subject": "user_1", "user_id": "user_1", "client_id": "client_1",
				"component_type": "strategy", "name": "MyStrategy", "target_lang": "python",
			}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunFailsWithoutIssuer(t *testing.T) {
	// Port 9 on loopback has no listener, so discovery fails at once.
	err := run(t.Context(), []string{"--issuer", "http://127.0.0.1:9", "--addr", "127.0.0.1:0"}, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		t.Fatal("run started without a reachable issuer")
	}
}

// tamper adds forge:write to the scope in the token's payload and keeps
// the signature, so only the signature check can catch it.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["scope"] = "forge:write"
	if payload, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

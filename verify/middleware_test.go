package verify

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRequire(t *testing.T) {
	t.Parallel()
	key := rsaKey(t)
	ti := newTestIssuer(t, key)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{MinRefreshInterval: time.Hour})
	claims := validClaims(ti.URL(), c.Now())
	good := key.sign(t, claims, nil)
	readOnly := key.sign(t, with(claims, map[string]any{"scope": "strategy:read"}), nil)
	expired := key.sign(t, with(claims, map[string]any{"exp": c.Now().Add(-time.Hour).Unix()}), nil)

	var seen *Claims
	handler := v.Require("forge:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := FromContext(r.Context())
		if !ok {
			t.Error("FromContext found no claims in a request Require admitted")
		}
		seen = c
		w.WriteHeader(http.StatusNoContent)
	}))

	tests := []struct {
		name          string
		authorization []string
		wantStatus    int
		wantChallenge string
		wantError     string
	}{
		{"valid token", []string{"Bearer " + good}, http.StatusNoContent, "", ""},
		{"scheme in lower case", []string{"bearer " + good}, http.StatusNoContent, "", ""},
		{"no header", nil, http.StatusUnauthorized, `Bearer realm="quanux-api"`, "invalid_token"},
		{"basic scheme", []string{"Basic YWxpY2U6c2VjcmV0"}, http.StatusUnauthorized, `Bearer realm="quanux-api"`, "invalid_token"},
		{"empty bearer", []string{"Bearer "}, http.StatusBadRequest, `Bearer realm="quanux-api", error="invalid_request", error_description="The bearer token is empty."`, "invalid_request"},
		{"two headers", []string{"Bearer " + good, "Bearer " + good}, http.StatusBadRequest, `Bearer realm="quanux-api", error="invalid_request", error_description="Send one Authorization header."`, "invalid_request"},
		{"garbage token", []string{"Bearer not-a-token"}, http.StatusUnauthorized, `Bearer realm="quanux-api", error="invalid_token", error_description="The access token is invalid."`, "invalid_token"},
		{"tampered token", []string{"Bearer " + tamper(t, good, with(claims, map[string]any{"scope": "forge:write admin"}))}, http.StatusUnauthorized, `Bearer realm="quanux-api", error="invalid_token", error_description="The access token is invalid."`, "invalid_token"},
		{"expired token", []string{"Bearer " + expired}, http.StatusUnauthorized, `Bearer realm="quanux-api", error="invalid_token", error_description="The access token expired."`, "invalid_token"},
		{"missing scope", []string{"Bearer " + readOnly}, http.StatusForbidden, `Bearer realm="quanux-api", error="insufficient_scope", error_description="The access token lacks a required scope.", scope="forge:write"`, "insufficient_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/foundry/forge", nil)
			for _, h := range tt.authorization {
				req.Header.Add("Authorization", h)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
			if tt.wantStatus == http.StatusNoContent {
				if seen == nil || seen.Subject != "user_3f0c" {
					t.Errorf("handler saw claims %+v, want those of the token", seen)
				}
				return
			}
			if seen != nil {
				t.Error("the handler ran for a rejected request")
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body is not a JSON object of strings: %v\n%s", err, rec.Body)
			}
			if diff := cmp.Diff([]string{"error", "message"}, sortedKeys(body)); diff != "" {
				t.Errorf("body members (-want +got):\n%s", diff)
			}
			if body["error"] != tt.wantError {
				t.Errorf("error = %q, want %q", body["error"], tt.wantError)
			}
		})
	}
}

func TestRequireAllScopes(t *testing.T) {
	t.Parallel()
	key := ecKey(t)
	ti := newTestIssuer(t, key)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{Realm: "forge"})
	handler := v.Require("strategy:read", "forge:write")(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))

	tests := []struct {
		scope      string
		wantStatus int
	}{
		{"strategy:read forge:write", http.StatusNoContent},
		{"forge:write strategy:read admin", http.StatusNoContent},
		{"forge:write", http.StatusForbidden},
		{"strategy:read", http.StatusForbidden},
		{"", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			token := key.sign(t, with(validClaims(ti.URL(), c.Now()), map[string]any{"scope": tt.scope}), nil)
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusForbidden {
				want := `Bearer realm="forge", error="insufficient_scope", error_description="The access token lacks a required scope.", scope="strategy:read forge:write"`
				if got := rec.Header().Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
			}
		})
	}
}

func TestRequirePanicsOnInvalidScope(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, ecKey(t))
	v := newTestVerifier(t, ti, newClock(), Config{})
	for _, scope := range []string{"", "two words", `quote"d`} {
		t.Run(scope, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Require(%q) did not panic", scope)
				}
			}()
			v.Require(scope)
		})
	}
}

func TestFromContextWithoutClaims(t *testing.T) {
	t.Parallel()
	if c, ok := FromContext(t.Context()); ok || c != nil {
		t.Errorf("FromContext on a bare context = %v, %v; want nil, false", c, ok)
	}
	want := &Claims{Subject: "user_1"}
	if c, ok := FromContext(NewContext(t.Context(), want)); !ok || c != want {
		t.Errorf("FromContext(NewContext(claims)) = %v, %v; want the same claims", c, ok)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

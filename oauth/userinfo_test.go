package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// userinfoReply is a response of the userinfo endpoint.
type userinfoReply struct {
	status int
	header http.Header
	body   map[string]any
}

// getUserinfo sends GET /userinfo with the given Authorization headers.
func getUserinfo(t *testing.T, f *fixture, authorization ...string) userinfoReply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.http.URL+"/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range authorization {
		req.Header.Add("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("userinfo body is not a JSON object: %v\n%s", err, body)
	}
	return userinfoReply{status: resp.StatusCode, header: resp.Header, body: m}
}

func TestUserinfo(t *testing.T) {
	f := newFixture(t)
	user := userToken(t, f, "alice", "alice password")

	reply := getUserinfo(t, f, "Bearer "+user)
	if reply.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %v", reply.status, reply.body)
	}
	want := map[string]any{
		"sub":      f.userID,
		"username": "alice",
		"scope":    "strategy:read forge:write",
		"scopes":   []any{"strategy:read", "forge:write"},
	}
	if diff := cmp.Diff(want, reply.body); diff != "" {
		t.Errorf("userinfo body (-want +got):\n%s", diff)
	}
	if got := reply.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := reply.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}

	if reply := getUserinfo(t, f, "bearer "+user); reply.status != http.StatusOK {
		t.Errorf("lower-case scheme: status = %d, want 200", reply.status)
	}
}

func TestUserinfoRejects(t *testing.T) {
	f := newFixture(t)
	revoked := userToken(t, f, "alice", "alice password")
	if _, err := f.srv.Accounts().RevokeUserTokens(t.Context(), f.userID); err != nil {
		t.Fatal(err)
	}
	user := userToken(t, f, "alice", "alice password")
	machine, err := f.clientCredentials(t, oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name          string
		authorization []string
		wantStatus    int
		// wantChallenge is the start of WWW-Authenticate.
		wantChallenge string
		wantError     string
	}{
		{"no token", nil, http.StatusUnauthorized, `Bearer realm="quanux"`, "invalid_token"},
		{"basic credentials", []string{"Basic YWxpY2U6cHc="}, http.StatusUnauthorized, `Bearer realm="quanux"`, "invalid_token"},
		{"client token", []string{"Bearer " + machine.AccessToken}, http.StatusForbidden, `Bearer realm="quanux", error="insufficient_scope"`, "insufficient_scope"},
		{"revoked token", []string{"Bearer " + revoked}, http.StatusUnauthorized, `Bearer realm="quanux", error="invalid_token"`, "invalid_token"},
		{"garbage token", []string{"Bearer abc.def.ghi"}, http.StatusUnauthorized, `Bearer realm="quanux", error="invalid_token"`, "invalid_token"},
		{"empty token", []string{"Bearer "}, http.StatusBadRequest, `Bearer realm="quanux", error="invalid_request"`, "invalid_request"},
		{"character outside token68", []string{"Bearer a,b"}, http.StatusBadRequest, `Bearer realm="quanux", error="invalid_request"`, "invalid_request"},
		{"two headers", []string{"Bearer " + user, "Bearer " + user}, http.StatusBadRequest, `Bearer realm="quanux", error="invalid_request"`, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := getUserinfo(t, f, tt.authorization...)
			if reply.status != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %v", reply.status, tt.wantStatus, reply.body)
			}
			challenge := reply.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, tt.wantChallenge) {
				t.Errorf("WWW-Authenticate = %q, want it to start with %q", challenge, tt.wantChallenge)
			}
			if tt.wantChallenge == `Bearer realm="quanux"` && challenge != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want no error code for a request without a bearer token (RFC 6750 §3.1)", challenge)
			}
			if reply.body["error"] != tt.wantError {
				t.Errorf("error = %v, want %s", reply.body["error"], tt.wantError)
			}
			if _, ok := reply.body["sub"]; ok {
				t.Errorf("a rejected request got claims: %v", reply.body)
			}
		})
	}
}

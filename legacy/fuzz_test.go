package legacy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzDecodeLogin(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"pw"}`,
		`{"client_id":"client_1","client_secret":"secret_2"}`,
		`{"username":"a","username":"b"}`,
		`{"username":"\u0000"}`,
		`{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
		`[]`, `{`, `{"username":1}`, "{\"username\":\"\xff\"}", `{} {}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/auth/login", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var req loginRequest
		rerr := decodeJSON(httptest.NewRecorder(), r, &req)
		if rerr != nil {
			if rerr.status != http.StatusBadRequest && rerr.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for a body problem", rerr.status)
			}
			if rerr.message == "" {
				t.Fatal("error without a message")
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatal("accepted invalid UTF-8")
		}
		for _, v := range []string{req.Username, req.Password, req.ClientID, req.ClientSecret} {
			if strings.ContainsRune(v, 0) {
				t.Fatalf("accepted a NUL in %q", v)
			}
		}
		// An accepted body decodes into the same request when read as a
		// generic object: no duplicate key can have changed a field.
		var generic map[string]any
		if err := json.Unmarshal(body, &generic); err != nil {
			t.Fatalf("accepted a body encoding/json rejects: %v", err)
		}
		if s, ok := generic["username"].(string); ok && s != req.Username {
			t.Fatalf("username %q decoded as %q", s, req.Username)
		}
	})
}

func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{"Bearer abc.def.ghi", "bearer x", "Bearer ", "Basic YTpi", "Bearer a b", "Bearer " + strings.Repeat(".", 100)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, err := bearerToken([]string{header})
		if err != nil {
			return
		}
		if token == "" || len(token) > maxBearerLength {
			t.Fatalf("accepted a token of length %d", len(token))
		}
		for i := 0; i < len(token); i++ {
			if !isToken68(token[i]) {
				t.Fatalf("accepted byte %q outside token68", token[i])
			}
		}
		if !strings.HasSuffix(header, token) {
			t.Fatalf("token %q is not the end of header %q", token, header)
		}
	})
}

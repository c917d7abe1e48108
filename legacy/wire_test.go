package legacy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
	}{
		{"valid", "application/json", `{"username":"a","password":"b"}`, 0},
		{"charset parameter", "application/json; charset=utf-8", `{"username":"a"}`, 0},
		{"form media type", "application/x-www-form-urlencoded", `username=a`, http.StatusUnsupportedMediaType},
		{"text media type", "text/plain", `{"username":"a"}`, http.StatusUnsupportedMediaType},
		{"no media type", "", `{"username":"a"}`, http.StatusUnsupportedMediaType},
		{"malformed", "application/json", `{"username":`, http.StatusBadRequest},
		{"wrong type", "application/json", `{"username":["a"]}`, http.StatusBadRequest},
		{"trailing object", "application/json", `{} {}`, http.StatusBadRequest},
		{"too large", "application/json", `{"username":"` + strings.Repeat("a", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/auth/login", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			var req loginRequest
			rerr := decodeJSON(httptest.NewRecorder(), r, &req)
			got := 0
			if rerr != nil {
				got = rerr.status
			}
			if got != tt.wantStatus {
				t.Errorf("status = %d, want %d (error %v)", got, tt.wantStatus, rerr)
			}
		})
	}
}

package oauth

import (
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestDiscoveryDocument(t *testing.T) {
	tests := []struct {
		name        string
		issuer      string
		signingAlgs []string
		golden      string
	}{
		{"RS256", "https://auth.example.com", []string{"RS256"}, "discovery_rs256.golden.json"},
		{"EdDSA on loopback", "http://127.0.0.1:8080", []string{"EdDSA"}, "discovery_eddsa.golden.json"},
		{"no signing algorithm", "https://auth.example.com", nil, "discovery_no_alg.golden.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildDiscovery(tt.issuer, tt.signingAlgs...)
			if err != nil {
				t.Fatal(err)
			}
			compareGoldenJSON(t, filepath.Join("testdata", tt.golden), got)
		})
	}
}

func TestDiscoveryHandler(t *testing.T) {
	doc, err := buildDiscovery("https://auth.example.com", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{discovery: doc}
	rec := httptest.NewRecorder()
	s.handleDiscovery(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/.well-known/openid-configuration", nil))

	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", rec.Code)
	}
	want := map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"}
	for name, value := range want {
		if got := rec.Header().Get(name); got != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
	if diff := cmp.Diff(string(doc), rec.Body.String()); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

// compareGoldenJSON compares got with the JSON in path, or rewrites path
// when the -update flag is set.
func compareGoldenJSON(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		var indented any
		if err := json.Unmarshal(got, &indented); err != nil {
			t.Fatal(err)
		}
		out, err := json.MarshalIndent(indented, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}

	want, err := os.ReadFile(path) //nolint:gosec // G304: path is a golden file name fixed by the test
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	var wantJSON, gotJSON any
	if err := json.Unmarshal(want, &wantJSON); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if err := json.Unmarshal(got, &gotJSON); err != nil {
		t.Fatalf("parse output: %v", err)
	}
	if diff := cmp.Diff(wantJSON, gotJSON); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

package keys

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestJWKSContents(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			env := newTestEnv(t)
			m := env.manager(t, alg)
			env.clock.Advance(time.Hour)
			if _, err := m.Rotate(t.Context()); err != nil {
				t.Fatal(err)
			}
			raw := m.JWKS()

			var set jose.JSONWebKeySet
			if err := json.Unmarshal(raw, &set); err != nil {
				t.Fatalf("parse JWKS: %v", err)
			}
			var gotKIDs []string
			for _, k := range set.Keys {
				gotKIDs = append(gotKIDs, k.KeyID)
				if !k.IsPublic() || !k.Valid() {
					t.Errorf("kid %q: IsPublic %v, Valid %v, want both true", k.KeyID, k.IsPublic(), k.Valid())
				}
				if k.Use != "sig" || k.Algorithm != alg {
					t.Errorf("kid %q: use %q alg %q, want sig and %s", k.KeyID, k.Use, k.Algorithm, alg)
				}
				if kid, err := thumbprint(k); err != nil || kid != k.KeyID {
					t.Errorf("kid %q: thumbprint %q (%v), want the kid", k.KeyID, kid, err)
				}
			}
			var wantKIDs []string
			for _, k := range m.Keys() {
				wantKIDs = append(wantKIDs, k.KeyID)
			}
			if diff := cmp.Diff(wantKIDs, gotKIDs); diff != "" {
				t.Errorf("JWKS kids differ from Keys() (-want +got):\n%s", diff)
			}

			var members struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(raw, &members); err != nil {
				t.Fatal(err)
			}
			for _, k := range members.Keys {
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
					if _, ok := k[private]; ok {
						t.Errorf("kid %v: JWKS entry has private member %q", k["kid"], private)
					}
				}
			}
		})
	}
}

func TestJWKSGolden(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "RS256")
	compareGoldenJSON(t, filepath.Join("testdata", "jwks_rs256.golden.json"), m.JWKS())
}

func TestPublicKey(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "ES256")
	active := keyInState(t, m, StateActive)

	got, ok := m.PublicKey(active.KeyID)
	if !ok {
		t.Fatalf("PublicKey(%q) not found", active.KeyID)
	}
	if got.KeyID != active.KeyID || !got.IsPublic() || got.Algorithm != "ES256" {
		t.Errorf("PublicKey(%q) = kid %q public %v alg %q", active.KeyID, got.KeyID, got.IsPublic(), got.Algorithm)
	}
	if _, ok := m.PublicKey("no-such-kid"); ok {
		t.Error("PublicKey(unknown kid) found a key")
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

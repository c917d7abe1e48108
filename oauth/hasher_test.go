package oauth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSecretHasher(t *testing.T) {
	h, err := NewSecretHasher(bytes.Repeat([]byte("m"), 32))
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewSecretHasher(bytes.Repeat([]byte("n"), 32))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(t.Context(), []byte("secret_abc"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hash), "hmac-sha256$") || bytes.Contains(hash, []byte("secret_abc")) {
		t.Fatalf("hash %q: want the hmac-sha256$ form without the secret", hash)
	}

	tests := []struct {
		name    string
		hasher  *SecretHasher
		hash    []byte
		secret  string
		wantErr bool
	}{
		{"match", h, hash, "secret_abc", false},
		{"wrong secret", h, hash, "secret_abd", true},
		{"empty secret", h, hash, "", true},
		{"other master secret", other, hash, "secret_abc", true},
		{"malformed stored hash", h, []byte("plain"), "plain", true},
		{"empty stored hash", h, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.hasher.Compare(t.Context(), tt.hash, []byte(tt.secret))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Compare error = %v, want error %t", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrSecretMismatch) {
				t.Errorf("error %v does not wrap ErrSecretMismatch", err)
			}
		})
	}
}

func TestSecretHasherShortMasterSecret(t *testing.T) {
	if _, err := NewSecretHasher([]byte("too short")); err == nil {
		t.Fatal("a 9-byte master secret was accepted")
	}
}

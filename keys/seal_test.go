package keys

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	plaintext := []byte("PKCS #8 DER stand-in")
	s, err := newSealer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newSealer([]byte("another-secret-another-secret-!!"))
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.seal("kid-1", "ES256", plaintext)

	tests := []struct {
		name    string
		opener  *sealer
		kid     string
		alg     string
		blob    []byte
		wantErr bool
	}{
		{name: "round trip", opener: s, kid: "kid-1", alg: "ES256", blob: sealed},
		{name: "wrong secret", opener: other, kid: "kid-1", alg: "ES256", blob: sealed, wantErr: true},
		{name: "moved to another kid", opener: s, kid: "kid-2", alg: "ES256", blob: sealed, wantErr: true},
		{name: "other algorithm", opener: s, kid: "kid-1", alg: "EdDSA", blob: sealed, wantErr: true},
		{name: "flipped bit", opener: s, kid: "kid-1", alg: "ES256", blob: flipLastBit(sealed), wantErr: true},
		{name: "truncated", opener: s, kid: "kid-1", alg: "ES256", blob: sealed[:10], wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opener.open(tt.kid, tt.alg, tt.blob)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if !bytes.Equal(got, plaintext) {
					t.Errorf("open = %q, want %q", got, plaintext)
				}
				return
			}
			var openErr *openError
			if !errors.As(err, &openErr) {
				t.Fatalf("open error = %v, want *openError", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.kid) || !strings.Contains(msg, "master secret may differ") {
				t.Errorf("error %q does not name the kid and the master secret", msg)
			}
		})
	}
}

func TestSealFormat(t *testing.T) {
	s, err := newSealer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("same input")
	a := s.seal("kid", "RS256", plaintext)
	b := s.seal("kid", "RS256", plaintext)

	// 12-byte nonce, ciphertext of the same length, 16-byte tag.
	if want := 12 + len(plaintext) + 16; len(a) != want {
		t.Errorf("sealed length = %d, want %d", len(a), want)
	}
	if bytes.Equal(a[:12], b[:12]) {
		t.Error("two seals used the same nonce")
	}
	if bytes.Contains(a, plaintext) {
		t.Error("sealed blob contains the plaintext")
	}
}

func flipLastBit(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-1] ^= 1
	return out
}

package keys

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestThumbprintVectors(t *testing.T) {
	tests := []struct {
		name string
		jwk  string
		want string
	}{
		{
			// RFC 7638 §3.1.
			name: "RSA",
			jwk:  `{"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`,
			want: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		},
		{
			// RFC 8037 §A.3.
			name: "Ed25519",
			jwk:  `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
			want: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var jwk jose.JSONWebKey
			if err := json.Unmarshal([]byte(tt.jwk), &jwk); err != nil {
				t.Fatal(err)
			}
			got, err := thumbprint(jwk)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("thumbprint = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGenerateKeyTypes(t *testing.T) {
	tests := []struct {
		alg     string
		wantKty string
		wantCrv string
	}{
		{alg: "ES256", wantKty: "EC", wantCrv: "P-256"},
		{alg: "EdDSA", wantKty: "OKP", wantCrv: "Ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			priv, err := generateKey(tt.alg)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkKeyType(tt.alg, priv.Public()); err != nil {
				t.Fatal(err)
			}
			jwk, err := publicJWK(tt.alg, priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(jwk)
			if err != nil {
				t.Fatal(err)
			}
			var members map[string]any
			if err := json.Unmarshal(raw, &members); err != nil {
				t.Fatal(err)
			}
			if members["kty"] != tt.wantKty || members["crv"] != tt.wantCrv {
				t.Errorf("JWK = %s, want kty %s and crv %s", raw, tt.wantKty, tt.wantCrv)
			}
		})
	}
}

func TestCheckKeyTypeRejectsMismatch(t *testing.T) {
	ed, err := generateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	ec, err := generateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // G403: the test needs a key below the minimum
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		alg  string
		key  any
	}{
		{name: "RSA 1024 for RS256", alg: "RS256", key: small.Public()},
		{name: "Ed25519 for RS256", alg: "RS256", key: ed.Public()},
		{name: "Ed25519 for ES256", alg: "ES256", key: ed.Public()},
		{name: "P-256 for EdDSA", alg: "EdDSA", key: ec.Public()},
		{name: "unknown algorithm", alg: "PS256", key: ec.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkKeyType(tt.alg, tt.key); err == nil {
				t.Error("checkKeyType succeeded, want an error")
			}
		})
	}
}

package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"
)

var benchmarkAlgorithms = []string{"RS256", "ES256", "EdDSA"}

func BenchmarkSignerGenerate(b *testing.B) {
	for _, alg := range benchmarkAlgorithms {
		b.Run(alg, func(b *testing.B) {
			m := newTestEnv(b).manager(b, alg)
			signer := m.Signer()
			claims := accessTokenClaims()
			header := accessTokenHeader()

			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := signer.Generate(b.Context(), claims, header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRSASignPKCS1v15 is the baseline for BenchmarkSignerGenerate/RS256:
// the raw RSA signature over a signing input of the same size, without any
// JOSE work.
func BenchmarkRSASignPKCS1v15(b *testing.B) {
	key := loadTestRSAKeys(b)[0].(*rsa.PrivateKey)
	m := newTestEnv(b).manager(b, "RS256")
	token, _, err := m.Signer().Generate(b.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(token[:strings.LastIndexByte(token, '.')])

	b.ReportAllocs()
	for b.Loop() {
		digest := sha256.Sum256(input)
		if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignerDecode(b *testing.B) {
	for _, alg := range benchmarkAlgorithms {
		b.Run(alg, func(b *testing.B) {
			m := newTestEnv(b).manager(b, alg)
			signer := m.Signer()
			token, _, err := signer.Generate(b.Context(), accessTokenClaims(), accessTokenHeader())
			if err != nil {
				b.Fatal(err)
			}

			b.ReportAllocs()
			for b.Loop() {
				if _, err := signer.Decode(b.Context(), token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

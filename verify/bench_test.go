package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerify measures Verify on a warm key cache in one goroutine.
// Besides wall time (ns/op) it reports the process's CPU time per token
// (cpu-ns/op, garbage collection included) and its inverse,
// tokens/s/core, which stay meaningful when other processes share the
// machine.
func BenchmarkVerify(b *testing.B) {
	keys := []testKey{rsaKey(b), ecKey(b), edKey(b)}
	ti := newTestIssuer(b, keys...)
	c := newClock()
	v := newTestVerifier(b, ti, c, Config{})

	for _, k := range keys {
		b.Run(string(k.alg), func(b *testing.B) {
			token := k.sign(b, validClaims(ti.URL(), c.Now()), nil)
			if _, err := v.Verify(b.Context(), token); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpuBefore, haveCPU := processCPUTime()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), token); err != nil {
					b.Fatal(err)
				}
			}
			reportCPUTime(b, cpuBefore, haveCPU)
		})
	}
}

// BenchmarkSignatureOnly measures the standard library's signature check
// of the same tokens with nothing else, so the difference to
// BenchmarkVerify is the cost of parsing, key lookup and claim checks. It
// reports the same metrics as BenchmarkVerify.
func BenchmarkSignatureOnly(b *testing.B) {
	for _, k := range []testKey{rsaKey(b), ecKey(b), edKey(b)} {
		b.Run(string(k.alg), func(b *testing.B) {
			token := k.sign(b, validClaims("https://auth.example.com", newClock().Now()), nil)
			dot := strings.LastIndexByte(token, '.')
			input := []byte(token[:dot])
			signature, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
			if err != nil {
				b.Fatal(err)
			}

			var check func() bool
			switch public := k.priv.Public().(type) {
			case *rsa.PublicKey:
				check = func() bool {
					digest := sha256.Sum256(input)
					return rsa.VerifyPKCS1v15(public, crypto.SHA256, digest[:], signature) == nil
				}
			case *ecdsa.PublicKey:
				check = func() bool {
					digest := sha256.Sum256(input)
					r, s := new(big.Int).SetBytes(signature[:32]), new(big.Int).SetBytes(signature[32:])
					return ecdsa.Verify(public, digest[:], r, s)
				}
			case ed25519.PublicKey:
				check = func() bool { return ed25519.Verify(public, input, signature) }
			}
			cpuBefore, haveCPU := processCPUTime()
			for b.Loop() {
				if !check() {
					b.Fatal("signature check failed")
				}
			}
			reportCPUTime(b, cpuBefore, haveCPU)
		})
	}
}

// reportCPUTime reports the process's CPU time per iteration since before
// as cpu-ns/op, and its inverse as tokens/s/core.
func reportCPUTime(b *testing.B, before time.Duration, haveBefore bool) {
	after, ok := processCPUTime()
	if !haveBefore || !ok {
		return
	}
	perToken := float64(after-before) / float64(b.N)
	b.ReportMetric(perToken, "cpu-ns/op")
	b.ReportMetric(1e9/perToken, "tokens/s/core")
}

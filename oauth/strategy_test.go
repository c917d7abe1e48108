package oauth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
)

// claimsSigner is a jwt.Signer whose Decode returns fixed claims, so the
// claim checks can be tested apart from signatures.
type claimsSigner struct {
	jwt.Signer
	claims jwt.MapClaims
}

func (s claimsSigner) Decode(context.Context, string) (*jwt.Token, error) {
	return &jwt.Token{Claims: s.claims}, nil
}

func TestAccessTokenClaimChecks(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	base := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "https://auth.example", "aud": []any{"quanux-api"},
			"exp": now.Unix() + 60, "iat": now.Unix(), "nbf": now.Unix(),
		}
	}
	leeway := int64(ClaimsLeeway / time.Second)
	tests := []struct {
		name   string
		modify func(jwt.MapClaims)
		want   error
	}{
		{"valid", func(jwt.MapClaims) {}, nil},
		{"string audience", func(c jwt.MapClaims) { c["aud"] = "quanux-api" }, nil},
		{"expired within leeway", func(c jwt.MapClaims) { c["exp"] = now.Unix() - leeway + 1 }, nil},
		{"expired past leeway", func(c jwt.MapClaims) { c["exp"] = now.Unix() - leeway }, fosite.ErrTokenExpired},
		{"missing exp", func(c jwt.MapClaims) { delete(c, "exp") }, fosite.ErrTokenClaim},
		{"missing iat", func(c jwt.MapClaims) { delete(c, "iat") }, fosite.ErrTokenClaim},
		{"missing nbf", func(c jwt.MapClaims) { delete(c, "nbf") }, fosite.ErrTokenClaim},
		{"nbf in the future", func(c jwt.MapClaims) { c["nbf"] = now.Unix() + leeway + 1 }, fosite.ErrTokenClaim},
		{"iat in the future", func(c jwt.MapClaims) { c["iat"] = now.Unix() + leeway + 1 }, fosite.ErrTokenClaim},
		{"exp as text", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, fosite.ErrTokenClaim},
		{"other issuer", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }, fosite.ErrTokenClaim},
		{"other audience", func(c jwt.MapClaims) { c["aud"] = []any{"other-api"} }, fosite.ErrTokenClaim},
		{"no audience", func(c jwt.MapClaims) { delete(c, "aud") }, fosite.ErrTokenClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := base()
			tt.modify(claims)
			s := &accessTokenStrategy{
				DefaultJWTStrategy: &oauth2.DefaultJWTStrategy{Signer: claimsSigner{claims: claims}},
				issuer:             "https://auth.example",
				audience:           "quanux-api",
				now:                func() time.Time { return now },
			}
			err := s.ValidateAccessToken(t.Context(), nil, "a.b.c")
			if tt.want == nil && err != nil {
				t.Fatalf("error = %v, want none", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

// countingSigner is claimsSigner counting its Decode calls.
type countingSigner struct {
	claimsSigner
	decodes *int
}

func (s countingSigner) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	*s.decodes++
	return s.claimsSigner.Decode(ctx, token)
}

func TestVerifiedTokenCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := now
	decodes := 0
	claims := jwt.MapClaims{
		"iss": "https://auth.example", "aud": []any{"quanux-api"},
		"exp": now.Unix() + 90, "iat": now.Unix(), "nbf": now.Unix(),
	}
	s := &accessTokenStrategy{
		DefaultJWTStrategy: &oauth2.DefaultJWTStrategy{Signer: countingSigner{claimsSigner{claims: claims}, &decodes}},
		issuer:             "https://auth.example",
		audience:           "quanux-api",
		now:                func() time.Time { return clock },
	}
	validate := func(token string) error {
		t.Helper()
		return s.ValidateAccessToken(t.Context(), nil, token)
	}

	for range 3 {
		if err := validate("a.b.c"); err != nil {
			t.Fatalf("ValidateAccessToken: %v", err)
		}
	}
	if decodes != 1 {
		t.Errorf("one token decoded %d times, want once", decodes)
	}
	if err := validate("a.b.d"); err != nil || decodes != 2 {
		t.Errorf("another token: error %v after %d decodes, want a decode of its own", err, decodes)
	}

	clock = now.Add(verifiedTTL)
	if err := validate("a.b.c"); err != nil || decodes != 3 {
		t.Errorf("after the cache lifetime: error %v after %d decodes, want a new decode", err, decodes)
	}

	// The time checks run on every call, also for a cached token: the
	// entry stored a minute in is still fresh when the token expires.
	clock = now.Add(100 * time.Second)
	if err := validate("a.b.c"); !errors.Is(err, fosite.ErrTokenExpired) {
		t.Errorf("expired cached token: error %v, want %v", err, fosite.ErrTokenExpired)
	}
	if decodes != 3 {
		t.Errorf("expired cached token decoded again (%d decodes); the cache entry should have served it", decodes)
	}
}

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

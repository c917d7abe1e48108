package verify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Claims are the checked claims of an access token (RFC 9068 §2.2).
type Claims struct {
	// Subject is sub: the user id, or the client id for a token from the
	// client-credentials grant.
	Subject string
	// UserID is user_id: the user the token acts for, which for a
	// client-credentials token is the client's owner. Empty when absent.
	UserID string
	// ClientID is client_id: the client the token was issued to.
	ClientID string
	// TokenID is jti.
	TokenID string
	// Issuer is iss.
	Issuer string
	// Audience is aud, as a list even when the token has a single string.
	Audience []string
	// Scopes are the space-separated values of scope, empty when absent.
	Scopes []string
	// ExpiresAt is exp.
	ExpiresAt time.Time
	// IssuedAt is iat.
	IssuedAt time.Time
}

// HasScope reports whether scope is one of the token's scopes. Scopes
// compare exactly, case included.
func (c *Claims) HasScope(scope string) bool {
	return slices.Contains(c.Scopes, scope)
}

// tokenClaims is the JWT payload as sent.
type tokenClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  audience         `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	ClientID  string           `json:"client_id"`
	Scope     string           `json:"scope"`
	UserID    string           `json:"user_id"`
}

// checkClaims decodes a verified payload and applies RFC 9068 §4: iss
// equals the issuer, aud contains the audience, and the token is inside
// its lifetime with the configured leeway. The claims RFC 9068 §2.2
// requires (iss, exp, aud, sub, client_id, iat, jti) must be present,
// and nbf is checked when present.
func (v *Verifier) checkClaims(payload []byte) (*Claims, error) {
	var tc tokenClaims
	if err := json.Unmarshal(payload, &tc); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrInvalidToken, err)
	}

	if name := missingClaim(&tc); name != "" {
		return nil, fmt.Errorf("%w: claim %s is missing", ErrInvalidToken, name)
	}
	if tc.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("%w: iss %q is not %q", ErrInvalidToken, tc.Issuer, v.cfg.Issuer)
	}
	if !slices.Contains(tc.Audience, v.cfg.Audience) {
		return nil, fmt.Errorf("%w: aud %q does not contain %q", ErrInvalidToken, []string(tc.Audience), v.cfg.Audience)
	}

	now := v.cfg.Now()
	leeway := v.cfg.Leeway
	exp := tc.Expiry.Time()
	if !now.Before(exp.Add(leeway)) {
		return nil, fmt.Errorf("%w: exp %s has passed (now %s, leeway %s)", ErrExpired, formatTime(exp), formatTime(now), leeway)
	}
	if tc.NotBefore != nil {
		if nbf := tc.NotBefore.Time(); now.Add(leeway).Before(nbf) {
			return nil, fmt.Errorf("%w: nbf %s is in the future (now %s, leeway %s)", ErrInvalidToken, formatTime(nbf), formatTime(now), leeway)
		}
	}
	iat := tc.IssuedAt.Time()
	if now.Add(leeway).Before(iat) {
		return nil, fmt.Errorf("%w: iat %s is in the future (now %s, leeway %s)", ErrInvalidToken, formatTime(iat), formatTime(now), leeway)
	}

	return &Claims{
		Subject:   tc.Subject,
		UserID:    tc.UserID,
		ClientID:  tc.ClientID,
		TokenID:   tc.ID,
		Issuer:    tc.Issuer,
		Audience:  []string(tc.Audience),
		Scopes:    strings.Fields(tc.Scope),
		ExpiresAt: exp,
		IssuedAt:  iat,
	}, nil
}

// audience is aud, which RFC 7519 §4.1.3 allows as one string or an array
// of strings. It decodes without the interface{} round trip of
// jwt.Audience, which showed up in the profile of BenchmarkVerify.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("aud is neither a string nor an array of strings: %w", err)
	}
	*a = list
	return nil
}

// missingClaim returns the name of the first claim RFC 9068 §2.2 requires
// that tc lacks, or "" when all are present. aud and iss are left to the
// value checks, which reject an empty one.
func missingClaim(tc *tokenClaims) string {
	switch {
	case tc.Expiry == nil:
		return "exp"
	case tc.IssuedAt == nil:
		return "iat"
	case tc.Subject == "":
		return "sub"
	case tc.ClientID == "":
		return "client_id"
	case tc.ID == "":
		return "jti"
	default:
		return ""
	}
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
)

// ClaimsLeeway is the clock skew tolerated when the server checks exp,
// nbf and iat of its own access tokens: enough for replicas whose clocks
// NTP keeps within a second or two of each other.
const ClaimsLeeway = 5 * time.Second

// accessTokenStrategy is fosite's JWT access-token strategy with stricter
// validation of the server's own tokens: exp, iat and nbf must be present
// and hold within ClaimsLeeway, and iss and aud must be this server's.
// fosite's check treats missing time claims as valid and ignores iss and
// aud.
type accessTokenStrategy struct {
	*oauth2.DefaultJWTStrategy
	issuer   string
	audience string
	now      func() time.Time
	verified verifiedTokens
}

func (s *accessTokenStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	_, err := s.validClaims(ctx, token)
	return err
}

// validClaims checks token as ValidateAccessToken does and returns its
// claims.
func (s *accessTokenStrategy) validClaims(ctx context.Context, token string) (jwt.MapClaims, error) {
	now := s.now()
	key := sha256.Sum256([]byte(token))
	c, ok := s.verified.get(key, now)
	if !ok {
		t, err := s.Decode(ctx, token)
		if err != nil {
			return nil, fosite.ErrTokenSignatureMismatch.WithWrap(err).WithDebug("the token's signature, key or header is invalid")
		}
		c = t.Claims
		s.verified.put(key, c, now)
	}
	leeway := int64(ClaimsLeeway / time.Second)

	exp, okExp := numericClaim(c["exp"])
	iat, okIat := numericClaim(c["iat"])
	nbf, okNbf := numericClaim(c["nbf"])
	if !okExp || !okIat || !okNbf {
		return nil, fosite.ErrTokenClaim.WithDebug("exp, iat and nbf are required")
	}
	// RFC 7519 §4.1.4 and §4.1.5: a token is invalid on or after exp and
	// before nbf.
	switch unix := now.Unix(); {
	case unix >= exp+leeway:
		return nil, fosite.ErrTokenExpired.WithHint("The access token expired.")
	case unix < nbf-leeway:
		return nil, fosite.ErrTokenClaim.WithDebug("nbf is in the future")
	case unix < iat-leeway:
		return nil, fosite.ErrTokenClaim.WithDebug("iat is in the future")
	}

	if iss, _ := c["iss"].(string); iss != s.issuer {
		return nil, fosite.ErrTokenClaim.WithDebug("iss is not this server")
	}
	if !audienceContains(c["aud"], s.audience) {
		return nil, fosite.ErrTokenClaim.WithDebug("aud does not name this server's audience")
	}
	return c, nil
}

func numericClaim(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	default:
		return 0, false
	}
}

func audienceContains(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.ContainsFunc(a, func(v any) bool { return v == want })
	case []string:
		return slices.Contains(a, want)
	default:
		return false
	}
}

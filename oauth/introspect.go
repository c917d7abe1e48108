package oauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/quanux/authserver/storage"
)

// handleIntrospect serves token introspection (RFC 7662). The caller
// authenticates as a client.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ir, err := s.provider.NewIntrospectionRequest(ctx, r, NewSession())
	if err == nil && ir.IsActive() && !s.mayIntrospect(ctx, ir.GetAccessRequester().GetClient().GetID()) {
		// A client not entitled to this token learns nothing about it,
		// not even that it exists (RFC 7662 §2.2).
		err = fosite.ErrInactiveToken
	}
	if err != nil {
		rfc := fosite.ErrorToRFC6749Error(err)
		// An inactive or expired token is a valid result, not a failure.
		if !errors.Is(rfc, fosite.ErrInactiveToken) && !isClaimsError(err) && rfc.CodeField >= 500 {
			s.logger.ErrorContext(ctx, "introspection failed", "err", describeError(rfc))
		}
		s.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	s.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// mayIntrospect reports whether the authenticated caller may see tokens of
// tokenClientID: its own, or every token if it has the introspect right.
func (s *Server) mayIntrospect(ctx context.Context, tokenClientID string) bool {
	fr, _ := ctx.Value(formRequestKey{}).(formRequest)
	if fr.clientID == "" {
		return false
	}
	if fr.clientID == tokenClientID {
		return true
	}
	c, err := s.store.CachedClient(ctx, fr.clientID)
	if err != nil {
		s.logger.WarnContext(ctx, "introspection caller lookup failed", "client_id", fr.clientID, "err", err)
		return false
	}
	return c.Introspect
}

// handleRevoke serves token revocation (RFC 7009). The caller
// authenticates as a client and may revoke only its own tokens.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := s.provider.NewRevocationRequest(ctx, r)
	if err == nil {
		fr, _ := ctx.Value(formRequestKey{}).(formRequest)
		s.auditor.Record(ctx, storage.AuditEvent{Type: EventTokenRevoked, ClientID: fr.clientID})
	}
	if err != nil {
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.CodeField >= 500 {
			s.logger.ErrorContext(ctx, "revocation failed", "err", describeError(rfc))
		} else {
			s.logger.WarnContext(ctx, "revocation rejected", "error", rfc.ErrorField, "err", describeError(rfc))
		}
	}
	s.provider.WriteRevocationResponse(ctx, w, err)
}

// isClaimsError reports whether err is a token's failed exp, iat or nbf
// check. fosite's JWT strategy returns those unconverted, so they arrive
// looking like server errors.
func isClaimsError(err error) bool {
	var v *jwt.ValidationError
	return errors.As(err, &v)
}

// TokenInfo describes a valid access token presented to one of the
// server's own protected endpoints.
type TokenInfo struct {
	Subject  string
	UserID   string
	ClientID string
	Scopes   []string
	// GrantType is the grant that started the token's family:
	// "password" for user tokens, "client_credentials" for machine tokens.
	GrantType string
	// RequestID names the token's family: the grant and every refresh
	// after it share it. [Accounts.Logout] revokes them all.
	RequestID string
}

// HasScope reports whether the token carries scope.
func (t TokenInfo) HasScope(scope string) bool { return slices.Contains(t.Scopes, scope) }

// maxBearerBytes is the longest access token accepted; the server's own
// tokens are well under 2 KiB.
const maxBearerBytes = 8 << 10

// ErrInvalidToken is returned by [Server.AuthenticateBearer] for a token
// that is malformed, forged, expired, revoked, or not an access token.
var ErrInvalidToken = errors.New("invalid access token")

// AuthenticateBearer validates an access token presented to one of the
// server's own endpoints: signature and claims, and its record, so a
// revoked token or a token of a disabled client or user fails. Errors wrap
// ErrInvalidToken, or are outages.
func (s *Server) AuthenticateBearer(ctx context.Context, token string) (TokenInfo, error) {
	// A JWT has exactly two dots; anything else, or anything longer than
	// the signer accepts, fails before parsing or a database query.
	if len(token) > maxBearerBytes || strings.Count(token, ".") != 2 {
		return TokenInfo{}, ErrInvalidToken
	}
	use, ar, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, NewSession())
	if err != nil {
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.CodeField >= 500 && !isClaimsError(err) {
			return TokenInfo{}, err
		}
		return TokenInfo{}, errors.Join(ErrInvalidToken, err)
	}
	if use != fosite.AccessToken {
		return TokenInfo{}, ErrInvalidToken
	}
	session, ok := ar.GetSession().(*Session)
	if !ok {
		return TokenInfo{}, ErrInvalidToken
	}
	return TokenInfo{
		Subject:   session.Subject,
		UserID:    session.User,
		ClientID:  ar.GetClient().GetID(),
		Scopes:    slices.Clone(ar.GetGrantedScopes()),
		GrantType: session.GrantType,
		RequestID: ar.GetID(),
	}, nil
}

package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

// handleToken serves the token endpoint (RFC 6749 §3.2).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, resp, err := s.issue(ctx, r)
	if err != nil {
		s.logGrantError(ctx, ar, err)
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// issue runs one token request through fosite: client authentication and
// the grant handler, then the server's grant rules, then token issuance.
func (s *Server) issue(ctx context.Context, r *http.Request) (fosite.AccessRequester, fosite.AccessResponder, error) {
	ar, err := s.provider.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		return ar, nil, err
	}
	if err := s.applyGrantRules(ctx, ar); err != nil {
		return ar, nil, err
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		return ar, nil, err
	}
	return ar, resp, nil
}

// applyGrantRules decides the granted scopes and fills the session claims.
// Scopes are always bounded by the user the token acts for, at every token
// request, so a user whose scopes shrink takes their clients and refresh
// tokens down with them.
func (s *Server) applyGrantRules(ctx context.Context, ar fosite.AccessRequester) error {
	session, ok := ar.GetSession().(*Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	client, ok := ar.GetClient().(*storage.Client)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected client type")
	}

	var (
		user      storage.User
		subject   string
		grantType string
		err       error
	)
	switch {
	case ar.GetGrantTypes().ExactOne("client_credentials"):
		grantType = "client_credentials"
		user, err = s.activeUser(ctx, client.OwnerID)
		if err != nil {
			return fosite.ErrInvalidClient.WithHint("The client's owner does not exist or is disabled.").WithWrap(err)
		}
		if owner, ok := ctx.Value(requiredOwnerKey{}).(string); ok && owner != user.ID {
			return fosite.ErrInvalidClient.WithHint("The client does not belong to the authenticated user.")
		}
		subject = client.ID
	case ar.GetGrantTypes().ExactOne("password"):
		grantType = "password"
		// fosite's password handler put the authenticated user's id in
		// the session subject.
		user, err = s.activeUser(ctx, session.Subject)
		if err != nil {
			return fosite.ErrInvalidGrant.WithHint("Unable to authenticate the provided username and password credentials.").WithWrap(err)
		}
		subject = user.ID
		session.Username = user.Username
	case ar.GetGrantTypes().ExactOne("refresh_token"):
		// fosite restored the session of the original grant.
		grantType = session.GrantType
		user, err = s.activeUser(ctx, session.User)
		if err != nil {
			return fosite.ErrInvalidGrant.WithHint("The user of this refresh token does not exist or is disabled.").WithWrap(err)
		}
		subject = session.Subject
	default:
		return fosite.ErrUnsupportedGrantType
	}

	allowed := user.Scopes
	if client.ID != storage.LegacyClientID {
		allowed = intersect(allowed, client.Scopes)
	}
	granted, err := grantScopes(ar, allowed)
	if err != nil {
		return err
	}
	setGrantedScopes(ar, granted)
	ar.GrantAudience(s.audience)

	s.fillSession(session, ar, subject, user.ID, grantType)
	return nil
}

// grantScopes returns the scopes to grant: the requested ones, each of
// which must be allowed, or every allowed one when none is requested. A
// refresh may narrow the scopes of the original grant, never widen them
// (RFC 6749 §6).
func grantScopes(ar fosite.AccessRequester, allowed []string) ([]string, error) {
	if ar.GetGrantTypes().ExactOne("refresh_token") {
		// fosite replaced the requested scopes with the original ones;
		// the narrowing request is in the form.
		original := intersect(ar.GetGrantedScopes(), allowed)
		requested := strings.Fields(ar.GetRequestForm().Get("scope"))
		if len(requested) == 0 {
			return original, nil
		}
		for _, sc := range requested {
			if !slices.Contains(original, sc) {
				return nil, fosite.ErrInvalidScope.WithHintf("Scope %q was not granted to this refresh token.", sc)
			}
		}
		return dedupe(requested), nil
	}

	requested := ar.GetRequestedScopes()
	if len(requested) == 0 {
		return allowed, nil
	}
	for _, sc := range requested {
		if !slices.Contains(allowed, sc) {
			return nil, fosite.ErrInvalidScope.WithHintf("Scope %q is not allowed for this client and user.", sc)
		}
	}
	return dedupe(requested), nil
}

func setGrantedScopes(ar fosite.AccessRequester, scopes []string) {
	if req, ok := ar.(*fosite.AccessRequest); ok {
		req.GrantedScope = slices.Clone(scopes)
		return
	}
	for _, sc := range scopes {
		ar.GrantScope(sc)
	}
}

// fillSession sets the claims of the token about to be issued (RFC 9068
// §2.2). Each issuance gets a fresh jti and iat, also on refresh, where
// fosite hands over a copy of the original session.
func (s *Server) fillSession(session *Session, ar fosite.AccessRequester, subject, userID, grantType string) {
	now := time.Now().UTC().Truncate(time.Second)
	claims := session.JWTClaims
	claims.Subject = subject
	claims.Issuer = s.issuer
	claims.JTI = newTokenID()
	claims.IssuedAt = now
	claims.NotBefore = now
	claims.Extra = map[string]any{
		"client_id": ar.GetClient().GetID(),
		"user_id":   userID,
	}
	session.JWTHeader.Extra = map[string]any{"typ": "at+jwt"}
	session.Subject = subject
	session.User = userID
	session.GrantType = grantType
}

func (s *Server) activeUser(ctx context.Context, id string) (storage.User, error) {
	if id == "" {
		return storage.User{}, storage.ErrNotFound
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return storage.User{}, err
	}
	if u.Disabled {
		return storage.User{}, errors.New("user disabled")
	}
	return u, nil
}

func (s *Server) logGrantError(ctx context.Context, ar fosite.AccessRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	attrs := []any{"error", rfc.ErrorField, "err", describeError(rfc)}
	if ar != nil {
		attrs = append(attrs, "grant_type", strings.Join(ar.GetGrantTypes(), " "))
		if ar.GetClient() != nil {
			attrs = append(attrs, "client_id", ar.GetClient().GetID())
		}
	}
	if rfc.CodeField >= 500 {
		s.logger.ErrorContext(ctx, "token request failed", attrs...)
		return
	}
	s.logger.WarnContext(ctx, "token request rejected", attrs...)
}

// TokenResult is the part of an issued token response that the legacy
// adapter returns.
type TokenResult struct {
	AccessToken string
	ExpiresIn   time.Duration
	Scopes      []string
	UserID      string
	ClientID    string
}

// requiredOwnerKey carries the user id that a client-credentials client
// must belong to, for [Server.Exchange].
type requiredOwnerKey struct{}

// Exchange runs a token request given as form parameters (RFC 6749 §4.3.2
// or §4.4.2, client credentials in the form) through the token endpoint's
// whole pipeline, for the legacy adapter. It is the only path on which the
// built-in legacy login client is accepted. A non-empty ownerID makes a
// client-credentials request fail with invalid_client unless the client
// belongs to that user. Errors are fosite RFC 6749 errors.
func (s *Server) Exchange(ctx context.Context, form url.Values, ownerID string) (TokenResult, error) {
	ctx = context.WithValue(ctx, firstPartyKey{}, true)
	if ownerID != "" {
		ctx = context.WithValue(ctx, requiredOwnerKey{}, ownerID)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return TokenResult{}, fosite.ErrServerError.WithWrap(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	ar, resp, err := s.issue(ctx, r)
	if err != nil {
		s.logGrantError(ctx, ar, err)
		return TokenResult{}, err
	}
	session, _ := ar.GetSession().(*Session)
	return TokenResult{
		AccessToken: resp.GetAccessToken(),
		ExpiresIn:   time.Until(session.GetExpiresAt(fosite.AccessToken)).Round(time.Second),
		Scopes:      slices.Clone(ar.GetGrantedScopes()),
		UserID:      session.User,
		ClientID:    ar.GetClient().GetID(),
	}, nil
}

func intersect(a, b []string) []string {
	out := make([]string, 0, len(a))
	for _, s := range a {
		if slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// describeError renders an RFC 6749 error with its hint, debug text and
// cause for the log, without the stack trace that fosite's wrapping would
// add to a %+v rendering.
func describeError(rfc *fosite.RFC6749Error) string {
	parts := []string{rfc.ErrorField}
	if rfc.HintField != "" {
		parts = append(parts, rfc.HintField)
	}
	if rfc.DebugField != "" {
		parts = append(parts, rfc.DebugField)
	}
	if cause := rfc.Unwrap(); cause != nil && cause.Error() != rfc.DebugField {
		parts = append(parts, cause.Error())
	}
	return strings.Join(parts, ": ")
}

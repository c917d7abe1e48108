package oauth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

// handleToken serves the token endpoint (RFC 6749 §3.2).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fr, _ := ctx.Value(formRequestKey{}).(formRequest)
	ar, resp, err := s.issue(ctx, r, fr.form, fr.clientID, remoteAddress(r))
	if err != nil {
		var throttled *ThrottledError
		if errors.As(err, &throttled) {
			w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
		}
		if errors.Is(err, ErrBusy) {
			w.Header().Set("Retry-After", "1")
		}
		s.logGrantError(ctx, ar, err)
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// remoteAddress returns the host part of the peer address.
// NOTE: behind a reverse proxy this is the proxy's address, so the
// per-address limit then applies to all clients together.
func remoteAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// issue runs one token request under the brute-force limits: the guard
// admits it or not before any credential is checked, then learns the
// outcome. Both faces pass through here, so they share one lock state.
func (s *Server) issue(ctx context.Context, r *http.Request, form url.Values, clientID, address string) (fosite.AccessRequester, fosite.AccessResponder, error) {
	attempt, err := s.guard.Begin(ctx, address, guardKeys(ctx, form, clientID)...)
	var throttled *ThrottledError
	if errors.As(err, &throttled) {
		s.metrics.observeGrant(form.Get("grant_type"), Inconclusive, throttled.Reason)
		return nil, nil, errTooManyAttempts.WithHintf("Retry after %d seconds.", throttled.RetryAfterSeconds()).WithWrap(err)
	}
	if err != nil {
		return nil, nil, fosite.ErrServerError.WithWrap(err)
	}
	ar, resp, err := s.grant(ctx, r)
	if errors.Is(err, ErrBusy) {
		// fosite reports every storage error as server_error.
		err = errHashingBusy.WithWrap(err)
	}
	outcome := outcomeOf(err)
	attempt.FinishEach(ctx, outcome)
	s.metrics.observeGrant(form.Get("grant_type"), requestOutcome(outcome), "")
	s.auditGrant(ctx, ar, form, clientID, err)
	return ar, resp, err
}

// refreshReuseHint is the hint fosite's refresh handler gives when a used
// refresh token comes back and it revokes the token family.
const refreshReuseHint = "The refresh token was already used."

// auditGrant records the outcome of a token request in the audit trail.
func (s *Server) auditGrant(ctx context.Context, ar fosite.AccessRequester, form url.Values, clientID string, err error) {
	if s.auditor == nil {
		return
	}
	grantType := form.Get("grant_type")
	e := storage.AuditEvent{ClientID: clientID}
	if err == nil {
		session, _ := ar.GetSession().(*Session)
		e.Type = EventTokenIssued
		e.ClientID = ar.GetClient().GetID()
		if session != nil {
			e.UserID = session.User
			e.Detail = "grant_type=" + grantType + " jti=" + session.JWTClaims.JTI
		}
		s.auditor.Record(ctx, e)
		if grantType == "password" || grantType == "client_credentials" {
			e.ID, e.Type, e.Detail = "", EventLoginSucceeded, "grant_type="+grantType
			s.auditor.Record(ctx, e)
		}
		return
	}

	rfc := fosite.ErrorToRFC6749Error(err)
	var throttled *ThrottledError
	switch {
	case rfc.HintField == refreshReuseHint:
		e.Type, e.Detail = EventRefreshReuse, "family revoked"
	case errors.As(err, &throttled):
		e.Type, e.Detail = EventLoginFailed, "grant_type="+grantType+" throttled"
	case errors.Is(rfc, fosite.ErrInvalidClient), errors.Is(rfc, fosite.ErrInvalidGrant):
		e.Type, e.Detail = EventLoginFailed, "grant_type="+grantType+" error="+rfc.ErrorField
	default:
		return
	}
	if username := form.Get("username"); username != "" {
		e.Detail += " username=" + truncate(username, 64)
	} else if owner, ok := ctx.Value(ownerCredentialsKey{}).(ownerCredentials); ok {
		e.Detail += " username=" + truncate(owner.username, 64)
	}
	s.auditor.Record(ctx, e)
}

// errTooManyAttempts is the token endpoint's error for a throttled
// attempt. RFC 6749 defines no error code for it; temporarily_unavailable
// with status 429 and Retry-After is what clients can act on.
var errTooManyAttempts = &fosite.RFC6749Error{
	ErrorField:       "temporarily_unavailable",
	DescriptionField: "The request was rejected because of too many attempts.",
	CodeField:        http.StatusTooManyRequests,
}

// errHashingBusy is the token endpoint's error when every password-hashing
// slot stayed taken: the server is overloaded, not broken.
var errHashingBusy = &fosite.RFC6749Error{
	ErrorField:       "temporarily_unavailable",
	DescriptionField: "The server is busy checking other logins; retry in a second.",
	CodeField:        http.StatusServiceUnavailable,
}

// guardKeys names the credentials a token request tries: its client and,
// for the password grant or an owner check, the normalised username. The
// built-in legacy client is left out: it has no secret to guess, and a
// lock on it would lock every user out of the legacy login.
func guardKeys(ctx context.Context, form url.Values, clientID string) []string {
	var keys []string
	if clientID != "" && clientID != storage.LegacyClientID {
		keys = append(keys, ClientKeyPrefix+clientID)
	}
	username := form.Get("username")
	if owner, ok := ctx.Value(ownerCredentialsKey{}).(ownerCredentials); ok {
		username = owner.username
	}
	if username != "" {
		if key, err := storage.NormalizeUsername(username); err == nil {
			keys = append(keys, UserKeyPrefix+key)
		} else {
			keys = append(keys, UserKeyPrefix+username)
		}
	}
	return keys
}

// requestOutcome sums up per-key outcomes for the metrics: Failed if any
// credential was wrong.
func requestOutcome(outcome func(key string) Outcome) Outcome {
	if o := outcome(ClientKeyPrefix); o == Failed {
		return Failed
	}
	return outcome(UserKeyPrefix)
}

// outcomeOf classifies a token request's result for the guard, per key.
// Only errors that mean wrong credentials count as failures, and only
// against the credential that was wrong. invalid_client blames the
// client. invalid_grant blames the user when one was named (a wrong
// password), else the client (a bad refresh token). So a client that runs
// the password grant for many users is not locked by their typos.
func outcomeOf(err error) func(key string) Outcome {
	if err == nil {
		return func(string) Outcome { return Succeeded }
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	clientWrong := errors.Is(rfc, fosite.ErrInvalidClient)
	grantWrong := errors.Is(rfc, fosite.ErrInvalidGrant)
	return func(key string) Outcome {
		isUser := strings.HasPrefix(key, UserKeyPrefix)
		switch {
		case clientWrong && !isUser:
			return Failed
		case grantWrong && isUser:
			return Failed
		default:
			return Inconclusive
		}
	}
}

// grant runs one token request through fosite: client authentication and
// the grant handler, then the server's grant rules, then token issuance.
func (s *Server) grant(ctx context.Context, r *http.Request) (fosite.AccessRequester, fosite.AccessResponder, error) {
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
		// The client was read joined with its owner, and GetClient
		// refuses a client whose owner is disabled; a deleted owner takes
		// its clients with it. So no second query is needed here.
		if client.OwnerID == "" || client.OwnerDisabled {
			return fosite.ErrInvalidClient.WithHint("The client's owner does not exist or is disabled.")
		}
		user = storage.User{ID: client.OwnerID, Scopes: client.OwnerScopes}
		if owner, ok := ctx.Value(ownerCredentialsKey{}).(ownerCredentials); ok {
			if err := s.checkOwner(ctx, owner, user.ID); err != nil {
				return err
			}
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
	if grantType == "client_credentials" {
		session.JWTClaims.JTI = clientTokenJTI(client, s.stateless)
	}
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

// ownerCredentialsKey carries the username and password that must belong
// to the owner of a client-credentials client, for [Server.Exchange].
type ownerCredentialsKey struct{}

type ownerCredentials struct {
	username, password string
}

// checkOwner verifies the owner credentials of a client-credentials
// request: they must be right and name the client's owner.
func (s *Server) checkOwner(ctx context.Context, owner ownerCredentials, ownerID string) error {
	u, ok, err := s.accounts.Authenticate(ctx, owner.username, owner.password)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if !ok {
		return fosite.ErrInvalidGrant.WithHint("Unable to authenticate the provided username and password credentials.")
	}
	if u.ID != ownerID {
		return fosite.ErrInvalidClient.WithHint("The client does not belong to the authenticated user.")
	}
	return nil
}

// ExchangeOptions are the legacy adapter's additions to a token request.
type ExchangeOptions struct {
	// Address is the caller's network address, for the per-address limit.
	Address string
	// OwnerUsername and OwnerPassword, when set on a client-credentials
	// request, must be the credentials of the client's owner.
	OwnerUsername string
	OwnerPassword string
}

// LogValue keeps the owner password out of logs.
func (o ExchangeOptions) LogValue() slog.Value {
	return slog.GroupValue(slog.String("address", o.Address), slog.String("username", o.OwnerUsername))
}

// Exchange runs a token request given as form parameters (RFC 6749 §4.3.2
// or §4.4.2, client credentials in the form) through the token endpoint's
// whole pipeline, including the brute-force limits, for the legacy
// adapter. It is the only path on which the built-in legacy login client
// is accepted. Errors are fosite RFC 6749 errors; a throttled request's
// error wraps a *ThrottledError.
func (s *Server) Exchange(ctx context.Context, form url.Values, opts ExchangeOptions) (TokenResult, error) {
	ctx = context.WithValue(ctx, firstPartyKey{}, true)
	if opts.OwnerUsername != "" || opts.OwnerPassword != "" {
		ctx = context.WithValue(ctx, ownerCredentialsKey{}, ownerCredentials{username: opts.OwnerUsername, password: opts.OwnerPassword})
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, s.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return TokenResult{}, fosite.ErrServerError.WithWrap(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	ar, resp, err := s.issue(ctx, r, form, form.Get("client_id"), opts.Address)
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

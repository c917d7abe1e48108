package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/quanux/authserver/storage"
)

// Client-credentials tokens carry in their jti the token epochs of the
// client and of its owner at issuance, and whether the token has a record:
//
//	cc.<client epoch>.<owner epoch>.<random id>   recorded
//	st.<client epoch>.<owner epoch>.<random id>   stateless, no record
//
// Revoking all tokens of a client or user advances its epoch, and a token
// whose epochs differ from its client's is inactive. This catches tokens
// that another process issued from a cached client in the moment before
// the change reached it, which the revocation of the records missed.
//
// A stateless token is active while its signature and claims are valid,
// its client is usable, both epochs are unchanged, and its jti is not on
// the revocation list that every process loads from the change feed.
const (
	recordedPrefix  = "cc."
	statelessPrefix = "st."
)

// clientTokenJTI returns a jti for a client-credentials token of client.
func clientTokenJTI(client *storage.Client, stateless bool) string {
	prefix := recordedPrefix
	if stateless {
		prefix = statelessPrefix
	}
	return prefix + strconv.FormatInt(client.TokenEpoch, 10) + "." +
		strconv.FormatInt(client.OwnerTokenEpoch, 10) + "." + newTokenID()
}

// tokenEpochs parses a client-credentials jti; ok is false for any other
// jti, such as those of password grants.
func tokenEpochs(jti string) (clientEpoch, ownerEpoch int64, stateless, ok bool) {
	rest, found := strings.CutPrefix(jti, statelessPrefix)
	stateless = found
	if !found {
		if rest, found = strings.CutPrefix(jti, recordedPrefix); !found {
			return 0, 0, false, false
		}
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[2] == "" {
		return 0, 0, false, false
	}
	clientEpoch, err1 := strconv.ParseInt(parts[0], 10, 64)
	ownerEpoch, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || clientEpoch < 0 || ownerEpoch < 0 {
		return 0, 0, false, false
	}
	return clientEpoch, ownerEpoch, stateless, true
}

// checkEpochs reports whether a client-credentials token with that jti,
// issued for userID, still belongs to client. Other tokens pass.
func checkEpochs(jti, userID string, client *storage.Client) error {
	clientEpoch, ownerEpoch, _, ok := tokenEpochs(jti)
	if !ok {
		return nil
	}
	if client.OwnerID != userID || client.TokenEpoch != clientEpoch || client.OwnerTokenEpoch != ownerEpoch {
		return errInactive("the tokens of the client or its owner were revoked")
	}
	return nil
}

// isStateless reports whether token's payload names a stateless jti. It
// reads the payload without checking the signature, only to choose how
// the token is then checked in full.
func isStateless(token string) bool {
	_, payload, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	payload, _, ok = strings.Cut(payload, ".")
	if !ok || len(payload) > maxBearerBytes {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return false
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return false
	}
	return strings.HasPrefix(claims.JTI, statelessPrefix)
}

// tokenRecorder records issued access tokens, except stateless ones.
type tokenRecorder struct {
	*storage.Store
}

var _ oauth2.AccessTokenStorage = tokenRecorder{}

func (r tokenRecorder) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	if session, ok := req.GetSession().(*Session); ok && session.JWTClaims != nil && strings.HasPrefix(session.JWTClaims.JTI, statelessPrefix) {
		return nil
	}
	err := r.Store.CreateAccessTokenSession(ctx, signature, req)
	if errors.Is(err, storage.ErrNotFound) {
		// The client or user was deleted after this process read it from
		// its cache: a failed authentication, not an outage.
		return fosite.ErrInvalidClient.WithHint("The client or its owner does not exist.").WithWrap(err)
	}
	return err
}

// introspector checks access and refresh tokens for introspection and for
// the server's own endpoints: stateless tokens by their claims, the change
// feed and the client, every other token by its record.
type introspector struct {
	core   *oauth2.CoreValidator
	server *Server
}

func (i *introspector) IntrospectToken(ctx context.Context, token string, use fosite.TokenUse, ar fosite.AccessRequester, scopes []string) (fosite.TokenUse, error) {
	if !isStateless(token) {
		found, err := i.core.IntrospectToken(ctx, token, use, ar, scopes)
		if err != nil || found != fosite.AccessToken {
			return found, err
		}
		session, ok := ar.GetSession().(*Session)
		client, okClient := ar.GetClient().(*storage.Client)
		if !ok || !okClient || session.JWTClaims == nil {
			return "", fosite.ErrServerError.WithDebug("unexpected session or client type")
		}
		if err := checkEpochs(session.JWTClaims.JTI, session.User, client); err != nil {
			return "", err
		}
		return found, nil
	}
	req, err := i.server.statelessRequest(ctx, token, ar.GetSession())
	if err != nil {
		return "", err
	}
	for _, scope := range scopes {
		if scope != "" && !fosite.ExactScopeStrategy(req.GetGrantedScopes(), scope) {
			return "", fosite.ErrInvalidScope.WithHintf("Scope %q was not granted to this token.", scope)
		}
	}
	ar.Merge(req)
	return fosite.AccessToken, nil
}

// errInactive is the introspection error of a stateless token that fails a
// check; like a missing record, it makes the token inactive.
func errInactive(debug string) error {
	return fosite.ErrRequestUnauthorized.WithHint("The token is inactive.").WithDebug(debug)
}

// statelessRequest checks a stateless access token in full and rebuilds
// the request it was issued for, with its claims in session.
func (s *Server) statelessRequest(ctx context.Context, token string, session fosite.Session) (*fosite.Request, error) {
	claims, err := s.tokens.validClaims(ctx, token)
	if err != nil {
		return nil, err
	}
	jti, _ := claims["jti"].(string)
	if _, _, stateless, ok := tokenEpochs(jti); !ok || !stateless {
		return nil, errInactive("malformed stateless jti")
	}
	clientID, _ := claims["client_id"].(string)
	userID, _ := claims["user_id"].(string)
	subject, _ := claims["sub"].(string)
	scope, _ := claims["scope"].(string)
	if clientID == "" || subject != clientID {
		return nil, errInactive("a stateless token must name its client as subject")
	}

	fc, err := s.store.GetClient(ctx, clientID)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, errInactive("client not found or disabled")
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug("client lookup failed")
	}
	client, ok := fc.(*storage.Client)
	if !ok {
		return nil, fosite.ErrServerError.WithDebug("unexpected client type")
	}
	if err := checkEpochs(jti, userID, client); err != nil {
		return nil, err
	}
	revoked, err := s.store.TokenIDRevoked(ctx, jti)
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug("revocation lookup failed")
	}
	if revoked {
		return nil, errInactive("token revoked")
	}

	own, ok := session.(*Session)
	if !ok || own == nil {
		return nil, fosite.ErrServerError.WithDebug("unexpected session type")
	}
	iat, _ := numericClaim(claims["iat"])
	own.JWTClaims.FromMapClaims(claims)
	own.JWTHeader.Extra = map[string]any{"typ": "at+jwt"}
	own.SetExpiresAt(fosite.AccessToken, claimsExpiry(claims))
	own.Subject = subject
	own.User = userID
	own.GrantType = "client_credentials"

	scopes := strings.Fields(scope)
	// fosite's FromMapClaims drops an aud array as decoded from JSON.
	audience := stringList(claims["aud"])
	own.JWTClaims.Audience = audience
	return &fosite.Request{
		ID:                jti,
		RequestedAt:       time.Unix(iat, 0).UTC(),
		Client:            client,
		RequestedScope:    scopes,
		GrantedScope:      scopes,
		RequestedAudience: audience,
		GrantedAudience:   audience,
		Form:              url.Values{},
		Session:           own,
	}, nil
}

// statelessRevoker revokes stateless access tokens (RFC 7009) by putting
// their jti on the revocation list. fosite's revocation handler runs after
// it and finds no record, which is not an error.
type statelessRevoker struct {
	server *Server
}

func (r *statelessRevoker) RevokeToken(ctx context.Context, token string, _ fosite.TokenType, client fosite.Client) error {
	if !isStateless(token) {
		return fosite.ErrUnknownRequest
	}
	claims, err := r.server.tokens.validClaims(ctx, token)
	if err != nil {
		// An expired or invalid token needs no revocation (RFC 7009 §2.2).
		return fosite.ErrUnknownRequest
	}
	if clientID, _ := claims["client_id"].(string); clientID != client.GetID() {
		return fosite.ErrUnauthorizedClient
	}
	// The token stays listed until it expires, plus the leeway with which
	// an expired token is still accepted.
	jti, _ := claims["jti"].(string)
	if err := r.server.store.RevokeTokenID(ctx, jti, claimsExpiry(claims).Add(ClaimsLeeway)); err != nil {
		return fosite.ErrTemporarilyUnavailable.WithWrap(err).WithDebug(fmt.Sprintf("revoke token %s failed", jti))
	}
	return nil
}

// stringList returns a JSON string or array of strings as a slice.
func stringList(v any) []string {
	switch list := v.(type) {
	case string:
		return []string{list}
	case []string:
		return list
	case []any:
		out := make([]string, 0, len(list))
		for _, item := range list {
			if s, ok := item.(string); ok {
				out = append(out, s)
			}
		}
		return out
	default:
		return nil
	}
}

// claimsExpiry returns the exp of claims as a time.
func claimsExpiry(claims jwt.MapClaims) time.Time {
	exp, _ := numericClaim(claims["exp"])
	return time.Unix(exp, 0).UTC()
}

package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// claimsKey is the context key of the claims that Require stores.
type claimsKey struct{}

// NewContext returns a copy of ctx that carries claims, as [Verifier.Require]
// does for the handlers it wraps. Tests of such handlers can use it to
// skip token verification.
func NewContext(ctx context.Context, claims *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, claims)
}

// FromContext returns the claims that [Verifier.Require] stored in the
// request context, and false when there are none.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Require returns middleware that admits a request only with a valid
// bearer token (RFC 6750 §2.1, header only) that has every one of scopes,
// and stores its claims for [FromContext]. It rejects a request with a
// JSON body {"error": …, "message": …} and, following RFC 6750 §3, with:
//   - 401 and a challenge without error code when the request has no
//     Authorization header or uses another scheme,
//   - 400 invalid_request for more than one Authorization header or an
//     empty bearer value,
//   - 401 invalid_token for a token that fails [Verifier.Verify],
//   - 403 insufficient_scope, naming the required scopes, for a valid
//     token that lacks one of them,
//   - 503 when the token could not be checked, such as when the request
//     ended while a JWKS fetch was running.
//
// Require panics when a scope is empty or has a character that RFC 6749
// §3.3 does not allow, because it is called while routes are set up.
func (v *Verifier) Require(scopes ...string) func(http.Handler) http.Handler {
	for _, s := range scopes {
		if s == "" || strings.Contains(s, " ") || !isQuotable(s) {
			panic(fmt.Sprintf("verify: Require: scope %q is not a valid scope token (RFC 6749 §3.3)", s))
		}
	}
	required := strings.Join(scopes, " ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, ok := v.authenticate(w, r)
			if !ok {
				return
			}
			for _, s := range scopes {
				if !claims.HasScope(s) {
					v.cfg.Logger.DebugContext(r.Context(), "token lacks a required scope", "subject", claims.Subject, "client_id", claims.ClientID, "scope", s)
					w.Header().Set("WWW-Authenticate", v.challenge("insufficient_scope", "The access token lacks a required scope.")+`, scope="`+required+`"`)
					writeError(w, http.StatusForbidden, "insufficient_scope", "The access token lacks a required scope: "+required+".")
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), claims)))
		})
	}
}

// authenticate verifies the request's bearer token and writes the error
// response itself when that fails.
func (v *Verifier) authenticate(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	headers := r.Header.Values("Authorization")
	token, hasBearer := bearerToken(headers)
	switch {
	case len(headers) > 1:
		w.Header().Set("WWW-Authenticate", v.challenge("invalid_request", "Send one Authorization header."))
		writeError(w, http.StatusBadRequest, "invalid_request", "The request has more than one Authorization header.")
		return nil, false
	case !hasBearer:
		// RFC 6750 §3.1: a request without a bearer token gets a
		// challenge without an error code.
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+v.cfg.Realm+`"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "An Authorization: Bearer token is required.")
		return nil, false
	case token == "":
		w.Header().Set("WWW-Authenticate", v.challenge("invalid_request", "The bearer token is empty."))
		writeError(w, http.StatusBadRequest, "invalid_request", "The bearer token is empty.")
		return nil, false
	}

	claims, err := v.Verify(r.Context(), token)
	switch {
	case errors.Is(err, ErrExpired):
		v.cfg.Logger.DebugContext(r.Context(), "expired access token rejected", "err", err)
		w.Header().Set("WWW-Authenticate", v.challenge("invalid_token", "The access token expired."))
		writeError(w, http.StatusUnauthorized, "invalid_token", "The access token expired.")
		return nil, false
	case errors.Is(err, ErrInvalidToken):
		v.cfg.Logger.WarnContext(r.Context(), "invalid access token rejected", "err", err)
		w.Header().Set("WWW-Authenticate", v.challenge("invalid_token", "The access token is invalid."))
		writeError(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid.")
		return nil, false
	case err != nil:
		v.cfg.Logger.WarnContext(r.Context(), "access token could not be checked", "err", err)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The access token could not be checked; try again later.")
		return nil, false
	}
	return claims, true
}

// bearerToken returns the token of a single "Authorization: Bearer" header
// and whether there was one. The scheme is case-insensitive
// (RFC 9110 §11.1).
func bearerToken(headers []string) (string, bool) {
	if len(headers) != 1 {
		return "", false
	}
	scheme, token, _ := strings.Cut(headers[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

// challenge returns a Bearer challenge (RFC 6750 §3) with an error code.
// description must be printable ASCII without quotes or backslashes.
func (v *Verifier) challenge(code, description string) string {
	return `Bearer realm="` + v.cfg.Realm + `", error="` + code + `", error_description="` + description + `"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, message})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

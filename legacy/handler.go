package legacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// Backend is the authorization server as the legacy face uses it.
// *oauth.Server implements it.
type Backend interface {
	Exchange(ctx context.Context, form url.Values, opts oauth.ExchangeOptions) (oauth.TokenResult, error)
	AuthenticateBearer(ctx context.Context, token string) (oauth.TokenInfo, error)
	Accounts() *oauth.Accounts
}

// Handler serves the legacy endpoints. It is safe for concurrent use.
type Handler struct {
	backend Backend
	logger  *slog.Logger
}

// New returns a Handler over backend. logger may be nil.
func New(backend Backend, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{backend: backend, logger: logger}
}

// Register adds the legacy endpoints to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/auth/login", h.handleLogin)
	mux.HandleFunc("POST /api/auth/register-client", h.handleRegisterClient)
	mux.HandleFunc("GET /api/auth/clients", h.handleListClients)
	mux.HandleFunc("POST /api/auth/clients/{client_id}/rotate-secret", h.handleRotateSecret)
	mux.HandleFunc("DELETE /api/auth/clients/{client_id}", h.handleDeleteClient)
	mux.HandleFunc("POST /api/auth/logout", h.handleLogout)
}

const invalidCredentialsMessage = "Invalid username, password, or client credentials."

// handleLogin maps the JSON login onto the password grant (username and
// password) or the client-credentials grant (client_id and secret). When a
// username and password come with a client, they must be right and the
// user must own the client.
func (h *Handler) handleLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req loginRequest
	if rerr := decodeJSON(w, r, &req); rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}
	if rerr := req.validate(); rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}

	form, opts, rerr := loginForm(req)
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}
	opts.Address = remoteAddress(r)

	result, err := h.backend.Exchange(ctx, form, opts)
	if err != nil {
		writeGrantError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, loginResponse{
		Token:     result.AccessToken,
		UserID:    result.UserID,
		Scopes:    nonNil(result.Scopes),
		TokenType: "Bearer",
		ExpiresIn: int64(result.ExpiresIn.Seconds()),
	})
}

// loginForm translates a login body into token-request parameters. When
// the body names both a user and a client, the user's credentials go into
// the options: they are never ignored, because they must be right and the
// client must be theirs.
func loginForm(req loginRequest) (url.Values, oauth.ExchangeOptions, *requestError) {
	var opts oauth.ExchangeOptions
	hasUser := req.Username != "" || req.Password != ""
	if hasUser && (req.Username == "" || req.Password == "") {
		return nil, opts, badRequest("Fields \"username\" and \"password\" must be sent together.")
	}

	if req.ClientID == "" {
		if req.ClientSecret != "" {
			return nil, opts, badRequest("Field \"client_secret\" requires \"client_id\".")
		}
		if !hasUser {
			return nil, opts, badRequest("Send \"username\" and \"password\", or \"client_id\" and \"client_secret\".")
		}
		return url.Values{
			"grant_type": {"password"},
			"client_id":  {storage.LegacyClientID},
			"username":   {req.Username},
			"password":   {req.Password},
		}, opts, nil
	}

	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {req.ClientID},
		"client_secret": {req.ClientSecret},
	}
	if hasUser {
		opts.OwnerUsername, opts.OwnerPassword = req.Username, req.Password
	}
	return form, opts, nil
}

// remoteAddress returns the host part of the peer address.
func remoteAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeGrantError turns an RFC 6749 error from the grant into the legacy
// status and body.
func writeGrantError(w http.ResponseWriter, err error) {
	var throttled *oauth.ThrottledError
	if errors.As(err, &throttled) {
		w.Header().Set("Retry-After", strconv.Itoa(throttled.RetryAfterSeconds()))
		writeError(w, http.StatusTooManyRequests, "too_many_requests", fmt.Sprintf("Too many attempts; retry after %d seconds.", throttled.RetryAfterSeconds()))
		return
	}
	if errors.Is(err, oauth.ErrBusy) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The server is busy checking other logins; retry in a second.")
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	switch {
	case errors.Is(rfc, fosite.ErrInvalidClient), errors.Is(rfc, fosite.ErrInvalidGrant),
		errors.Is(rfc, fosite.ErrUnauthorizedClient), errors.Is(rfc, fosite.ErrRequestUnauthorized),
		errors.Is(rfc, fosite.ErrAccessDenied):
		writeError(w, http.StatusUnauthorized, "invalid_credentials", invalidCredentialsMessage)
	case errors.Is(rfc, fosite.ErrInvalidScope):
		writeError(w, http.StatusForbidden, "insufficient_scope", "The requested scopes exceed what the user or client may have.")
	case rfc.CodeField >= 500:
		writeError(w, http.StatusInternalServerError, "server_error", "The login could not be completed; try again later.")
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "The login request is invalid.")
	}
}

// handleRegisterClient creates a confidential client owned by the user
// whose token authorizes the request.
func (h *Handler) handleRegisterClient(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	if info.GrantType != "password" {
		writeBearerError(w, http.StatusForbidden, "insufficient_scope", "forbidden", "Registering a client needs a user token; this is a client token.")
		return
	}

	var req registerRequest
	if rerr := decodeJSON(w, r, &req); rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}
	if strings.TrimSpace(req.ClientName) == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "Field \"client_name\" is required.")
		return
	}
	if len(req.ClientName) > maxClientNameBytes {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("Field \"client_name\" is longer than %d bytes.", maxClientNameBytes))
		return
	}
	reg := oauth.ClientRegistration{OwnerID: info.UserID, Name: req.ClientName, Email: req.Email}
	if req.Scopes != nil {
		reg.Scopes = nonNil(*req.Scopes)
	}

	client, secret, err := h.backend.Accounts().RegisterClient(ctx, reg)
	switch {
	case errors.Is(err, oauth.ErrInvalidInput):
		writeError(w, http.StatusBadRequest, "invalid_request", publicMessage(err))
		return
	case errors.Is(err, oauth.ErrScopeNotAllowed):
		writeError(w, http.StatusForbidden, "insufficient_scope", publicMessage(err))
		return
	case errors.Is(err, storage.ErrNotFound):
		// The owner was deleted or disabled after the token was checked.
		writeBearerError(w, http.StatusUnauthorized, "invalid_token", "invalid_token", "The access token is no longer valid.")
		return
	case err != nil:
		h.logger.ErrorContext(ctx, "client registration failed", "subject", info.UserID, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The client could not be registered; try again later.")
		return
	}

	writeJSON(w, http.StatusOK, registerResponse{
		ClientID:     client.ID,
		ClientSecret: secret,
		Message:      fmt.Sprintf("Client '%s' registered successfully.", client.Name),
		Scopes:       nonNil(client.Scopes),
	})
}

// publicMessage returns the part of a validation error meant for the
// caller: the text after the sentinel's own words.
func publicMessage(err error) string {
	msg := err.Error()
	for _, prefix := range []string{oauth.ErrInvalidInput.Error() + ": ", oauth.ErrScopeNotAllowed.Error() + ": "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	if msg == "" {
		return "The request is invalid."
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

package legacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// Backend is the authorization server as the legacy face uses it.
// *oauth.Server implements it.
type Backend interface {
	Exchange(ctx context.Context, form url.Values, ownerID string) (oauth.TokenResult, error)
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

	form, ownerID, rerr := h.loginForm(ctx, req)
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}

	result, err := h.backend.Exchange(ctx, form, ownerID)
	if err != nil {
		h.writeGrantError(ctx, w, err)
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

// loginForm translates a login body into token-request parameters, and
// returns the id of the user a client must belong to when the body names
// both a user and a client.
func (h *Handler) loginForm(ctx context.Context, req loginRequest) (url.Values, string, *requestError) {
	hasUser := req.Username != "" || req.Password != ""
	if hasUser && (req.Username == "" || req.Password == "") {
		return nil, "", badRequest("Fields \"username\" and \"password\" must be sent together.")
	}

	if req.ClientID == "" {
		if req.ClientSecret != "" {
			return nil, "", badRequest("Field \"client_secret\" requires \"client_id\".")
		}
		if !hasUser {
			return nil, "", badRequest("Send \"username\" and \"password\", or \"client_id\" and \"client_secret\".")
		}
		return url.Values{
			"grant_type": {"password"},
			"client_id":  {storage.LegacyClientID},
			"username":   {req.Username},
			"password":   {req.Password},
		}, "", nil
	}

	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {req.ClientID},
		"client_secret": {req.ClientSecret},
	}
	if !hasUser {
		return form, "", nil
	}

	// A username and password beside a client are never ignored: they must
	// be right, and the client must be theirs.
	user, ok, err := h.backend.Accounts().Authenticate(ctx, req.Username, req.Password)
	if err != nil {
		h.logger.ErrorContext(ctx, "login failed", "client_id", req.ClientID, "err", err)
		return nil, "", &requestError{status: http.StatusInternalServerError, code: "server_error", message: "The login could not be completed; try again later."}
	}
	if !ok {
		h.logger.WarnContext(ctx, "login rejected", "client_id", req.ClientID, "reason", "bad user credentials")
		return nil, "", &requestError{status: http.StatusUnauthorized, code: "invalid_credentials", message: invalidCredentialsMessage}
	}
	return form, user.ID, nil
}

// writeGrantError turns an RFC 6749 error from the grant into the legacy
// status and body.
func (h *Handler) writeGrantError(ctx context.Context, w http.ResponseWriter, err error) {
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

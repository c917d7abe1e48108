package legacy

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// clientInfo is one entry of GET /api/auth/clients. It never carries the
// secret or its hash.
type clientInfo struct {
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name"`
	Email      string    `json:"email"`
	Scopes     []string  `json:"scopes"`
	CreatedAt  time.Time `json:"created_at"`
	Disabled   bool      `json:"disabled"`
}

// rotateResponse is the reply of POST
// /api/auth/clients/{client_id}/rotate-secret; the new secret is shown
// only here.
type rotateResponse struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Message      string `json:"message"`
}

// clientNotFoundMessage is the one message returned for another user's
// client, an unknown id and the built-in client, so the response never
// reveals whether a client id exists.
const clientNotFoundMessage = "No client with this id is registered to you."

// authenticateUser checks the bearer token like [Handler.authenticate] and
// also requires a token that acts for a user: a client-credentials token
// gets 403, because these endpoints manage the user's own account.
func (h *Handler) authenticateUser(w http.ResponseWriter, r *http.Request, action string) (oauth.TokenInfo, bool) {
	info, ok := h.authenticate(w, r)
	if !ok {
		return oauth.TokenInfo{}, false
	}
	if info.GrantType != "password" {
		writeBearerError(w, http.StatusForbidden, "insufficient_scope", "forbidden", action+" needs a user token; this is a client token.")
		return oauth.TokenInfo{}, false
	}
	return info, true
}

// handleListClients returns the clients the caller owns, oldest first.
func (h *Handler) handleListClients(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, ok := h.authenticateUser(w, r, "Listing clients")
	if !ok {
		return
	}

	clients, err := h.backend.Accounts().ClientsOf(ctx, info.UserID)
	if err != nil {
		h.logger.ErrorContext(ctx, "listing clients failed", "subject", info.UserID, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The clients could not be listed; try again later.")
		return
	}

	out := make([]clientInfo, 0, len(clients))
	for _, c := range clients {
		out = append(out, clientInfo{
			ClientID:   c.ID,
			ClientName: c.Name,
			Email:      c.Email,
			Scopes:     nonNil(c.Scopes),
			CreatedAt:  c.CreatedAt.UTC().Truncate(time.Second),
			Disabled:   c.Disabled,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRotateSecret gives one of the caller's clients a new secret. The
// old secret and the client's tokens stop working at once.
func (h *Handler) handleRotateSecret(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, ok := h.authenticateUser(w, r, "Rotating a client secret")
	if !ok {
		return
	}
	c, ok := h.ownedClient(w, r, info)
	if !ok {
		return
	}

	secret, err := h.backend.Accounts().RotateSecret(ctx, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		// Deleted after the ownership check.
		writeError(w, http.StatusNotFound, "not_found", clientNotFoundMessage)
		return
	}
	if err != nil {
		h.logger.ErrorContext(ctx, "client secret rotation failed", "client_id", c.ID, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The secret could not be rotated; try again later.")
		return
	}

	writeJSON(w, http.StatusOK, rotateResponse{
		ClientID:     c.ID,
		ClientSecret: secret,
		Message:      fmt.Sprintf("Client '%s' has a new secret. The old secret and the client's tokens no longer work.", c.Name),
	})
}

// handleDeleteClient deletes one of the caller's clients and its tokens.
func (h *Handler) handleDeleteClient(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, ok := h.authenticateUser(w, r, "Deleting a client")
	if !ok {
		return
	}
	c, ok := h.ownedClient(w, r, info)
	if !ok {
		return
	}

	err := h.backend.Accounts().DeleteClient(ctx, c.ID)
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", clientNotFoundMessage)
		return
	}
	if err != nil {
		h.logger.ErrorContext(ctx, "client deletion failed", "client_id", c.ID, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The client could not be deleted; try again later.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ownedClient loads the client named in the path if the caller owns it,
// and writes the 404 itself otherwise.
func (h *Handler) ownedClient(w http.ResponseWriter, r *http.Request, info oauth.TokenInfo) (*storage.Client, bool) {
	ctx := r.Context()
	id := r.PathValue("client_id")
	if id == "" || len(id) > maxClientIDBytes {
		writeError(w, http.StatusNotFound, "not_found", clientNotFoundMessage)
		return nil, false
	}

	c, err := h.backend.Accounts().OwnedClient(ctx, info.UserID, id)
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", clientNotFoundMessage)
		return nil, false
	}
	if err != nil {
		h.logger.ErrorContext(ctx, "client lookup failed", "client_id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The client could not be read; try again later.")
		return nil, false
	}
	return c, true
}

// handleLogout revokes the presented token and every token of its family:
// for a token from a refresh-capable client, the refresh token and the
// access tokens issued from it. A second logout with the same token gets
// 401, because the token is then revoked.
func (h *Handler) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, ok := h.authenticateUser(w, r, "Logging out")
	if !ok {
		return
	}

	if err := h.backend.Accounts().Logout(ctx, info); err != nil {
		h.logger.ErrorContext(ctx, "logout failed", "subject", info.UserID, "client_id", info.ClientID, "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The token could not be revoked; try again later.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

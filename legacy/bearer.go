package legacy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/quanux/authserver/oauth"
)

// maxBearerLength bounds the bearer token read from the header; the
// server's own access tokens are far shorter.
const maxBearerLength = 8 << 10

// authenticate checks the request's bearer token (RFC 6750 §2.1) and
// writes the 401 itself when it fails.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (oauth.TokenInfo, bool) {
	token, err := bearerToken(r.Header.Values("Authorization"))
	if errors.Is(err, errNoToken) {
		// RFC 6750 §3.1: a request without credentials gets no error code.
		w.Header().Set("WWW-Authenticate", `Bearer realm="quanux"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "An Authorization: Bearer token is required.")
		return oauth.TokenInfo{}, false
	}
	if err != nil {
		writeBearerError(w, http.StatusUnauthorized, "invalid_request", "invalid_token", "The Authorization header is malformed.")
		return oauth.TokenInfo{}, false
	}

	info, err := h.backend.AuthenticateBearer(r.Context(), token)
	if errors.Is(err, oauth.ErrInvalidToken) {
		writeBearerError(w, http.StatusUnauthorized, "invalid_token", "invalid_token", "The access token is invalid, expired or revoked.")
		return oauth.TokenInfo{}, false
	}
	if err != nil {
		h.logger.ErrorContext(r.Context(), "bearer token check failed", "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The token could not be checked; try again later.")
		return oauth.TokenInfo{}, false
	}
	return info, true
}

var errNoToken = errors.New("no bearer token")

// bearerToken extracts the token of a single "Authorization: Bearer"
// header. The scheme is case-insensitive (RFC 9110 §11.1); the token must
// use only the token68 characters of RFC 6750 §2.1.
func bearerToken(headers []string) (string, error) {
	if len(headers) == 0 {
		return "", errNoToken
	}
	if len(headers) > 1 {
		return "", errors.New("more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(headers[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New("authorization scheme is not Bearer")
	}
	if token == "" || len(token) > maxBearerLength {
		return "", fmt.Errorf("bearer token length %d out of range", len(token))
	}
	for i := 0; i < len(token); i++ {
		if !isToken68(token[i]) {
			return "", errors.New("bearer token has a character outside token68")
		}
	}
	return token, nil
}

func isToken68(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/=", c) >= 0
}

// writeBearerError writes an RFC 6750 §3 challenge and the legacy body.
func writeBearerError(w http.ResponseWriter, status int, challengeCode, bodyCode, message string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="quanux", error=%q, error_description=%q`, challengeCode, message))
	writeError(w, status, bodyCode, message)
}

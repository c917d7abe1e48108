package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/quanux/authserver/storage"
)

// userinfoResponse is the body of a successful userinfo request. sub is
// the user id, as in the access token. scope and scopes both list the
// token's granted scopes: scope is space-separated like the token's scope
// claim, and scopes is an array.
type userinfoResponse struct {
	Subject  string   `json:"sub"`
	Username string   `json:"username"`
	Scope    string   `json:"scope"`
	Scopes   []string `json:"scopes"`
}

// handleUserinfo serves the userinfo endpoint (OpenID Connect Core §5.3)
// for an access token of this server sent as a bearer token in the
// Authorization header (RFC 6750 §2.1). It serves only tokens that act for
// a user, because OpenID Connect defines userinfo as claims about the
// end-user and a client-credentials token has none. Such a token gets 403
// with error="insufficient_scope". The openid scope is not required,
// because this server issues its own scopes and no ID tokens.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token, err := bearerFromHeaders(r.Header.Values("Authorization"))
	if errors.Is(err, errNoBearer) {
		// RFC 6750 §3.1: a request without credentials gets no error code.
		w.Header().Set("WWW-Authenticate", `Bearer realm="quanux"`)
		writeUserinfoError(w, http.StatusUnauthorized, "invalid_token", "An Authorization: Bearer access token is required.")
		return
	}
	if err != nil {
		writeBearerChallenge(w, http.StatusBadRequest, "invalid_request", "The Authorization header is malformed.")
		return
	}

	info, err := s.AuthenticateBearer(ctx, token)
	if errors.Is(err, ErrInvalidToken) {
		writeBearerChallenge(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.")
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "userinfo token check failed", "err", err)
		writeUserinfoError(w, http.StatusInternalServerError, "server_error", "The token could not be checked; try again later.")
		return
	}
	if info.GrantType != "password" || info.UserID == "" {
		writeBearerChallenge(w, http.StatusForbidden, "insufficient_scope", "Userinfo needs a token issued to a user; this is a client-credentials token.")
		return
	}

	u, err := s.store.UserByID(ctx, info.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		// The user was deleted after the token was checked.
		writeBearerChallenge(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.")
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "userinfo lookup failed", "subject", info.UserID, "err", err)
		writeUserinfoError(w, http.StatusInternalServerError, "server_error", "The user could not be read; try again later.")
		return
	}

	scopes := info.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	writeUserinfoJSON(w, http.StatusOK, userinfoResponse{
		Subject:  u.ID,
		Username: u.Username,
		Scope:    strings.Join(scopes, " "),
		Scopes:   scopes,
	})
}

var errNoBearer = errors.New("no bearer token")

// bearerFromHeaders returns the token of a single "Authorization: Bearer"
// header. It returns errNoBearer when no header uses the Bearer scheme,
// which RFC 6750 §3.1 treats like no credentials at all. The scheme is
// case-insensitive (RFC 9110 §11.1), and the token must use only the
// token68 characters of RFC 6750 §2.1.
func bearerFromHeaders(headers []string) (string, error) {
	if len(headers) == 0 {
		return "", errNoBearer
	}
	if len(headers) > 1 {
		return "", errors.New("more than one Authorization header")
	}
	scheme, token, _ := strings.Cut(headers[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNoBearer
	}
	if token == "" || len(token) > maxBearerBytes {
		return "", fmt.Errorf("bearer token length %d out of range", len(token))
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		isAlnum := ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
		if !isAlnum && !strings.ContainsRune("-._~+/=", rune(c)) {
			return "", errors.New("bearer token has a character outside token68")
		}
	}
	return token, nil
}

// writeBearerChallenge writes an RFC 6750 §3 challenge with its error code
// and the same code and description as a JSON body.
func writeBearerChallenge(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="quanux", error=%q, error_description=%q`, code, description))
	writeUserinfoError(w, status, code, description)
}

func writeUserinfoError(w http.ResponseWriter, status int, code, description string) {
	writeUserinfoJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeUserinfoJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

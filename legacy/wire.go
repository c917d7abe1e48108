package legacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
)

// maxBodyBytes bounds every legacy request body.
const maxBodyBytes = 64 << 10

// loginRequest is the body of POST /api/auth/login.
type loginRequest struct {
	Username     string `json:"username"`
	Password     string `json:"password"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// LogValue keeps the password and client secret out of logs.
func (r loginRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", r.Username), slog.String("client_id", r.ClientID))
}

// loginResponse is the reply of a successful login. token, user_id and
// scopes are the documented contract; token_type and expires_in are
// additions the contract allows.
type loginResponse struct {
	Token     string   `json:"token"`
	UserID    string   `json:"user_id"`
	Scopes    []string `json:"scopes"`
	TokenType string   `json:"token_type"`
	ExpiresIn int64    `json:"expires_in"`
}

// registerRequest is the body of POST /api/auth/register-client. Scopes is
// optional and narrows the client to a subset of the owner's scopes.
type registerRequest struct {
	ClientName string    `json:"client_name"`
	Email      string    `json:"email"`
	Scopes     *[]string `json:"scopes"`
}

// registerResponse is the reply of a successful registration; the secret
// is shown only here.
type registerResponse struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	Message      string   `json:"message"`
	Scopes       []string `json:"scopes"`
}

// errorResponse is every legacy error body.
type errorResponse struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// requestError is a client mistake with the status and body it earns.
type requestError struct {
	status  int
	code    string
	message string
}

func (e *requestError) Error() string { return e.message }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: "invalid_request", message: fmt.Sprintf(format, args...)}
}

// decodeJSON reads one JSON object from r's body into v. It enforces the
// media type and the size limit and rejects trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *requestError {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return &requestError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json."}
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &requestError{status: http.StatusRequestEntityTooLarge, code: "request_too_large", message: fmt.Sprintf("The request body exceeds %d bytes.", maxBodyBytes)}
	}
	if err != nil {
		return badRequest("The request body could not be read.")
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return badRequest("Field %q must be a %s.", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String()))
		}
		return badRequest("The request body is not a valid JSON object.")
	}
	if dec.More() {
		return badRequest("The request body has data after the JSON object.")
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "slice", "ptr":
		return "array of strings"
	default:
		return kind
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own wire types reach here, and they always marshal.
		http.Error(w, `{"error":"server_error","message":"The response could not be encoded."}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorResponse{Error: code, Message: message})
}

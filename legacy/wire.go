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
	"strings"
	"unicode/utf8"

	"github.com/quanux/authserver/oauth"
)

// maxBodyBytes bounds every legacy request body.
const maxBodyBytes = 64 << 10

// Maximum lengths of legacy fields, in bytes. They are far above any real
// value and keep oversized input from reaching the database or a hash.
const (
	maxUsernameBytes     = 256
	maxClientIDBytes     = 128
	maxClientSecretBytes = 256
	maxClientNameBytes   = 400
)

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

// validate checks field sizes.
func (r loginRequest) validate() *requestError {
	switch {
	case len(r.Username) > maxUsernameBytes:
		return badRequest("Field \"username\" is longer than %d bytes.", maxUsernameBytes)
	case len(r.Password) > oauth.MaxPasswordLength:
		return badRequest("Field \"password\" is longer than %d bytes.", oauth.MaxPasswordLength)
	case len(r.ClientID) > maxClientIDBytes:
		return badRequest("Field \"client_id\" is longer than %d bytes.", maxClientIDBytes)
	case len(r.ClientSecret) > maxClientSecretBytes:
		return badRequest("Field \"client_secret\" is longer than %d bytes.", maxClientSecretBytes)
	}
	return nil
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

	if !utf8.Valid(body) {
		return badRequest("The request body is not valid UTF-8.")
	}
	if problem := checkJSONStructure(body); problem != "" {
		return badRequest("%s", problem)
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

// maxJSONDepth bounds nesting; the legacy bodies are flat objects.
const maxJSONDepth = 8

// checkJSONStructure walks body token by token and returns a message for
// what encoding/json would silently accept: a key repeated in one object
// (the last would win, so two parsers could disagree about a credential),
// NUL characters in strings, and deep nesting. It returns "" for a body
// without these problems.
func checkJSONStructure(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		keys   map[string]bool
		isObj  bool
		expKey bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			return "The request body is not a valid JSON object."
		}

		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) > 0 && stack[len(stack)-1].isObj {
					stack[len(stack)-1].expKey = true
				}
				if len(stack) >= maxJSONDepth {
					return "The request body is nested too deeply."
				}
				stack = append(stack, frame{keys: map[string]bool{}, isObj: d == '{', expKey: d == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		}

		s, isString := tok.(string)
		if isString && strings.ContainsRune(s, 0) {
			return "The request body contains a NUL character."
		}
		if len(stack) == 0 {
			continue
		}
		top := &stack[len(stack)-1]
		if !top.isObj {
			continue
		}
		if top.expKey {
			if top.keys[s] {
				return fmt.Sprintf("Field %q appears more than once.", truncateText(s, 40))
			}
			top.keys[s] = true
			top.expKey = false
			continue
		}
		top.expKey = true
	}
}

// truncateText shortens s to n characters for an error message.
func truncateText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
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

package oauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxFormBytes bounds the body of the token, introspection and revocation
// endpoints. Legitimate requests are well under 1 KiB plus one token.
const maxFormBytes = 16 << 10

// formRequest is a request body of a form endpoint, parsed and checked
// before fosite reads it.
type formRequest struct {
	form url.Values
	// clientID is the client the request authenticates as, from the
	// Basic header or the body; it is not yet verified.
	clientID string
}

type formRequestKey struct{}

// formError is a rejected form request: an RFC 6749 §5.2 error with its
// HTTP status.
type formError struct {
	status      int
	code        string
	description string
}

func (e *formError) Error() string { return e.code + ": " + e.description }

func (e *formError) write(w http.ResponseWriter) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="quanux"`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": e.code, "error_description": e.description})
}

func invalidRequest(format string, args ...any) *formError {
	return &formError{status: http.StatusBadRequest, code: "invalid_request", description: fmt.Sprintf(format, args...)}
}

// withForm checks a form endpoint's request strictly before next runs:
// body size, media type, one value per parameter (RFC 6749 §3.1), no
// parameters in the query string, valid UTF-8 without NUL, and at most one
// client authentication method (RFC 6749 §2.3). The checked body is put
// back for fosite to parse.
func (s *Server) withForm(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fr, ferr := readForm(w, r)
		if ferr != nil {
			s.logger.WarnContext(r.Context(), "request rejected", "path", r.URL.Path, "error", ferr.code, "err", ferr.description)
			ferr.write(w)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), formRequestKey{}, fr)))
	}
}

func readForm(w http.ResponseWriter, r *http.Request) (formRequest, *formError) {
	if r.URL.RawQuery != "" {
		return formRequest{}, invalidRequest("Parameters must be sent in the request body, not in the URL.")
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return formRequest{}, invalidRequest("Content-Type must be application/x-www-form-urlencoded.")
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return formRequest{}, &formError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", description: fmt.Sprintf("The request body exceeds %d bytes.", maxFormBytes)}
	}
	if err != nil {
		return formRequest{}, invalidRequest("The request body could not be read.")
	}

	form, ferr := parseStrictForm(string(body))
	if ferr != nil {
		return formRequest{}, ferr
	}

	fr := formRequest{form: form, clientID: form.Get("client_id")}
	if headers := r.Header.Values("Authorization"); len(headers) > 0 {
		id, _, err := parseBasic(headers)
		if err != nil {
			return formRequest{}, &formError{status: http.StatusUnauthorized, code: "invalid_client", description: "The Authorization header is not valid HTTP Basic client authentication."}
		}
		if form.Has("client_secret") || form.Has("client_assertion") {
			return formRequest{}, invalidRequest("Use one client authentication method: the Authorization header or client_secret in the body, not both.")
		}
		if form.Has("client_id") && form.Get("client_id") != id {
			return formRequest{}, invalidRequest("client_id in the body differs from the client in the Authorization header.")
		}
		fr.clientID = id
	}

	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return fr, nil
}

// parseStrictForm parses an application/x-www-form-urlencoded body and
// rejects repeated parameters, invalid encoding, invalid UTF-8 and NUL.
func parseStrictForm(body string) (url.Values, *formError) {
	form := url.Values{}
	for body != "" {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(rawKey)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil {
			return nil, invalidRequest("The request body is not valid form encoding.")
		}
		if !cleanText(key) || !cleanText(value) {
			return nil, invalidRequest("Parameter %q is not valid UTF-8 text without NUL.", truncate(key, 40))
		}
		if form.Has(key) {
			return nil, invalidRequest("Parameter %q is repeated; each parameter may appear once.", truncate(key, 40))
		}
		form.Set(key, value)
	}
	return form, nil
}

func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// truncate shortens s to n characters for an error message.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		return "(invalid UTF-8)"
	}
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// errNotBasic is returned by parseBasic for a header of another scheme.
var errNotBasic = errors.New("authorization scheme is not Basic")

// parseBasic reads client credentials from one Authorization header: HTTP
// Basic (RFC 7617) whose user id and password were each form-encoded by
// the client (RFC 6749 §2.3.1), so each is form-decoded exactly once here.
func parseBasic(headers []string) (id, secret string, err error) {
	if len(headers) != 1 {
		return "", "", errors.New("expected exactly one Authorization header")
	}
	scheme, encoded, ok := strings.Cut(headers[0], " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errNotBasic
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(encoded)
	if err != nil {
		return "", "", fmt.Errorf("decode Basic credentials: %w", err)
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("basic credentials have no colon")
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", fmt.Errorf("form-decode client id: %w", err)
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", fmt.Errorf("form-decode client secret: %w", err)
	}
	if id == "" || !cleanText(id) || !cleanText(secret) {
		return "", "", errors.New("basic credentials are empty or not valid UTF-8 text")
	}
	return id, secret, nil
}

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/quanux/authserver/oauth"
)

// maxBodyBytes bounds every request body. Handlers set tighter limits of
// their own and respond 413 past them.
const maxBodyBytes = 64 << 10

// withMiddleware adds, outermost first: panic recovery, security headers,
// a body-size limit, JSON bodies for unknown routes, and one access-log
// line per request. The log names the path only, never the query string
// or headers, which may carry credentials.
func withMiddleware(mux *http.ServeMux, logger *slog.Logger, metrics *httpMetrics, https bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		requestID := randomHexID()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		ctx := context.WithValue(r.Context(), requestIDKey{}, requestID)
		ctx = context.WithValue(ctx, clientIPKey{}, clientIP(r))
		ctx = oauth.WithRequestInfo(ctx, oauth.RequestInfo{Address: clientIP(r), UserAgent: r.UserAgent()})

		h := rec.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Request-Id", requestID)
		// Responses carry tokens and credentials unless a handler sets
		// its own caching, as discovery and the JWKS do.
		h.Set("Cache-Control", "no-store")
		if https {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}

		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				logger.ErrorContext(ctx, "handler panicked", "path", r.URL.Path, "panic", v)
				if !rec.wroteHeader {
					writeJSONError(rec, http.StatusInternalServerError, "server_error", "The server failed to handle the request.")
				}
			}
			logger.LogAttrs(ctx, slog.LevelDebug, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status),
				slog.Duration("duration", time.Since(start)),
			)
		}()

		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(rec, r.Body, maxBodyBytes)
		_, pattern := mux.Handler(r)
		defer func() { metrics.observe(pattern, rec.status, time.Since(start)) }()
		if pattern == "" {
			writeRouteError(rec, r, mux)
			return
		}
		mux.ServeHTTP(rec, r)
	})
}

// writeRouteError responds to a request that no route matches with the
// status the mux would give (404, or 405 with its Allow header) and a JSON
// body.
func writeRouteError(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	probe := &headerProbe{header: http.Header{}}
	handler, _ := mux.Handler(r)
	handler.ServeHTTP(probe, r)
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	switch probe.status {
	case http.StatusMethodNotAllowed:
		writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The method is not allowed on this path.")
	default:
		writeJSONError(w, http.StatusNotFound, "not_found", "No endpoint at this path.")
	}
}

// headerProbe records the status and headers a handler writes and drops
// its body.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(status int)      { p.status = status }

func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": message})
}

type requestIDKey struct{}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status = code
		s.wroteHeader = true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func randomHexID() string {
	return hex.EncodeToString(randomBytes(8))
}

type clientIPKey struct{}

// contextHandler adds the request id and client address that the
// middleware put in the context to every record logged with that context,
// so call sites need not repeat them.
type contextHandler struct {
	slog.Handler
}

func (h contextHandler) Handle(ctx context.Context, rec slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		rec.AddAttrs(slog.String("request_id", id))
	}
	if ip, ok := ctx.Value(clientIPKey{}).(string); ok {
		rec.AddAttrs(slog.String("client_ip", ip))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

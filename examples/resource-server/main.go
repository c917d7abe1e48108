package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/quanux/authserver/verify"
)

// maxBodySize bounds the request body of the forge endpoint.
const maxBodySize = 64 << 10

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], logger, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		logger.Error("resource server failed", "err", err)
		os.Exit(1)
	}
}

// run parses args, starts the verifier and serves until ctx ends. If ready
// is not nil, the bound address is sent on it once the listener is open.
func run(ctx context.Context, args []string, logger *slog.Logger, ready chan<- net.Addr) error {
	flags := flag.NewFlagSet("resource-server", flag.ContinueOnError)
	issuer := flags.String("issuer", "http://localhost:8080", "issuer URL of the authorization server, whose discovery document names the JWKS")
	addr := flags.String("addr", ":9090", "listen address")
	audience := flags.String("audience", "quanux-api", "value the aud claim of accepted tokens must contain")
	jwksURL := flags.String("jwks-url", "", "JWKS URL (default: the jwks_uri of the issuer's discovery document)")
	if err := flags.Parse(args); err != nil {
		return err
	}

	verifier, err := verify.New(ctx, verify.Config{
		Issuer:   *issuer,
		JWKSURL:  *jwksURL,
		Audience: *audience,
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	defer verifier.Close()

	mux := http.NewServeMux()
	mux.Handle("POST /api/foundry/forge", verifier.Require("forge:write")(http.HandlerFunc(handleForge)))

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	server := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- server.Serve(ln) }()
	logger.InfoContext(ctx, "resource server started", "addr", ln.Addr().String(), "issuer", *issuer)
	if ready != nil {
		ready <- ln.Addr()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.InfoContext(ctx, "resource server stopped")
	return nil
}

// forgeRequest is the body of POST /api/foundry/forge.
type forgeRequest struct {
	ComponentType string `json:"component_type"`
	Name          string `json:"name"`
	TargetLang    string `json:"target_lang"`
}

// forgeResponse echoes the request with the caller's identity.
type forgeResponse struct {
	Subject       string `json:"subject"`
	UserID        string `json:"user_id,omitempty"`
	ClientID      string `json:"client_id"`
	ComponentType string `json:"component_type"`
	Name          string `json:"name"`
	TargetLang    string `json:"target_lang"`
}

// handleForge decodes and checks the request body and responds with the
// caller's subject. verify.Verifier.Require has admitted the caller.
func handleForge(w http.ResponseWriter, r *http.Request) {
	claims, ok := verify.FromContext(r.Context())
	if !ok {
		writeError(w, http.StatusInternalServerError, "server_error", "The request reached the handler without verified claims.")
		return
	}

	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as application/json.")
		return
	}
	req, status, message := decodeForgeRequest(w, r)
	if status != 0 {
		writeError(w, status, "invalid_request", message)
		return
	}

	writeJSON(w, http.StatusOK, forgeResponse{
		Subject:       claims.Subject,
		UserID:        claims.UserID,
		ClientID:      claims.ClientID,
		ComponentType: req.ComponentType,
		Name:          req.Name,
		TargetLang:    req.TargetLang,
	})
}

// decodeForgeRequest reads one JSON object of at most maxBodySize bytes
// and checks its fields. On failure it returns the status and message of
// the error response.
func decodeForgeRequest(w http.ResponseWriter, r *http.Request) (forgeRequest, int, string) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodySize))
	var req forgeRequest
	if err := dec.Decode(&req); err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return req, http.StatusRequestEntityTooLarge, fmt.Sprintf("The body is larger than %d bytes.", maxBodySize)
		}
		return req, http.StatusBadRequest, "The body is not a valid JSON object with string fields."
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, http.StatusBadRequest, "The body has data after the JSON object."
	}

	for _, f := range []struct {
		name, value string
		maxLength   int
	}{
		{"component_type", req.ComponentType, 64},
		{"name", req.Name, 100},
		{"target_lang", req.TargetLang, 32},
	} {
		if f.value == "" {
			return req, http.StatusBadRequest, fmt.Sprintf("The field %s is required.", f.name)
		}
		if utf8.RuneCountInString(f.value) > f.maxLength {
			return req, http.StatusBadRequest, fmt.Sprintf("The field %s is longer than %d characters.", f.name, f.maxLength)
		}
		if !printable(f.value) {
			return req, http.StatusBadRequest, fmt.Sprintf("The field %s has control characters.", f.name)
		}
	}
	return req, 0, ""
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"error": code, "message": message})
}

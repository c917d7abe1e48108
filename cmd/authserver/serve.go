package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/legacy"
	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

func newServeCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the token server",
		Long: "Run the token server: the legacy JSON API, the OAuth 2.0 endpoints, discovery, JWKS and health checks on one listener. " +
			"It migrates the database and creates the first signing key on first start, and shuts down gracefully on SIGTERM or SIGINT.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.serve(cmd.Context(), nil)
		},
	}
	o.addServeFlags(cmd.Flags())
	return cmd
}

// app is the assembled server.
type app struct {
	store    *storage.Store
	keys     *keys.Manager
	oauth    *oauth.Server
	auditor  *oauth.Auditor
	registry *prometheus.Registry
	handler  http.Handler
}

// newApp opens the database and keys and builds the HTTP handler.
func (o *options) newApp(ctx context.Context) (*app, error) {
	if err := o.loadSecret(ctx); err != nil {
		return nil, err
	}
	store, err := o.openStore(ctx)
	if err != nil {
		return nil, err
	}
	km, err := o.openKeys(ctx, store, o.signingAlg)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	if o.syncEvery > 0 {
		store.SetSyncInterval(o.syncEvery)
		// Load the revocations before the first request. On failure the
		// store reads them from the database until a sync succeeds.
		if err := store.SyncChanges(ctx); err != nil {
			o.logger.ErrorContext(ctx, "reading the change feed failed; lookups go to the database until it succeeds", "err", err)
		}
	}
	auditor := oauth.NewAuditor(store, o.logger)
	reg := newRegistry(store, km, auditor)
	grantMetrics, err := oauth.NewMetrics(reg)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	srv, err := oauth.New(oauth.Config{
		Issuer:          o.issuer,
		Audience:        o.audience,
		AccessTokenTTL:  o.accessTokenTTL,
		RefreshTokenTTL: o.refreshTokenTTL,
		Secret:          o.secret,
		Logger:          o.logger,
		Guard:           o.guardConfig(),
		Auditor:         auditor,
		Metrics:         grantMetrics,

		StatelessClientTokens: o.statelessTokens,
	}, store, km)
	if err != nil {
		_ = store.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	srv.Register(mux)
	legacy.New(srv, o.logger).Register(mux)
	mux.HandleFunc("GET /health/alive", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			o.logger.ErrorContext(ctx, "readiness check failed", "err", err)
			writeHealth(w, http.StatusServiceUnavailable, "database unavailable")
			return
		}
		writeHealth(w, http.StatusOK, "ok")
	})

	if o.metricsAddr == "" {
		mux.Handle("GET /metrics", metricsHandler(reg))
	}
	handler := withMiddleware(mux, o.logger, newHTTPMetrics(reg), strings.HasPrefix(o.issuer, "https://"))
	return &app{store: store, keys: km, oauth: srv, auditor: auditor, registry: reg, handler: handler}, nil
}

// serveMetrics serves /metrics on its own listener, such as an address
// only the monitoring network reaches.
func (o *options) serveMetrics(ctx context.Context, reg *prometheus.Registry) (*http.Server, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", o.metricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.logger.ErrorContext(ctx, "metrics listener failed", "err", err)
		}
	}()
	o.logger.InfoContext(ctx, "metrics listener started", "addr", ln.Addr().String())
	return srv, nil
}

// closeStore closes the database at the end of a command; a failure there
// loses nothing, so it is only logged.
func closeStore(store *storage.Store, logger *slog.Logger) {
	if err := store.Close(); err != nil {
		logger.Warn("closing the database failed", "err", err)
	}
}

func writeHealth(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "{\"status\":%q}\n", message)
}

// serve runs the server until ctx is cancelled. If ready is not nil, the
// bound address is sent on it once the listener is open.
func (o *options) serve(ctx context.Context, ready chan<- net.Addr) error {
	a, err := o.newApp(ctx)
	if err != nil {
		return err
	}
	defer closeStore(a.store, o.logger)
	if !a.store.IsPostgres() {
		raiseMaxProcs(o.logger)
	}
	// Start-up leaves garbage behind, above all the 19 MiB of the argon2id
	// hash that unknown usernames are checked against. Returning it now
	// keeps a server that serves no password logins at its working size.
	debug.FreeOSMemory()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	httpServer := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(o.logger.Handler(), slog.LevelWarn),
	}

	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	defer func() {
		// Stop the background work after the last request, so the audit
		// trail gets every event.
		stopBackground()
		background.Wait()
	}()
	background.Go(func() { o.reloadKeys(bg, a.keys, a.auditor) })
	background.Go(func() { a.auditor.Run(bg) })
	background.Go(func() { o.cleanUp(bg, a.store) })
	background.Go(func() { o.syncChanges(bg, a.store) })

	if o.metricsAddr != "" {
		metricsServer, err := o.serveMetrics(ctx, a.registry)
		if err != nil {
			return err
		}
		defer func() { _ = metricsServer.Close() }()
	}

	errc := make(chan error, 1)
	go func() { errc <- httpServer.Serve(ln) }()
	o.logger.InfoContext(ctx, "server started", "addr", ln.Addr().String(), "settings", o)
	if ready != nil {
		ready <- ln.Addr()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	o.logger.Info("shutting down", "timeout", o.shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	o.logger.Info("server stopped")
	return nil
}

// minMaxProcs is the smallest GOMAXPROCS serve runs with. A goroutine
// returning from a SQLite call needs a P again, and with a single P it
// waits behind every runnable request handler while it still holds the
// database's write connection, so every other write waits too. On one
// pinned core, runs of 6,000 ES256 tokens at concurrency 32 had a p99
// latency of 48 to 99 ms with one P and about 30 ms with two
// (docs/benchmarks.md).
const minMaxProcs = 2

// raiseMaxProcs sets GOMAXPROCS to minMaxProcs when Go chose fewer, as it
// does on one CPU or under a CPU quota below two. A GOMAXPROCS variable
// set by the operator is left alone. serve calls it after newApp, so the
// password hasher has sized its slots, and its memory, by the CPUs Go
// chose.
func raiseMaxProcs(logger *slog.Logger) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set || runtime.GOMAXPROCS(0) >= minMaxProcs {
		return
	}
	previous := runtime.GOMAXPROCS(minMaxProcs)
	logger.Info("GOMAXPROCS raised so SQLite calls do not stall request handlers", "from", previous, "to", minMaxProcs)
}

// reloadKeys rereads the signing keys on an interval, so a rotation made by
// an admin command or another replica takes effect here, and rotates the
// key when automatic rotation is on and the active key is due.
func (o *options) reloadKeys(ctx context.Context, km *keys.Manager, auditor *oauth.Auditor) {
	if o.keysReloadEvery <= 0 {
		return
	}
	t := time.NewTicker(o.keysReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := km.Reload(ctx); err != nil {
			if ctx.Err() == nil {
				o.logger.ErrorContext(ctx, "signing key reload failed", "err", err)
			}
			continue
		}
		if o.keysRotateEvery > 0 && activeKeyDue(km.Keys(), o.keysRotateEvery, time.Now()) {
			// Replicas that find the key due at once all try; the store's
			// compare step lets one rotation through and the others adopt it.
			info, err := km.Rotate(ctx)
			if err != nil {
				if ctx.Err() == nil {
					o.logger.ErrorContext(ctx, "automatic key rotation failed", "err", err)
				}
				continue
			}
			auditor.Record(ctx, storage.AuditEvent{Type: oauth.EventKeyRotated, Detail: "kid=" + info.KeyID + " automatic"})
		}
	}
}

// syncChanges reads the change feed every sync interval, so client
// changes and token revocations made by other processes take effect here.
// A failure is logged once, and its end once.
func (o *options) syncChanges(ctx context.Context, store *storage.Store) {
	if o.syncEvery <= 0 {
		return
	}
	t := time.NewTicker(o.syncEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := store.SyncChanges(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			o.logger.ErrorContext(ctx, "reading the change feed failed; lookups go to the database until it succeeds", "err", err)
		case err == nil && failing:
			failing = false
			o.logger.InfoContext(ctx, "reading the change feed succeeded again")
		}
	}
}

// cleanupEvery is how often serve deletes expired records.
const cleanupEvery = time.Hour

// cleanUp deletes expired token records, stale login-failure counts,
// expired change-feed rows and audit events past their retention, once an
// hour. Several replicas doing
// it at once is harmless: the deletes are idempotent.
func (o *options) cleanUp(ctx context.Context, store *storage.Store) {
	t := time.NewTicker(cleanupEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		// A refresh-token record is kept a day past expiry, so that a late
		// reuse is still recognised as one.
		if n, err := store.DeleteExpiredTokens(ctx, now.Add(-24*time.Hour)); err != nil {
			o.logger.ErrorContext(ctx, "deleting expired tokens failed", "err", err)
		} else if n > 0 {
			o.logger.InfoContext(ctx, "expired tokens deleted", "count", n)
		}
		if _, err := store.DeleteStaleLoginFailures(ctx, now.Add(-2*o.lockoutMax)); err != nil {
			o.logger.ErrorContext(ctx, "deleting stale login failures failed", "err", err)
		}
		if _, err := store.DeleteExpiredChanges(ctx, now); err != nil {
			o.logger.ErrorContext(ctx, "deleting expired changes failed", "err", err)
		}
		if n, err := store.DeleteAuditEventsBefore(ctx, now.Add(-o.auditRetention)); err != nil {
			o.logger.ErrorContext(ctx, "deleting old audit events failed", "err", err)
		} else if n > 0 {
			o.logger.InfoContext(ctx, "old audit events deleted", "count", n)
		}
	}
}

// activeKeyDue reports whether the active key has been active for at
// least every.
func activeKeyDue(infos []keys.Info, every time.Duration, now time.Time) bool {
	for _, k := range infos {
		if k.State == keys.StateActive {
			return !k.ActivatedAt.IsZero() && now.Sub(k.ActivatedAt) >= every
		}
	}
	return false
}

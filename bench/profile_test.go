package bench_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/legacy"
	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// TestProfileClientCredentials drives the client-credentials grant at
// concurrency 8 against the server assembled in-process, so that go test
// can write CPU and allocation profiles of the token path:
//
//	BENCH_PROFILE=1 go test -run TestProfileClientCredentials -count 1 \
//	    -cpuprofile cpu.out -memprofile mem.out ./bench/
//	go tool pprof -top cpu.out
//
// BENCH_PROFILE_REQUESTS sets the number of requests (default 10000),
// BENCH_PROFILE_ALG the signing algorithm (default RS256),
// BENCH_PROFILE_STATELESS=1 issues stateless tokens, and
// BENCH_PROFILE_WORKLOAD=introspect introspects one token instead of
// issuing tokens. The run stops
// after two minutes even if fewer tokens were issued. The profiles also
// cover the set-up (key generation, one argon2id hash) and the in-process
// HTTP client.
func TestProfileClientCredentials(t *testing.T) {
	if os.Getenv("BENCH_PROFILE") != "1" {
		t.Skip("set BENCH_PROFILE=1 to run the profiling load")
	}
	requests := 10000
	if v := os.Getenv("BENCH_PROFILE_REQUESTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("BENCH_PROFILE_REQUESTS=%q is invalid: use a positive integer", v)
		}
		requests = n
	}
	alg := os.Getenv("BENCH_PROFILE_ALG")
	if alg == "" {
		alg = "RS256"
	}

	srv, clientID, clientSecret := startServer(t, alg)
	const concurrency = 8
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency},
	}
	t.Cleanup(client.CloseIdleConnections)

	path, form := "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}.Encode()
	if os.Getenv("BENCH_PROFILE_WORKLOAD") == "introspect" {
		body, err := post(t.Context(), client, srv.URL+path, form, clientID, clientSecret)
		if err != nil {
			t.Fatalf("token request: %v", err)
		}
		var token struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(body, &token); err != nil {
			t.Fatal(err)
		}
		path, form = "/oauth2/introspect", url.Values{"token": {token.AccessToken}}.Encode()
	}
	var started, failed atomic.Int64
	var firstErr sync.Once
	deadline := time.Now().Add(2 * time.Minute)
	begin := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) && started.Add(1) <= int64(requests) {
				if _, err := post(t.Context(), client, srv.URL+path, form, clientID, clientSecret); err != nil {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("POST %s: %v", path, err) })
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)

	issued := min(started.Load(), int64(requests)) - failed.Load()
	t.Logf("%s: %d requests to %s in %v (%.0f/s) at concurrency %d, %d failed",
		alg, issued, path, elapsed.Round(time.Millisecond), float64(issued)/elapsed.Seconds(), concurrency, failed.Load())
}

// post sends form with HTTP Basic client authentication and returns the
// body of a 200 response. An introspection response must also report the
// token active.
func post(ctx context.Context, client *http.Client, target, form, clientID, clientSecret string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if strings.HasSuffix(target, "/introspect") && !strings.Contains(string(body), `"active":true`) {
		return nil, fmt.Errorf("token inactive: %s", body)
	}
	return body, nil
}

// startServer assembles the server as cmd/authserver's newApp does, on a
// fresh SQLite file with a user and a client-credentials client, and
// returns it with that client's id and secret. The brute-force limits are
// raised as compare.sh raises them. The metrics go to a registry of their
// own, without the Go and process collectors that newApp adds, because
// nothing scrapes them here.
func startServer(t *testing.T, alg string) (*httptest.Server, string, string) {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	secret := []byte(hex.EncodeToString(randomBytes(t, 32)))

	store, err := storage.Open(ctx, storage.Config{
		Database:   filepath.Join(t.TempDir(), "auth.db"),
		NewSession: func() fosite.Session { return oauth.NewSession() },
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// serve reads the change feed every second; no other process
	// changes this database, so one read keeps the cache in use for the
	// run.
	store.SetSyncInterval(time.Hour)
	if err := store.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	km, err := keys.New(ctx, store, keys.Config{
		Algorithm:         alg,
		Secret:            secret,
		PublishRetiredFor: time.Hour + 5*time.Minute,
		Logger:            logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	auditor := oauth.NewAuditor(store, logger)
	auditCtx, stopAudit := context.WithCancel(context.WithoutCancel(ctx))
	auditDone := make(chan struct{})
	go func() {
		defer close(auditDone)
		auditor.Run(auditCtx)
	}()
	t.Cleanup(func() {
		stopAudit()
		<-auditDone
	})
	grantMetrics, err := oauth.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := oauth.New(oauth.Config{
		Issuer:          "http://127.0.0.1",
		AccessTokenTTL:  time.Hour,
		RefreshTokenTTL: 720 * time.Hour,
		Secret:          secret,
		Logger:          logger,
		Guard: oauth.GuardConfig{
			MaxFailures:  1000000,
			LockoutBase:  time.Second,
			LockoutMax:   15 * time.Minute,
			AddressRate:  1000000,
			AddressBurst: 1000000,
		},
		Auditor: auditor,
		Metrics: grantMetrics,

		StatelessClientTokens: os.Getenv("BENCH_PROFILE_STATELESS") == "1",
	}, store, km)
	if err != nil {
		t.Fatal(err)
	}

	user, err := srv.Accounts().CreateUser(ctx, "bench", "bench password", []string{"bench:read", "bench:write"})
	if err != nil {
		t.Fatal(err)
	}
	client, clientSecret, err := srv.Accounts().RegisterClient(ctx, oauth.ClientRegistration{OwnerID: user.ID, Name: "bench-cc"})
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	srv.Register(mux)
	legacy.New(srv, logger).Register(mux)
	ts := httptest.NewServer(withRequestContext(mux))
	t.Cleanup(ts.Close)
	return ts, client.ID, clientSecret
}

// withRequestContext does most of the per-request work of cmd/authserver's
// middleware, which is not exported: a random request id, response
// headers, a body limit and a route check before dispatch. It leaves out
// the context values, the status recorder, panic recovery, the HTTP
// request metrics and the access log, which is written only at the debug
// level.
func withRequestContext(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := make([]byte, 8)
		_, _ = rand.Read(id)
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Request-Id", hex.EncodeToString(id))
		h.Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if _, pattern := mux.Handler(r); pattern == "" {
			http.NotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, target string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", target, resp.StatusCode)
	}
	return string(body)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve("--max-failures", "2", "--lockout", "1m")
	token := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	clientID, secret := s.registerClient(token, "runner")
	machine := s.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string)
	for range 3 {
		_ = s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": "wrong"})
	}
	_ = s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, clientID, secret)

	text := scrape(t, s.url+"/metrics")
	for _, want := range []string{
		`authserver_tokens_issued_total{grant_type="password"} 1`,
		`authserver_tokens_issued_total{grant_type="client_credentials"} 2`,
		`authserver_login_failures_total{grant_type="password"} 2`,
		`authserver_throttled_total{reason="lockout"} 1`,
		`authserver_http_requests_total{code="200",route="POST /api/auth/login"}`,
		`authserver_http_request_duration_seconds_bucket{route="POST /oauth2/token"`,
		`authserver_signing_key_age_seconds`,
		`authserver_db_open_connections`,
		`authserver_cached_clients 2`, // the built-in legacy client and the runner
		`authserver_revoked_tokens 0`,
		`authserver_change_feed_age_seconds`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for name, value := range map[string]string{"username": "alice", "client id": clientID, "client secret": secret, "token": machine} {
		if strings.Contains(text, value) {
			t.Errorf("metrics contain the %s", name)
		}
	}

	// Unknown paths share one series, so they cannot create series at will.
	for i := range 5 {
		_ = s.do(http.MethodGet, "/nope/"+strings.Repeat("x", i), "", "", nil)
	}
	if text := scrape(t, s.url+"/metrics"); !strings.Contains(text, `authserver_http_requests_total{code="404",route="unmatched"} 5`) || strings.Contains(text, "/nope/") {
		t.Error("unknown paths are not counted under one unmatched route")
	}
}

func TestMetricsOnSeparateListener(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	metricsAddr := freeAddr(t)
	s := in.serve("--metrics-addr", metricsAddr)
	if resp := s.do(http.MethodGet, "/metrics", "", "", nil); resp.status != http.StatusNotFound {
		t.Errorf("/metrics on the main listener: status %d, want 404", resp.status)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the metrics listener did not serve /metrics")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

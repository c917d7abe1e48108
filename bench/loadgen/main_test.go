package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(values ...int) []time.Duration {
		out := make([]time.Duration, len(values))
		for i, v := range values {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}

	for _, tt := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single value", ms(7), 99, 7 * time.Millisecond},
		{"median of odd count", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even count", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of 1 to 100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1 to 100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the maximum", hundred, 100, 100 * time.Millisecond},
		{"tiny p is the minimum", hundred, 0.001, 1 * time.Millisecond},
		{"p99 of ten values is the maximum", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	base := []string{"--url", "http://127.0.0.1:8080"}
	client := []string{"--client-id", "c", "--client-secret", "s"}
	user := []string{"--username", "u", "--password", "p"}
	args := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string // substring; empty means valid
	}{
		{"cc with client", args(base, client, []string{"--workload", "cc"}), ""},
		{"cc without client", args(base, []string{"--workload", "cc"}), "needs --client-id and --client-secret"},
		{"jwks needs no credentials", args(base, []string{"--workload", "jwks"}), ""},
		{"login with user", args(base, user, []string{"--workload", "login"}), ""},
		{"login without password", args(base, []string{"--workload", "login", "--username", "u"}), "needs --username and --password"},
		{"password needs a client", args(base, user, []string{"--workload", "password"}), "needs --client-id"},
		{"refresh with client and user", args(base, client, user, []string{"--workload", "refresh"}), ""},
		{"introspect with token and no auth", args(base, []string{"--workload", "introspect", "--token", "t"}), ""},
		{"introspect obtains a token", args(base, client, []string{"--workload", "introspect"}), ""},
		{"introspect without a token source", args(base, []string{"--workload", "introspect"}), "needs --token"},
		{"introspect id without secret", args(base, []string{"--workload", "introspect", "--token", "t", "--client-id", "c"}), "without --client-secret"},
		{"unknown workload", args(base, []string{"--workload", "authorize"}), `--workload "authorize" is invalid`},
		{"missing workload", base, `--workload "" is invalid`},
		{"missing url", args(client, []string{"--workload", "cc"}), "--url is missing"},
		{"relative url", args(client, []string{"--workload", "cc", "--url", "127.0.0.1:8080"}), "--url \"127.0.0.1:8080\" is invalid"},
		{"zero requests", args(base, []string{"--workload", "jwks", "--requests", "0"}), "--requests 0 is invalid"},
		{"zero duration", args(base, []string{"--workload", "jwks", "--duration", "0s"}), "--duration 0s is invalid"},
		{"negative warm-up", args(base, []string{"--workload", "jwks", "--warmup", "-1s"}), "--warmup -1s is invalid"},
		{"zero concurrency", args(base, []string{"--workload", "jwks", "--concurrency", "0"}), "--concurrency 0 is invalid"},
		{"negative pid", args(base, []string{"--workload", "jwks", "--pid", "-3"}), "--pid -3 is invalid"},
		{"stray argument", args(base, []string{"--workload", "jwks", "extra"}), `unexpected argument "extra"`},
		{"unknown flag", args(base, []string{"--workload", "jwks", "--rate", "5"}), "flag provided but not defined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseConfig(%q) = %v, want no error", tt.args, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseConfig(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig([]string{"--url", "http://127.0.0.1:8080/", "--workload", "introspect", "--client-id", "c", "--client-secret", "s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://127.0.0.1:8080/oauth2/introspect"; c.introspectURL != want {
		t.Errorf("introspectURL = %q, want %q", c.introspectURL, want)
	}
	if c.tokenClientID != "c" || c.tokenClientSecret != "s" {
		t.Errorf("token client = %q/%q, want the --client-id and --client-secret", c.tokenClientID, c.tokenClientSecret)
	}
}

func TestErrorLogKeepsDistinctSamples(t *testing.T) {
	var l errorLog
	for i := range 10 {
		l.add(fmt.Errorf("error %d", i%4))
	}
	count, samples := l.snapshot()
	if count != 10 {
		t.Errorf("count = %d, want 10", count)
	}
	if want := []string{"error 0", "error 1", "error 2"}; strings.Join(samples, "|") != strings.Join(want, "|") {
		t.Errorf("samples = %q, want %q", samples, want)
	}
}

// TestRunStopsAtRequestCount runs the cc workload against a fake token
// endpoint that fails every fifth request.
func TestRunStopsAtRequestCount(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "c" || secret != "s" {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		if n%5 == 0 {
			http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"t"}`)
	}))
	t.Cleanup(srv.Close)

	var out strings.Builder
	args := []string{"--url", srv.URL, "--workload", "cc", "--client-id", "c", "--client-secret", "s", "--concurrency", "4", "--requests", "100", "--duration", "30s"}
	if err := run(t.Context(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}

	var res result
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("output %q is not one JSON object: %v", out.String(), err)
	}
	if got := calls.Load(); got != 100 {
		t.Errorf("server saw %d requests, want 100", got)
	}
	if res.Requests != 80 || res.Errors != 20 {
		t.Errorf("requests, errors = %d, %d, want 80, 20", res.Requests, res.Errors)
	}
	if len(res.ErrorSamples) != 1 || !strings.Contains(res.ErrorSamples[0], "status 500") {
		t.Errorf("error samples = %q, want one status 500 sample", res.ErrorSamples)
	}
	if res.P50 > res.P99 || res.P99 > res.Max {
		t.Errorf("p50 %v, p99 %v, max %v are not in order", res.P50, res.P99, res.Max)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(time.Millisecond)
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	t.Cleanup(srv.Close)

	var out strings.Builder
	args := []string{"--url", srv.URL, "--workload", "jwks", "--requests", "100000000", "--duration", "200ms"}
	start := time.Now()
	if err := run(t.Context(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("run took %v, want about 200ms", elapsed)
	}
	var res result
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 {
		t.Errorf("requests, errors = %d, %d, want some requests and no errors", res.Requests, res.Errors)
	}
}

func TestRefreshChainsTokens(t *testing.T) {
	var next atomic.Int64
	used := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("grant_type") == "refresh_token" {
			used <- r.PostForm.Get("refresh_token")
		}
		_, _ = fmt.Fprintf(w, `{"access_token":"a","refresh_token":"rt-%d"}`, next.Add(1))
	}))
	t.Cleanup(srv.Close)

	var out strings.Builder
	args := []string{"--url", srv.URL, "--workload", "refresh", "--client-id", "c", "--client-secret", "s", "--username", "u", "--password", "p", "--requests", "5"}
	if err := run(t.Context(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	close(used)

	// The password grant returns rt-1; each refresh spends the token the
	// previous response returned.
	want := 1
	for got := range used {
		if got != fmt.Sprintf("rt-%d", want) {
			t.Errorf("refresh %d spent %q, want rt-%d", want, got, want)
		}
		want++
	}
	if want != 6 {
		t.Errorf("saw %d refreshes, want 5", want-1)
	}
}

func TestIntrospectInactiveIsError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"active":false}`)
	}))
	t.Cleanup(srv.Close)

	var out strings.Builder
	args := []string{"--url", srv.URL, "--workload", "introspect", "--token", "t", "--requests", "3"}
	if err := run(t.Context(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var res result
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatal(err)
	}
	if res.Errors != 3 {
		t.Errorf("errors = %d, want 3: an inactive token is not a successful introspection", res.Errors)
	}
}

func TestReadCPUTimeOfSelf(t *testing.T) {
	// Burn a little CPU so the value is not trivially zero on a fast tick.
	deadline := time.Now().Add(30 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	cpu, err := readCPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 {
		t.Errorf("CPU time of this process = %v, want positive", cpu)
	}
	fields, err := readStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if fields["VmRSS"] <= 0 {
		t.Errorf("VmRSS = %d kB, want positive", fields["VmRSS"])
	}
	if fields["VmHWM"] < fields["VmRSS"] {
		t.Errorf("VmHWM = %d kB, want at least VmRSS %d kB", fields["VmHWM"], fields["VmRSS"])
	}
}

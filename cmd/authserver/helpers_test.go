package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the authserver binary built once for the tests in this
// package, so they exercise the command exactly as an operator runs it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authserver-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create temp dir:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "authserver")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	err = build.Run()
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build authserver:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one installation: a database file and its master secret in
// a temporary directory.
type instance struct {
	t        *testing.T
	dir      string
	database string
	// env is added to the environment of every process of the instance.
	env []string
	// wrap, when set, is the command that serve runs the server under,
	// such as taskset with its arguments.
	wrap []string
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	dir := t.TempDir()
	return &instance{t: t, dir: dir, database: filepath.Join(dir, "auth.db")}
}

// cli runs an admin command on the instance's database and returns its
// standard output; it fails the test if the command fails.
func (in *instance) cli(stdin string, args ...string) string {
	in.t.Helper()
	stdout, stderr, err := in.tryCLI(stdin, args...)
	if err != nil {
		in.t.Fatalf("authserver %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// tryCLI runs an admin command and returns its output and exit error.
func (in *instance) tryCLI(stdin string, args ...string) (string, string, error) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(in.t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--database", in.database)...)
	cmd.Env = append(minimalEnv(), in.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// minimalEnv keeps AUTHSERVER_* variables of the test runner out of the
// child process.
func minimalEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTHSERVER_") {
			env = append(env, kv)
		}
	}
	return env
}

func (in *instance) createUser(username, password, scopes string) string {
	in.t.Helper()
	out := in.cli(password+"\n", "users", "create", "--username", username, "--scopes", scopes, "--password-stdin")
	return strings.TrimSpace(out)
}

// server is a running authserver process.
type server struct {
	t   *testing.T
	url string
	// issuer is the server's --issuer: its URL unless the test set one.
	issuer string
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan error
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeAddr returns a loopback address with a port that was free a moment
// ago; the server binds it right after.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// testSyncInterval is the --sync-interval of test servers: short, so a
// change made with an admin command reaches a running server quickly.
const testSyncInterval = 100 * time.Millisecond

// awaitSync waits until a change made by an admin command has reached the
// running test servers: a few sync intervals, for slow machines.
func awaitSync() { time.Sleep(4 * testSyncInterval) }

// serve starts `authserver serve` on a loopback port and waits until it is
// ready. Cleanup stops it with SIGTERM and checks it exits cleanly.
func (in *instance) serve(args ...string) *server {
	in.t.Helper()
	return in.serveAt(freeAddr(in.t), args...)
}

// serveAt is serve on a given address, so a restarted server keeps its
// issuer URL.
func (in *instance) serveAt(addr string, args ...string) *server {
	in.t.Helper()
	base := "http://" + addr
	all := append([]string{"serve", "--addr", addr, "--issuer", base, "--database", in.database, "--log-level", "debug", "--sync-interval", testSyncInterval.String()}, args...)
	// The process outlives the test's context only until Cleanup stops it.
	name, args := binary, all
	if len(in.wrap) > 0 {
		name, args = in.wrap[0], append(slices.Clone(in.wrap[1:]), append([]string{binary}, all...)...)
	}
	cmd := exec.CommandContext(context.WithoutCancel(in.t.Context()), name, args...)
	cmd.Env = append(minimalEnv(), in.env...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		in.t.Fatalf("start server: %v", err)
	}
	s := &server{t: in.t, url: base, issuer: base, cmd: cmd, logs: logs, done: make(chan error, 1)}
	for i := range len(all) - 1 {
		if all[i] == "--issuer" {
			s.issuer = all[i+1]
		}
	}
	go func() { s.done <- cmd.Wait() }()
	in.t.Cleanup(func() { s.stop() })

	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(in.t.Context(), http.MethodGet, base+"/health/ready", nil)
		if err != nil {
			in.t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			in.t.Fatalf("server exited during start: %v\nlogs:\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("server not ready after 30s\nlogs:\n%s", logs.String())
		}
	}
}

// stop sends SIGTERM and waits for a clean exit; calling it twice is safe.
func (s *server) stop() {
	s.t.Helper()
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("server exited with %v after SIGTERM\nlogs:\n%s", err, s.logs.String())
		}
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("server did not stop within 20s of SIGTERM\nlogs:\n%s", s.logs.String())
	}
}

// response is a decoded HTTP reply.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (s *server) do(method, path, contentType, authorization string, body io.Reader) response {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (s *server) postJSON(path, bearer string, body any) response {
	s.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			s.t.Fatal(err)
		}
	}
	auth := ""
	if bearer != "" {
		auth = "Bearer " + bearer
	}
	return s.do(http.MethodPost, path, "application/json", auth, bytes.NewReader(raw))
}

func (s *server) postForm(path string, form url.Values, user, pass string) response {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// login runs the legacy login and returns the decoded reply, failing the
// test unless it is 200.
func (s *server) login(body map[string]string) map[string]any {
	s.t.Helper()
	resp := s.postJSON("/api/auth/login", "", body)
	if resp.status != http.StatusOK {
		s.t.Fatalf("login: status %d, body %s", resp.status, resp.body)
	}
	return resp.json(s.t)
}

// registerClient runs the legacy registration with a user token and
// returns client id and secret.
func (s *server) registerClient(token, name string) (string, string) {
	s.t.Helper()
	resp := s.postJSON("/api/auth/register-client", token, map[string]string{"client_name": name})
	if resp.status != http.StatusOK {
		s.t.Fatalf("register-client: status %d, body %s", resp.status, resp.body)
	}
	m := resp.json(s.t)
	id, _ := m["client_id"].(string)
	secret, _ := m["client_secret"].(string)
	return id, secret
}

func (s *server) introspect(token, clientID, secret string) map[string]any {
	s.t.Helper()
	resp := s.postForm("/oauth2/introspect", url.Values{"token": {token}}, clientID, secret)
	if resp.status != http.StatusOK {
		s.t.Fatalf("introspect: status %d, body %s", resp.status, resp.body)
	}
	return resp.json(s.t)
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "authserver.yaml")
	if err := os.WriteFile(yamlFile, []byte("access-token-ttl: 2h\nsigning-alg: ES256\nmax-failures: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tomlFile := filepath.Join(dir, "authserver.toml")
	if err := os.WriteFile(tomlFile, []byte("access-token-ttl = \"2h\"\nsigning-alg = \"ES256\"\nmax-failures = 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "auth.db")

	tests := []struct {
		name string
		env  []string
		args []string
		want map[string]string
	}{
		{"defaults", nil, nil, map[string]string{"access-token-ttl": "1h0m0s", "signing-alg": "RS256", "max-failures": "5"}},
		{"YAML file over defaults", nil, []string{"--config", yamlFile}, map[string]string{"access-token-ttl": "2h0m0s", "signing-alg": "ES256", "max-failures": "7"}},
		{"TOML file over defaults", nil, []string{"--config", tomlFile}, map[string]string{"access-token-ttl": "2h0m0s", "signing-alg": "ES256", "max-failures": "7"}},
		{"file named in the environment", []string{"AUTHSERVER_CONFIG=" + yamlFile}, nil, map[string]string{"access-token-ttl": "2h0m0s"}},
		{"environment over file", []string{"AUTHSERVER_ACCESS_TOKEN_TTL=3h"}, []string{"--config", yamlFile}, map[string]string{"access-token-ttl": "3h0m0s", "signing-alg": "ES256"}},
		{"flag over environment and file", []string{"AUTHSERVER_ACCESS_TOKEN_TTL=3h"}, []string{"--config", yamlFile, "--access-token-ttl", "4h"}, map[string]string{"access-token-ttl": "4h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"config", "check", "--json", "--database", db}, tt.args...)
			out, stderr, err := runWithEnv(t, tt.env, "", args...)
			if err != nil {
				t.Fatalf("config check: %v\n%s", err, stderr)
			}
			var got map[string]string
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("config check --json printed %q: %v", out, err)
			}
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestConfigCheckRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name    string
		env     []string
		args    []string
		wantErr string
	}{
		{"unknown key", nil, []string{"--config", write("unknown.yaml", "acces-token-ttl: 1h\n")}, "not a setting"},
		{"secret in the file", nil, []string{"--config", write("secret.yaml", "secret: abc\n")}, "not allowed"},
		{"bad duration in the file", nil, []string{"--config", write("bad.yaml", "access-token-ttl: soon\n")}, "access-token-ttl"},
		{"nested value", nil, []string{"--config", write("nested.yaml", "addr:\n  host: x\n")}, "single value"},
		{"unknown extension", nil, []string{"--config", write("settings.ini", "addr=:1\n")}, ".toml"},
		{"bad algorithm", nil, []string{"--signing-alg", "HS256"}, "signing-alg"},
		{"postgres without secret", nil, []string{"--database", "postgres://u:pw@127.0.0.1:1/db"}, "master secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"config", "check", "--database", filepath.Join(dir, "auth.db")}, tt.args...)
			_, stderr, err := runWithEnv(t, tt.env, "", args...)
			if err == nil {
				t.Fatal("config check succeeded, want an error")
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want it to mention %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestConfigCheckRedactsSecrets(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s3cr3t", 8)
	out, stderr, err := runWithEnv(t, []string{"AUTHSERVER_SECRET=" + secret}, "", "config", "check", "--database", "postgres://authserver:db-password-xyz@127.0.0.1:5432/authserver")
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, stderr)
	}
	for _, leaked := range []string{secret, "db-password-xyz"} {
		if strings.Contains(out, leaked) {
			t.Errorf("config check printed a secret: %q", out)
		}
	}
	if !strings.Contains(out, "secret = [REDACTED] (AUTHSERVER_SECRET)") {
		t.Errorf("config check does not say where the secret comes from: %q", out)
	}
}

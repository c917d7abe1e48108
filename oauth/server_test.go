package oauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

var masterSecret = bytes.Repeat([]byte("s"), 32)

// fixture is a server on a fresh SQLite file with one user and one client.
type fixture struct {
	srv      *oauth.Server
	http     *httptest.Server
	userID   string
	clientID string
	secret   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	store, err := storage.Open(ctx, storage.Config{
		Database:   filepath.Join(t.TempDir(), "auth.db"),
		NewSession: func() fosite.Session { return oauth.NewSession() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	km, err := keys.New(ctx, store, keys.Config{Algorithm: "ES256", Secret: masterSecret})
	if err != nil {
		t.Fatal(err)
	}

	hs := httptest.NewUnstartedServer(nil)
	issuer := "http://" + hs.Listener.Addr().String()
	srv, err := oauth.New(oauth.Config{
		Issuer: issuer,
		Secret: masterSecret,
		Argon2: oauth.Argon2Params{Memory: 64, Time: 1, Threads: 1},
	}, store, km)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs.Config.Handler = mux
	hs.Start()
	t.Cleanup(hs.Close)

	u, err := srv.Accounts().CreateUser(ctx, "alice", "alice password", []string{"strategy:read", "forge:write"})
	if err != nil {
		t.Fatal(err)
	}
	c, secret, err := srv.Accounts().RegisterClient(ctx, oauth.ClientRegistration{OwnerID: u.ID, Name: "runner"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, http: hs, userID: u.ID, clientID: c.ID, secret: secret}
}

func (f *fixture) clientCredentials(t *testing.T, style oauth2.AuthStyle, scopes ...string) (*oauth2.Token, error) {
	t.Helper()
	cfg := clientcredentials.Config{
		ClientID:     f.clientID,
		ClientSecret: f.secret,
		TokenURL:     f.http.URL + "/oauth2/token",
		Scopes:       scopes,
		AuthStyle:    style,
	}
	return cfg.Token(t.Context())
}

func postForm(t *testing.T, target string, form url.Values) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return http.DefaultClient.Do(req)
}

func TestClientCredentialsGrant(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name  string
		style oauth2.AuthStyle
	}{
		{"basic", oauth2.AuthStyleInHeader},
		{"post", oauth2.AuthStyleInParams},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := f.clientCredentials(t, tt.style, "forge:write")
			if err != nil {
				t.Fatal(err)
			}
			info, err := f.srv.AuthenticateBearer(t.Context(), tok.AccessToken)
			if err != nil {
				t.Fatalf("AuthenticateBearer: %v", err)
			}
			want := oauth.TokenInfo{Subject: f.clientID, UserID: f.userID, ClientID: f.clientID, Scopes: []string{"forge:write"}, GrantType: "client_credentials"}
			if info.Subject != want.Subject || info.UserID != want.UserID || info.ClientID != want.ClientID || info.GrantType != want.GrantType || !info.HasScope("forge:write") || info.HasScope("strategy:read") {
				t.Errorf("token info = %+v, want %+v", info, want)
			}
		})
	}

	t.Run("all scopes by default", func(t *testing.T) {
		tok, err := f.clientCredentials(t, oauth2.AuthStyleInHeader)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Extra("scope"); got != "strategy:read forge:write" {
			t.Errorf("scope = %v, want all of the client's scopes", got)
		}
	})

	t.Run("scope beyond the client", func(t *testing.T) {
		_, err := f.clientCredentials(t, oauth2.AuthStyleInHeader, "admin")
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_scope" {
			t.Errorf("err = %v, want invalid_scope", err)
		}
	})
}

func TestAuthenticateBearerRejects(t *testing.T) {
	f := newFixture(t)
	tok, err := f.clientCredentials(t, oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := f.clientCredentials(t, oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"token": {revoked.AccessToken}, "client_id": {f.clientID}, "client_secret": {f.secret}}
	resp, err := postForm(t, f.http.URL+"/oauth2/revoke", form)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}

	parts := strings.Split(tok.AccessToken, ".")
	for _, tt := range []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"garbage", "abc"},
		{"revoked", revoked.AccessToken},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(revoked.AccessToken, ".")[2]},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."},
		{"many dots", strings.Repeat(".", 5000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.srv.AuthenticateBearer(t.Context(), tt.token)
			if !errors.Is(err, oauth.ErrInvalidToken) {
				t.Errorf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestLegacyClientHiddenFromTokenEndpoint(t *testing.T) {
	f := newFixture(t)
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {storage.LegacyClientID},
		"username":   {"alice"},
		"password":   {"alice password"},
	}
	resp, err := postForm(t, f.http.URL+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401 invalid_client", resp.StatusCode)
	}

	// The same request through Exchange, the legacy adapter's path,
	// succeeds.
	res, err := f.srv.Exchange(t.Context(), form, oauth.ExchangeOptions{})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if res.UserID != f.userID || len(res.Scopes) != 2 {
		t.Errorf("Exchange result user %q scopes %v", res.UserID, res.Scopes)
	}
}

func TestExchangeRequiresOwner(t *testing.T) {
	f := newFixture(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {f.clientID}, "client_secret": {f.secret}}
	owner := oauth.ExchangeOptions{OwnerUsername: "alice", OwnerPassword: "alice password"}
	if _, err := f.srv.Exchange(t.Context(), form, owner); err != nil {
		t.Fatalf("Exchange with the owner's credentials: %v", err)
	}
	if _, err := f.srv.Accounts().CreateUser(t.Context(), "bob", "bob password", nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.srv.Exchange(t.Context(), form, oauth.ExchangeOptions{OwnerUsername: "bob", OwnerPassword: "bob password"})
	if !errors.Is(fosite.ErrorToRFC6749Error(err), fosite.ErrInvalidClient) {
		t.Errorf("Exchange with another user's credentials: err = %v, want invalid_client", err)
	}
	_, err = f.srv.Exchange(t.Context(), form, oauth.ExchangeOptions{OwnerUsername: "alice", OwnerPassword: "wrong"})
	if !errors.Is(fosite.ErrorToRFC6749Error(err), fosite.ErrInvalidGrant) {
		t.Errorf("Exchange with a wrong owner password: err = %v, want invalid_grant", err)
	}
}

func TestAuthenticateCredentials(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name, username, password string
		wantOK                   bool
	}{
		{"right", "alice", "alice password", true},
		{"case-folded username", "ALICE", "alice password", true},
		{"wrong password", "alice", "alice passwort", false},
		{"unknown user", "bob", "alice password", false},
		{"invalid username", "a b", "x", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := f.srv.Accounts().Authenticate(t.Context(), tt.username, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK {
				t.Errorf("ok = %t, want %t", ok, tt.wantOK)
			}
		})
	}
}

// BenchmarkAuthenticate compares an unknown username with a wrong
// password: both must cost one argon2id verification with the default
// parameters.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{
		Database:   filepath.Join(b.TempDir(), "auth.db"),
		NewSession: func() fosite.Session { return oauth.NewSession() },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	hasher, err := oauth.NewPasswordHasher(oauth.Argon2Params{})
	if err != nil {
		b.Fatal(err)
	}
	secrets, err := oauth.NewSecretHasher(masterSecret)
	if err != nil {
		b.Fatal(err)
	}
	acc := oauth.NewAccounts(store, hasher, secrets, nil)
	if _, err := acc.CreateUser(ctx, "alice", "alice password", nil); err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct{ name, username, password string }{
		{"right password", "alice", "alice password"},
		{"wrong password", "alice", "wrong"},
		{"unknown user", "nobody", "wrong"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := acc.Authenticate(ctx, bm.username, bm.password); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

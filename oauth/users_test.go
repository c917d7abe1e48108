package oauth_test

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// testArgon2 are cheap argon2id parameters, so the tests hash quickly.
var testArgon2 = oauth.Argon2Params{Memory: 64, Time: 1, Threads: 1}

// newAccounts returns Accounts over a fresh SQLite file, and the store so
// that tests can read what was written.
func newAccounts(t *testing.T) (*oauth.Accounts, *storage.Store) {
	t.Helper()
	store, err := storage.Open(t.Context(), storage.Config{
		Database:   filepath.Join(t.TempDir(), "auth.db"),
		NewSession: func() fosite.Session { return oauth.NewSession() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	passwords, err := oauth.NewPasswordHasher(testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := oauth.NewSecretHasher(masterSecret)
	if err != nil {
		t.Fatal(err)
	}
	return oauth.NewAccounts(store, passwords, secrets, nil), store
}

func mustBcrypt(t *testing.T, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(hash)
}

func TestValidatePasswordHash(t *testing.T) {
	bcryptHash := mustBcrypt(t, "old password")
	tail := bcryptHash[7:]
	passwords, err := oauth.NewPasswordHasher(testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	argonHash, err := passwords.Hash("old password")
	if err != nil {
		t.Fatal(err)
	}
	argonParts := strings.Split(argonHash, "$")

	tests := []struct {
		name    string
		hash    string
		wantErr bool
	}{
		{"bcrypt 2a", "$2a$04$" + tail, false},
		{"bcrypt 2b", bcryptHash, false},
		{"bcrypt 2y", "$2y$04$" + tail, false},
		{"bcrypt maximum cost", "$2b$14$" + tail, false},
		{"bcrypt cost too high", "$2b$15$" + tail, true},
		{"bcrypt cost too low", "$2b$03$" + tail, true},
		{"bcrypt too short", bcryptHash[:59], true},
		{"bcrypt too long", bcryptHash + "a", true},
		{"bcrypt bad character", bcryptHash[:59] + "!", true},
		{"bcrypt 2x", "$2x$04$" + tail, true},
		{"argon2id", argonHash, false},
		{"argon2id short salt", strings.Join([]string{"", "argon2id", "v=19", argonParts[3], "c2FsdA", argonParts[5]}, "$"), true},
		{"argon2id wrong version", strings.Replace(argonHash, "v=19", "v=16", 1), true},
		{"argon2id memory too high", strings.Replace(argonHash, "m=64", "m=2000000", 1), true},
		{"argon2id missing key", strings.Join(argonParts[:5], "$"), true},
		{"argon2i", strings.Replace(argonHash, "$argon2id$", "$argon2i$", 1), true},
		{"md5 crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", true},
		{"plain text", "correct horse battery staple", true},
		{"empty", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := oauth.ValidatePasswordHash(tt.hash)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidatePasswordHash = %v, want error %t", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, oauth.ErrInvalidInput) {
				t.Errorf("error %v does not wrap ErrInvalidInput", err)
			}
			if tt.hash != "" && strings.Contains(err.Error(), tt.hash) {
				t.Errorf("error %q contains the hash", err)
			}
		})
	}
}

func TestImportUserUpgradesHash(t *testing.T) {
	weakArgon, err := oauth.NewPasswordHasher(oauth.Argon2Params{Memory: 32, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	weakHash, err := weakArgon.Hash("old password")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		hash string
	}{
		{"bcrypt", mustBcrypt(t, "old password")},
		{"weaker argon2id", weakHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc, store := newAccounts(t)
			u, err := acc.ImportUser(t.Context(), oauth.UserImport{Username: "alice", PasswordHash: tt.hash, Scopes: []string{"a", "b", "a"}})
			if err != nil {
				t.Fatalf("ImportUser: %v", err)
			}
			if len(u.Scopes) != 2 {
				t.Errorf("imported scopes %v, want a and b once each", u.Scopes)
			}

			if _, ok, err := acc.Authenticate(t.Context(), "alice", "wrong password"); ok || err != nil {
				t.Fatalf("Authenticate with a wrong password = %t, %v; want false, nil", ok, err)
			}
			if stored := mustUser(t, store, u.ID); stored.PasswordHash != tt.hash {
				t.Errorf("a failed login changed the stored hash")
			}

			if _, ok, err := acc.Authenticate(t.Context(), "alice", "old password"); !ok || err != nil {
				t.Fatalf("Authenticate with the imported password = %t, %v; want true, nil", ok, err)
			}
			stored := mustUser(t, store, u.ID)
			if !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("stored hash after login has scheme %q, want the current argon2id parameters", strings.SplitN(stored.PasswordHash, "$", 4)[1])
			}
			if _, ok, err := acc.Authenticate(t.Context(), "alice", "old password"); !ok || err != nil {
				t.Errorf("Authenticate after the upgrade = %t, %v; want true, nil", ok, err)
			}
		})
	}
}

func mustUser(t *testing.T, store *storage.Store, id string) storage.User {
	t.Helper()
	u, err := store.UserByID(t.Context(), id)
	if err != nil {
		t.Fatalf("UserByID(%s): %v", id, err)
	}
	return u
}

func TestImportUserRejects(t *testing.T) {
	acc, _ := newAccounts(t)
	hash := mustBcrypt(t, "pw")
	if _, err := acc.ImportUser(t.Context(), oauth.UserImport{Username: "alice", PasswordHash: hash}); err != nil {
		t.Fatalf("ImportUser: %v", err)
	}

	tests := []struct {
		name string
		in   oauth.UserImport
		want error
	}{
		{"existing username", oauth.UserImport{Username: "ALICE", PasswordHash: hash}, storage.ErrConflict},
		{"invalid username", oauth.UserImport{Username: "bob smith", PasswordHash: hash}, oauth.ErrInvalidInput},
		{"invalid hash", oauth.UserImport{Username: "bob", PasswordHash: "plain"}, oauth.ErrInvalidInput},
		{"invalid scope", oauth.UserImport{Username: "bob", PasswordHash: hash, Scopes: []string{`a"b`}}, oauth.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := acc.ImportUser(t.Context(), tt.in); !errors.Is(err, tt.want) {
				t.Errorf("ImportUser = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	acc, _ := newAccounts(t)
	u, err := acc.CreateUser(t.Context(), "alice", "old password", nil)
	if err != nil {
		t.Fatal(err)
	}

	if err := acc.SetPassword(t.Context(), u.ID, "new password"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if _, ok, _ := acc.Authenticate(t.Context(), "alice", "old password"); ok {
		t.Error("the old password still works")
	}
	if _, ok, err := acc.Authenticate(t.Context(), "alice", "new password"); !ok || err != nil {
		t.Errorf("Authenticate with the new password = %t, %v", ok, err)
	}

	for _, tt := range []struct {
		name     string
		id       string
		password string
		want     error
	}{
		{"empty", u.ID, "", oauth.ErrInvalidInput},
		{"too long", u.ID, strings.Repeat("p", oauth.MaxPasswordLength+1), oauth.ErrInvalidInput},
		{"unknown user", "user_unknown", "pw", storage.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := acc.SetPassword(t.Context(), tt.id, tt.password); !errors.Is(err, tt.want) {
				t.Errorf("SetPassword = %v, want %v", err, tt.want)
			}
		})
	}
}

// userToken runs a legacy password login through Exchange and returns the
// access token.
func userToken(t *testing.T, f *fixture, username, password string) string {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {storage.LegacyClientID},
		"username":   {username},
		"password":   {password},
	}
	res, err := f.srv.Exchange(t.Context(), form, oauth.ExchangeOptions{})
	if err != nil {
		t.Fatalf("Exchange for %s: %v", username, err)
	}
	return res.AccessToken
}

func TestDisableUserRevokesTokens(t *testing.T) {
	f := newFixture(t)
	acc := f.srv.Accounts()
	user := userToken(t, f, "alice", "alice password")
	machine, err := f.clientCredentials(t, oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}

	revoked, err := acc.DisableUser(t.Context(), f.userID)
	if err != nil {
		t.Fatalf("DisableUser: %v", err)
	}
	if revoked != 2 {
		t.Errorf("DisableUser revoked %d tokens, want 2 (the login and the client's token)", revoked)
	}
	for name, token := range map[string]string{"user token": user, "client token": machine.AccessToken} {
		if _, err := f.srv.AuthenticateBearer(t.Context(), token); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("%s of a disabled user: err = %v, want ErrInvalidToken", name, err)
		}
	}
	if _, err := f.clientCredentials(t, oauth2.AuthStyleInHeader); err == nil {
		t.Error("a client of a disabled user got a token")
	}

	if err := acc.EnableUser(t.Context(), f.userID); err != nil {
		t.Fatalf("EnableUser: %v", err)
	}
	for name, token := range map[string]string{"user token": user, "client token": machine.AccessToken} {
		if _, err := f.srv.AuthenticateBearer(t.Context(), token); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("%s revoked at disable is valid after enable: err = %v", name, err)
		}
	}
	if _, err := f.srv.AuthenticateBearer(t.Context(), userToken(t, f, "alice", "alice password")); err != nil {
		t.Errorf("a new login after enable: %v", err)
	}

	if _, err := acc.DisableUser(t.Context(), "user_unknown"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DisableUser(unknown) = %v, want ErrNotFound", err)
	}
}

func TestRotateSecret(t *testing.T) {
	f := newFixture(t)
	acc := f.srv.Accounts()
	before, err := f.clientCredentials(t, oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}

	secret, err := acc.RotateSecret(t.Context(), f.clientID)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	if secret == f.secret || !strings.HasPrefix(secret, "secret_") {
		t.Fatalf("RotateSecret returned the old secret or one without the secret_ prefix")
	}

	if _, err := f.clientCredentials(t, oauth2.AuthStyleInHeader); err == nil {
		t.Error("the old secret still gets tokens")
	}
	if _, err := f.srv.AuthenticateBearer(t.Context(), before.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("a token from before the rotation: err = %v, want ErrInvalidToken", err)
	}
	f.secret = secret
	if _, err := f.clientCredentials(t, oauth2.AuthStyleInHeader); err != nil {
		t.Errorf("the new secret: %v", err)
	}

	for _, id := range []string{"client_unknown", storage.LegacyClientID} {
		if _, err := acc.RotateSecret(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("RotateSecret(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestSetClientScopes(t *testing.T) {
	f := newFixture(t)
	acc := f.srv.Accounts()

	tests := []struct {
		name   string
		id     string
		scopes []string
		want   error
	}{
		{"subset of the owner's", f.clientID, []string{"forge:write"}, nil},
		{"none", f.clientID, []string{}, nil},
		{"scope the owner lacks", f.clientID, []string{"admin"}, oauth.ErrScopeNotAllowed},
		{"invalid scope", f.clientID, []string{"a b"}, oauth.ErrInvalidInput},
		{"unknown client", "client_unknown", []string{"forge:write"}, storage.ErrNotFound},
		{"built-in client", storage.LegacyClientID, []string{"forge:write"}, storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := acc.SetClientScopes(t.Context(), tt.id, tt.scopes); !errors.Is(err, tt.want) {
				t.Errorf("SetClientScopes = %v, want %v", err, tt.want)
			}
		})
	}

	if err := acc.SetClientScopes(t.Context(), f.clientID, []string{"forge:write"}); err != nil {
		t.Fatal(err)
	}
	tok, err := f.clientCredentials(t, oauth2.AuthStyleInHeader)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Extra("scope"); got != "forge:write" {
		t.Errorf("scope of a new token = %v, want forge:write", got)
	}
}

func TestOwnedClient(t *testing.T) {
	f := newFixture(t)
	acc := f.srv.Accounts()
	bob, err := acc.CreateUser(t.Context(), "bob", "bob password", []string{"forge:write"})
	if err != nil {
		t.Fatal(err)
	}

	if c, err := acc.OwnedClient(t.Context(), f.userID, f.clientID); err != nil || c.ID != f.clientID {
		t.Errorf("OwnedClient by the owner = %v, %v", c, err)
	}
	for _, tt := range []struct {
		name    string
		ownerID string
		id      string
	}{
		{"another user's client", bob.ID, f.clientID},
		{"unknown client", f.userID, "client_unknown"},
		{"built-in client", f.userID, storage.LegacyClientID},
		{"no owner", "", f.clientID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := acc.OwnedClient(t.Context(), tt.ownerID, tt.id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("OwnedClient = %v, want ErrNotFound", err)
			}
		})
	}
}

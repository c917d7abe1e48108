package storagetest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

const (
	bobID       = "user-bob"
	bobClientID = "client-bob"
)

// adminToken is one token record of [adminFixture].
type adminToken struct {
	kind      tokenKind
	signature string
	requestID string
	clientID  string
	userID    string
}

// adminTokens are the token records of [adminFixture]: alice's password
// grant through her client (an access and a refresh token of one family),
// a client-credentials token of her client, her legacy login, and bob's
// client-credentials token.
var adminTokens = []adminToken{
	{kind: accessKind, signature: "at-alice", requestID: "req-alice", clientID: clientID, userID: aliceID},
	{kind: refreshKind, signature: "rt-alice", requestID: "req-alice", clientID: clientID, userID: aliceID},
	{kind: accessKind, signature: "at-alice-machine", requestID: "req-alice-machine", clientID: clientID, userID: aliceID},
	{kind: accessKind, signature: "at-alice-legacy", requestID: "req-alice-legacy", clientID: storage.LegacyClientID, userID: aliceID},
	{kind: accessKind, signature: "at-bob-machine", requestID: "req-bob-machine", clientID: bobClientID, userID: bobID},
}

// adminFixture creates alice with her client, bob with his, and
// [adminTokens].
func adminFixture(t *testing.T, s *storage.Store) {
	t.Helper()
	tokenFixture(t, s)
	mustCreateUser(t, s, storage.User{ID: bobID, Username: "bob", PasswordHash: aliceHash, Scopes: []string{"openid"}})
	bobClient := reportsClient()
	bobClient.ID, bobClient.Name, bobClient.OwnerID = bobClientID, "Bob's runner", bobID
	mustCreateClient(t, s, bobClient)
	for _, tok := range adminTokens {
		mustCreateToken(t, s, tok.kind, tok.signature, newRequest(tok.requestID, tok.clientID, tok.userID))
	}
}

// tokenState is the result of looking up one token.
type tokenState string

const (
	tokenActive   tokenState = "active"
	tokenInactive tokenState = "inactive"
	tokenGone     tokenState = "not found"
)

// adminTokenStates returns the state of every token of [adminTokens], by
// signature.
func adminTokenStates(t *testing.T, s *storage.Store) map[string]tokenState {
	t.Helper()
	states := make(map[string]tokenState, len(adminTokens))
	for _, tok := range adminTokens {
		_, err := tok.kind.get(t.Context(), s, tok.signature, NewSession())
		switch {
		case err == nil:
			states[tok.signature] = tokenActive
		case errors.Is(err, fosite.ErrInactiveToken):
			states[tok.signature] = tokenInactive
		case errors.Is(err, fosite.ErrNotFound):
			states[tok.signature] = tokenGone
		default:
			t.Fatalf("get %s token %q: %v", tok.kind.name, tok.signature, err)
		}
	}
	return states
}

// wantTokenStates fails the test unless every token of [adminTokens] is
// active except those named in changed, which must be in the given state.
func wantTokenStates(t *testing.T, s *storage.Store, changed map[string]tokenState) {
	t.Helper()
	want := make(map[string]tokenState, len(adminTokens))
	for _, tok := range adminTokens {
		want[tok.signature] = tokenActive
	}
	for sig, state := range changed {
		want[sig] = state
	}
	if diff := cmp.Diff(want, adminTokenStates(t, s)); diff != "" {
		t.Errorf("token states (-want +got):\n%s", diff)
	}
}

func testAdmin(t *testing.T, open func(t *testing.T) *storage.Store) {
	testListUsers(t, open)
	testUpdateUser(t, open)
	testDeleteUser(t, open)
	testListClients(t, open)
	testChangeClient(t, open)
	testDeleteClient(t, open)
	testRevokeTokens(t, open)
}

func usernames(users []storage.User) []string {
	names := make([]string, 0, len(users))
	for _, u := range users {
		names = append(names, u.Username)
	}
	return names
}

func testListUsers(t *testing.T, open func(t *testing.T) *storage.Store) {
	pages := []struct {
		name string
		page storage.Page
		want []string
	}{
		{name: "all", page: storage.Page{}, want: []string{"Alice", "bob", "Carol"}},
		{name: "limit", page: storage.Page{Limit: 2}, want: []string{"Alice", "bob"}},
		{name: "offset", page: storage.Page{Offset: 1}, want: []string{"bob", "Carol"}},
		{name: "limit and offset", page: storage.Page{Limit: 1, Offset: 1}, want: []string{"bob"}},
		{name: "offset past the end", page: storage.Page{Offset: 5}, want: []string{}},
	}
	for _, tc := range pages {
		t.Run("list users/"+tc.name, func(t *testing.T) {
			s := open(t)
			// Created out of order and in mixed case: the listing sorts by
			// the normalised name.
			mustCreateUser(t, s, storage.User{ID: "user-carol", Username: "Carol", PasswordHash: aliceHash})
			mustCreateUser(t, s, alice())
			mustCreateUser(t, s, storage.User{ID: bobID, Username: "bob", PasswordHash: aliceHash})

			got, err := s.ListUsers(t.Context(), tc.page)
			if err != nil {
				t.Fatalf("ListUsers(%+v): %v", tc.page, err)
			}
			if diff := cmp.Diff(tc.want, usernames(got)); diff != "" {
				t.Errorf("ListUsers(%+v) usernames (-want +got):\n%s", tc.page, diff)
			}
		})
	}

	t.Run("list users/fields", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice())

		got, err := s.ListUsers(t.Context(), storage.Page{})
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		if diff := cmp.Diff([]storage.User{alice()}, got, ignoreUserTimes); diff != "" {
			t.Errorf("ListUsers mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("list users/negative page", func(t *testing.T) {
		s := open(t)
		for _, page := range []storage.Page{{Limit: -1}, {Offset: -1}} {
			if _, err := s.ListUsers(t.Context(), page); err == nil {
				t.Errorf("ListUsers(%+v) = nil error, want one", page)
			}
		}
	})
}

func testUpdateUser(t *testing.T, open func(t *testing.T) *storage.Store) {
	newHash := "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"
	newScopes := []string{"reports.read"}
	yes, no := true, false
	updates := []struct {
		name   string
		update storage.UserUpdate
		want   func(u *storage.User)
	}{
		{name: "password hash", update: storage.UserUpdate{PasswordHash: &newHash}, want: func(u *storage.User) { u.PasswordHash = newHash }},
		{name: "scopes", update: storage.UserUpdate{Scopes: &newScopes}, want: func(u *storage.User) { u.Scopes = newScopes }},
		{name: "no scopes", update: storage.UserUpdate{Scopes: &[]string{}}, want: func(u *storage.User) { u.Scopes = nil }},
		{name: "disable", update: storage.UserUpdate{Disabled: &yes}, want: func(u *storage.User) { u.Disabled = true }},
		{name: "enable", update: storage.UserUpdate{Disabled: &no}, want: func(*storage.User) {}},
		{name: "nothing", update: storage.UserUpdate{}, want: func(*storage.User) {}},
		{
			name:   "all fields",
			update: storage.UserUpdate{PasswordHash: &newHash, Scopes: &newScopes, Disabled: &yes},
			want: func(u *storage.User) {
				u.PasswordHash, u.Scopes, u.Disabled = newHash, newScopes, true
			},
		},
	}
	for _, tc := range updates {
		t.Run("update user/"+tc.name, func(t *testing.T) {
			s := open(t)
			mustCreateUser(t, s, alice())
			mustCreateUser(t, s, storage.User{ID: bobID, Username: "bob", PasswordHash: aliceHash})
			bobBefore, err := s.UserByID(t.Context(), bobID)
			if err != nil {
				t.Fatalf("UserByID(bob): %v", err)
			}

			if err := s.UpdateUser(t.Context(), aliceID, tc.update); err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}

			got, err := s.UserByID(t.Context(), aliceID)
			if err != nil {
				t.Fatalf("UserByID: %v", err)
			}
			want := alice()
			tc.want(&want)
			if diff := cmp.Diff(want, got, ignoreUserTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("user after update (-want +got):\n%s", diff)
			}
			if got.UpdatedAt.Before(got.CreatedAt) {
				t.Errorf("UpdatedAt %v is before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
			}
			bobAfter, err := s.UserByID(t.Context(), bobID)
			if err != nil {
				t.Fatalf("UserByID(bob): %v", err)
			}
			if diff := cmp.Diff(bobBefore, bobAfter); diff != "" {
				t.Errorf("another user changed (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("update user/unknown id", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice())

		err := s.UpdateUser(t.Context(), "user-unknown", storage.UserUpdate{Disabled: &yes})
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UpdateUser(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("update user/disable hides tokens and clients", func(t *testing.T) {
		s := open(t)
		adminFixture(t, s)

		if err := s.UpdateUser(t.Context(), aliceID, storage.UserUpdate{Disabled: &yes}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		wantTokenStates(t, s, map[string]tokenState{
			"at-alice": tokenGone, "rt-alice": tokenGone, "at-alice-machine": tokenGone, "at-alice-legacy": tokenGone,
		})
		if _, err := s.GetClient(t.Context(), clientID); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("GetClient of a disabled user's client = %v, want fosite.ErrNotFound", err)
		}

		// The records stay active, so enabling the user brings them back.
		if err := s.UpdateUser(t.Context(), aliceID, storage.UserUpdate{Disabled: &no}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		wantTokenStates(t, s, nil)
	})
}

func testDeleteUser(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("delete user/cascades", func(t *testing.T) {
		s := open(t)
		adminFixture(t, s)

		if err := s.DeleteUser(t.Context(), aliceID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}

		if _, err := s.UserByID(t.Context(), aliceID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByID after delete = %v, want ErrNotFound", err)
		}
		if _, err := s.Client(t.Context(), clientID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Client of the deleted user = %v, want ErrNotFound", err)
		}
		wantTokenStates(t, s, map[string]tokenState{
			"at-alice": tokenGone, "rt-alice": tokenGone, "at-alice-machine": tokenGone, "at-alice-legacy": tokenGone,
		})
		if _, err := s.UserByID(t.Context(), bobID); err != nil {
			t.Errorf("UserByID(bob) after deleting alice: %v", err)
		}
		if _, err := s.Client(t.Context(), storage.LegacyClientID); err != nil {
			t.Errorf("built-in client after deleting alice: %v", err)
		}
	})

	t.Run("delete user/unknown id", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice())

		if err := s.DeleteUser(t.Context(), "user-unknown"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteUser(unknown) = %v, want ErrNotFound", err)
		}
		if err := s.DeleteUser(t.Context(), aliceID); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if err := s.DeleteUser(t.Context(), aliceID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteUser a second time = %v, want ErrNotFound", err)
		}
	})
}

func clientIDs(clients []*storage.Client) []string {
	ids := make([]string, 0, len(clients))
	for _, c := range clients {
		ids = append(ids, c.ID)
	}
	return ids
}

func testListClients(t *testing.T, open func(t *testing.T) *storage.Store) {
	listings := []struct {
		name    string
		ownerID string
		page    storage.Page
		want    []string
	}{
		{name: "all", want: []string{clientID, bobClientID}},
		{name: "one owner", ownerID: aliceID, want: []string{clientID}},
		{name: "other owner", ownerID: bobID, want: []string{bobClientID}},
		{name: "unknown owner", ownerID: "user-unknown", want: []string{}},
		{name: "limit", page: storage.Page{Limit: 1}, want: []string{clientID}},
		{name: "offset", page: storage.Page{Offset: 1}, want: []string{bobClientID}},
	}
	for _, tc := range listings {
		t.Run("list clients/"+tc.name, func(t *testing.T) {
			s := open(t)
			adminFixture(t, s)

			got, err := s.ListClients(t.Context(), tc.ownerID, tc.page)
			if err != nil {
				t.Fatalf("ListClients(%q, %+v): %v", tc.ownerID, tc.page, err)
			}
			if diff := cmp.Diff(tc.want, clientIDs(got)); diff != "" {
				t.Errorf("ListClients(%q, %+v) ids (-want +got):\n%s", tc.ownerID, tc.page, diff)
			}
		})
	}

	t.Run("list clients/fields", func(t *testing.T) {
		s := open(t)
		u := alice()
		u.Disabled = true
		mustCreateUser(t, s, u)
		created := reportsClient()
		mustCreateClient(t, s, created)

		got, err := s.ListClients(t.Context(), "", storage.Page{})
		if err != nil {
			t.Fatalf("ListClients: %v", err)
		}
		want := reportsClient()
		want.CreatedAt, want.UpdatedAt = created.CreatedAt, created.UpdatedAt
		want.OwnerDisabled = true
		if diff := cmp.Diff([]*storage.Client{want}, got, equateSecond); diff != "" {
			t.Errorf("ListClients mismatch (-want +got):\n%s", diff)
		}
	})
}

// clientChange is one admin change of a client, with a check of its
// effect on the stored client.
type clientChange struct {
	name  string
	apply func(ctx context.Context, s *storage.Store, id string) error
	check func(t *testing.T, c *storage.Client)
}

var clientChanges = []clientChange{
	{
		name: "disable",
		apply: func(ctx context.Context, s *storage.Store, id string) error {
			return s.SetClientDisabled(ctx, id, true)
		},
		check: func(t *testing.T, c *storage.Client) {
			if !c.Disabled {
				t.Errorf("Disabled = false, want true")
			}
		},
	},
	{
		name: "enable",
		apply: func(ctx context.Context, s *storage.Store, id string) error {
			if err := s.SetClientDisabled(ctx, id, true); err != nil {
				return err
			}
			return s.SetClientDisabled(ctx, id, false)
		},
		check: func(t *testing.T, c *storage.Client) {
			if c.Disabled {
				t.Errorf("Disabled = true, want false")
			}
		},
	},
	{
		name: "scopes",
		apply: func(ctx context.Context, s *storage.Store, id string) error {
			return s.SetClientScopes(ctx, id, []string{"reports.read"})
		},
		check: func(t *testing.T, c *storage.Client) {
			if diff := cmp.Diff([]string{"reports.read"}, c.Scopes); diff != "" {
				t.Errorf("Scopes (-want +got):\n%s", diff)
			}
		},
	},
	{
		name: "secret hash",
		apply: func(ctx context.Context, s *storage.Store, id string) error {
			return s.SetClientSecretHash(ctx, id, []byte("hmac-sha256$00ff"))
		},
		check: func(t *testing.T, c *storage.Client) {
			if string(c.SecretHash) != "hmac-sha256$00ff" {
				t.Errorf("SecretHash = %q, want the new hash", c.SecretHash)
			}
		},
	},
}

func testChangeClient(t *testing.T, open func(t *testing.T) *storage.Store) {
	for _, change := range clientChanges {
		t.Run("change client/"+change.name, func(t *testing.T) {
			s := open(t)
			adminFixture(t, s)
			bobBefore, err := s.Client(t.Context(), bobClientID)
			if err != nil {
				t.Fatalf("Client(%q): %v", bobClientID, err)
			}

			if err := change.apply(t.Context(), s, clientID); err != nil {
				t.Fatalf("%s: %v", change.name, err)
			}

			got, err := s.Client(t.Context(), clientID)
			if err != nil {
				t.Fatalf("Client: %v", err)
			}
			change.check(t, got)
			if got.UpdatedAt.Before(got.CreatedAt) {
				t.Errorf("UpdatedAt %v is before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
			}
			bobAfter, err := s.Client(t.Context(), bobClientID)
			if err != nil {
				t.Fatalf("Client(%q): %v", bobClientID, err)
			}
			if diff := cmp.Diff(bobBefore, bobAfter); diff != "" {
				t.Errorf("another client changed (-before +after):\n%s", diff)
			}
		})

		t.Run("change client/"+change.name+"/unknown id", func(t *testing.T) {
			s := open(t)
			adminFixture(t, s)

			if err := change.apply(t.Context(), s, "client-unknown"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s of an unknown client = %v, want ErrNotFound", change.name, err)
			}
		})

		t.Run("change client/"+change.name+"/built-in client", func(t *testing.T) {
			s := open(t)
			before, err := s.Client(t.Context(), storage.LegacyClientID)
			if err != nil {
				t.Fatalf("Client(%q): %v", storage.LegacyClientID, err)
			}

			if err := change.apply(t.Context(), s, storage.LegacyClientID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s of the built-in client = %v, want ErrNotFound", change.name, err)
			}

			after, err := s.Client(t.Context(), storage.LegacyClientID)
			if err != nil {
				t.Fatalf("Client(%q): %v", storage.LegacyClientID, err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("built-in client changed (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("change client/disable hides its tokens", func(t *testing.T) {
		s := open(t)
		adminFixture(t, s)

		if err := s.SetClientDisabled(t.Context(), clientID, true); err != nil {
			t.Fatalf("SetClientDisabled: %v", err)
		}
		wantTokenStates(t, s, map[string]tokenState{"at-alice": tokenGone, "rt-alice": tokenGone, "at-alice-machine": tokenGone})
	})
}

func testDeleteClient(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("delete client/cascades to tokens", func(t *testing.T) {
		s := open(t)
		adminFixture(t, s)

		if err := s.DeleteClient(t.Context(), clientID); err != nil {
			t.Fatalf("DeleteClient: %v", err)
		}

		if _, err := s.Client(t.Context(), clientID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Client after delete = %v, want ErrNotFound", err)
		}
		wantTokenStates(t, s, map[string]tokenState{"at-alice": tokenGone, "rt-alice": tokenGone, "at-alice-machine": tokenGone})
		if _, err := s.UserByID(t.Context(), aliceID); err != nil {
			t.Errorf("the owner after deleting the client: %v", err)
		}
		if err := s.DeleteClient(t.Context(), clientID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteClient a second time = %v, want ErrNotFound", err)
		}
	})

	for _, id := range []string{"client-unknown", storage.LegacyClientID} {
		t.Run("delete client/not found/"+id, func(t *testing.T) {
			s := open(t)
			adminFixture(t, s)

			if err := s.DeleteClient(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("DeleteClient(%q) = %v, want ErrNotFound", id, err)
			}
			wantTokenStates(t, s, nil)
			if _, err := s.Client(t.Context(), storage.LegacyClientID); err != nil {
				t.Errorf("built-in client: %v", err)
			}
		})
	}
}

func testRevokeTokens(t *testing.T, open func(t *testing.T) *storage.Store) {
	revocations := []struct {
		name        string
		revoke      func(ctx context.Context, s *storage.Store) (int64, error)
		wantRevoked int64
		wantStates  map[string]tokenState
	}{
		{
			name: "of client",
			revoke: func(ctx context.Context, s *storage.Store) (int64, error) {
				return s.RevokeTokensOfClient(ctx, clientID)
			},
			wantRevoked: 3,
			wantStates:  map[string]tokenState{"at-alice": tokenInactive, "rt-alice": tokenInactive, "at-alice-machine": tokenInactive},
		},
		{
			name:        "of user",
			revoke:      func(ctx context.Context, s *storage.Store) (int64, error) { return s.RevokeTokensOfUser(ctx, aliceID) },
			wantRevoked: 4,
			wantStates: map[string]tokenState{
				"at-alice": tokenInactive, "rt-alice": tokenInactive, "at-alice-machine": tokenInactive, "at-alice-legacy": tokenInactive,
			},
		},
	}
	for _, tc := range revocations {
		t.Run("revoke tokens/"+tc.name, func(t *testing.T) {
			s := open(t)
			adminFixture(t, s)

			revoked, err := tc.revoke(t.Context(), s)
			if err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if revoked != tc.wantRevoked {
				t.Errorf("revoked %d tokens, want %d", revoked, tc.wantRevoked)
			}
			wantTokenStates(t, s, tc.wantStates)

			// Revoking again finds nothing left to deactivate.
			again, err := tc.revoke(t.Context(), s)
			if err != nil {
				t.Fatalf("revoke again: %v", err)
			}
			if again != 0 {
				t.Errorf("revoking again deactivated %d tokens, want 0", again)
			}
			wantTokenStates(t, s, tc.wantStates)
		})
	}

	notFound := []struct {
		name   string
		revoke func(ctx context.Context, s *storage.Store) (int64, error)
	}{
		{name: "unknown client", revoke: func(ctx context.Context, s *storage.Store) (int64, error) {
			return s.RevokeTokensOfClient(ctx, "client-unknown")
		}},
		{name: "built-in client", revoke: func(ctx context.Context, s *storage.Store) (int64, error) {
			return s.RevokeTokensOfClient(ctx, storage.LegacyClientID)
		}},
		{name: "unknown user", revoke: func(ctx context.Context, s *storage.Store) (int64, error) {
			return s.RevokeTokensOfUser(ctx, "user-unknown")
		}},
	}
	for _, tc := range notFound {
		t.Run("revoke tokens/"+tc.name, func(t *testing.T) {
			s := open(t)
			adminFixture(t, s)

			if _, err := tc.revoke(t.Context(), s); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("revoke = %v, want ErrNotFound", err)
			}
			wantTokenStates(t, s, nil)
		})
	}

	t.Run("revoke tokens/of family", func(t *testing.T) {
		s := open(t)
		adminFixture(t, s)

		if err := s.RevokeTokenFamily(t.Context(), "req-alice"); err != nil {
			t.Fatalf("RevokeTokenFamily: %v", err)
		}
		wantTokenStates(t, s, map[string]tokenState{"at-alice": tokenInactive, "rt-alice": tokenInactive})
	})

	t.Run("revoke tokens/unknown family", func(t *testing.T) {
		s := open(t)
		adminFixture(t, s)

		if err := s.RevokeTokenFamily(t.Context(), "req-unknown"); err != nil {
			t.Errorf("RevokeTokenFamily(unknown) = %v, want nil", err)
		}
		wantTokenStates(t, s, nil)
	})
}

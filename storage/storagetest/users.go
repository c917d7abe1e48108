package storagetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/quanux/authserver/storage"
)

const (
	aliceID   = "user-alice"
	aliceHash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"
)

// alice returns the user most cases start from.
func alice() storage.User {
	return storage.User{
		ID:           aliceID,
		Username:     "Alice",
		PasswordHash: aliceHash,
		Scopes:       []string{"openid", "profile"},
	}
}

func mustCreateUser(t *testing.T, s *storage.Store, u storage.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q): %v", u.ID, err)
	}
}

// ignoreUserTimes leaves the store-assigned timestamps out of user diffs,
// because tests check them separately.
var ignoreUserTimes = cmpopts.IgnoreFields(storage.User{}, "CreatedAt", "UpdatedAt")

func testUsers(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("create and look up by id", func(t *testing.T) {
		s := open(t)
		want := alice()
		mustCreateUser(t, s, want)

		got, err := s.UserByID(t.Context(), aliceID)
		if err != nil {
			t.Fatalf("UserByID: %v", err)
		}
		if diff := cmp.Diff(want, got, ignoreUserTimes); diff != "" {
			t.Errorf("UserByID mismatch (-want +got):\n%s", diff)
		}
		if got.CreatedAt.IsZero() {
			t.Errorf("CreatedAt is zero")
		}
		if got.UpdatedAt.IsZero() {
			t.Errorf("UpdatedAt is zero")
		}
	})

	t.Run("disabled flag round trip", func(t *testing.T) {
		s := open(t)
		want := alice()
		want.Disabled = true
		mustCreateUser(t, s, want)

		got, err := s.UserByID(t.Context(), aliceID)
		if err != nil {
			t.Fatalf("UserByID: %v", err)
		}
		if !got.Disabled {
			t.Errorf("Disabled = false, want true")
		}
	})

	lookups := []struct {
		name     string
		username string
	}{
		{name: "same form", username: "Alice"},
		{name: "upper case", username: "ALICE"},
		{name: "lower case", username: "alice"},
		{name: "full width", username: "Ａｌｉｃｅ"},
	}
	for _, tc := range lookups {
		t.Run("look up by username/"+tc.name, func(t *testing.T) {
			s := open(t)
			mustCreateUser(t, s, alice())

			got, err := s.UserByUsername(t.Context(), tc.username)
			if err != nil {
				t.Fatalf("UserByUsername(%q): %v", tc.username, err)
			}
			if diff := cmp.Diff(alice(), got, ignoreUserTimes); diff != "" {
				t.Errorf("UserByUsername(%q) mismatch (-want +got):\n%s", tc.username, diff)
			}
		})
	}

	conflicts := []struct {
		name string
		user storage.User
	}{
		{name: "same username", user: storage.User{ID: "user-2", Username: "Alice", PasswordHash: "x"}},
		{name: "upper case username", user: storage.User{ID: "user-2", Username: "ALICE", PasswordHash: "x"}},
		{name: "full width username", user: storage.User{ID: "user-2", Username: "Ａｌｉｃｅ", PasswordHash: "x"}},
		{name: "same id", user: storage.User{ID: aliceID, Username: "bob", PasswordHash: "x"}},
	}
	for _, tc := range conflicts {
		t.Run("create conflict/"+tc.name, func(t *testing.T) {
			s := open(t)
			mustCreateUser(t, s, alice())

			err := s.CreateUser(t.Context(), tc.user)
			if !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("CreateUser(%q, %q) = %v, want ErrConflict", tc.user.ID, tc.user.Username, err)
			}

			got, err := s.UserByID(t.Context(), aliceID)
			if err != nil {
				t.Fatalf("UserByID after conflict: %v", err)
			}
			if diff := cmp.Diff(alice(), got, ignoreUserTimes); diff != "" {
				t.Errorf("existing user changed by conflicting create (-want +got):\n%s", diff)
			}
		})
	}

	invalid := []struct {
		name     string
		username string
	}{
		{name: "empty", username: ""},
		{name: "space", username: "alice smith"},
		{name: "control character", username: "alice\x00"},
		{name: "too long", username: strings.Repeat("a", storage.MaxUsernameLength+1)},
	}
	for _, tc := range invalid {
		t.Run("invalid username/"+tc.name, func(t *testing.T) {
			s := open(t)

			err := s.CreateUser(t.Context(), storage.User{ID: "user-x", Username: tc.username, PasswordHash: "x"})
			if !errors.Is(err, storage.ErrInvalidUsername) {
				t.Errorf("CreateUser(%q) = %v, want ErrInvalidUsername", tc.username, err)
			}

			if _, err := s.UserByID(t.Context(), "user-x"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("UserByID after rejected create = %v, want ErrNotFound", err)
			}
			if _, err := s.UserByUsername(t.Context(), tc.username); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("UserByUsername(%q) = %v, want ErrNotFound", tc.username, err)
			}
		})
	}

	t.Run("unknown user", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice())

		if _, err := s.UserByID(t.Context(), "user-unknown"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByID(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.UserByUsername(t.Context(), "bob"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByUsername(unknown) = %v, want ErrNotFound", err)
		}
	})

	const newHash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3c2FsdA$bmV3aGFzaA"
	updates := []struct {
		name     string
		id       string
		old      string
		wantErr  error
		wantHash string
	}{
		{name: "matching old hash", id: aliceID, old: aliceHash, wantHash: newHash},
		{name: "stale old hash", id: aliceID, old: "$argon2id$stale", wantErr: storage.ErrNotFound, wantHash: aliceHash},
		{name: "empty old hash", id: aliceID, old: "", wantErr: storage.ErrNotFound, wantHash: aliceHash},
		{name: "unknown user", id: "user-unknown", old: aliceHash, wantErr: storage.ErrNotFound, wantHash: aliceHash},
	}
	for _, tc := range updates {
		t.Run("update password hash/"+tc.name, func(t *testing.T) {
			s := open(t)
			mustCreateUser(t, s, alice())

			err := s.UpdatePasswordHash(t.Context(), tc.id, tc.old, newHash)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("UpdatePasswordHash = %v, want %v", err, tc.wantErr)
			}

			got, err := s.UserByID(t.Context(), aliceID)
			if err != nil {
				t.Fatalf("UserByID: %v", err)
			}
			if got.PasswordHash != tc.wantHash {
				t.Errorf("PasswordHash = %q, want %q", got.PasswordHash, tc.wantHash)
			}
		})
	}
}

package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

const clientID = "client-reports"

// reportsClient returns a confidential client owned by alice.
func reportsClient() *storage.Client {
	return &storage.Client{
		ID:         clientID,
		Name:       "Reports",
		Email:      "reports@example.com",
		SecretHash: []byte("$pbkdf2-sha256$i=1000$c2FsdA$a2V5ZWQtaGFzaA"),
		OwnerID:    aliceID,
		Scopes:     []string{"openid", "reports.read"},
		GrantTypes: []string{"client_credentials", "refresh_token"},
	}
}

func mustCreateClient(t *testing.T, s *storage.Store, c *storage.Client) {
	t.Helper()
	if err := s.CreateClient(t.Context(), c); err != nil {
		t.Fatalf("CreateClient(%q): %v", c.ID, err)
	}
}

// fositeClient is the part of a client that fosite reads.
type fositeClient struct {
	ID           string
	HashedSecret []byte
	Scopes       []string
	GrantTypes   []string
	Public       bool
}

func fositeView(c fosite.Client) fositeClient {
	return fositeClient{
		ID:           c.GetID(),
		HashedSecret: c.GetHashedSecret(),
		Scopes:       c.GetScopes(),
		GrantTypes:   c.GetGrantTypes(),
		Public:       c.IsPublic(),
	}
}

func testClients(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("create and look up", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice())
		created := reportsClient()
		mustCreateClient(t, s, created)
		if created.CreatedAt.IsZero() || created.UpdatedAt.IsZero() {
			t.Errorf("CreateClient left CreatedAt %v, UpdatedAt %v; want both set", created.CreatedAt, created.UpdatedAt)
		}

		got, err := s.Client(t.Context(), clientID)
		if err != nil {
			t.Fatalf("Client: %v", err)
		}
		want := reportsClient()
		want.CreatedAt, want.UpdatedAt = created.CreatedAt, created.UpdatedAt
		want.OwnerScopes = alice().Scopes
		if diff := cmp.Diff(want, got, cmpopts.EquateApproxTime(time.Second)); diff != "" {
			t.Errorf("Client mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("public client round trip", func(t *testing.T) {
		s := open(t)
		want := &storage.Client{
			ID:         "client-cli",
			Name:       "CLI",
			Scopes:     []string{"openid"},
			GrantTypes: []string{"password"},
			Public:     true,
		}
		mustCreateClient(t, s, want)

		got, err := s.Client(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Client: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateApproxTime(time.Second), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Client mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("GetClient returns fosite fields", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice())
		mustCreateClient(t, s, reportsClient())

		got, err := s.GetClient(t.Context(), clientID)
		if err != nil {
			t.Fatalf("GetClient: %v", err)
		}
		if diff := cmp.Diff(fositeView(reportsClient()), fositeView(got)); diff != "" {
			t.Errorf("GetClient mismatch (-want +got):\n%s", diff)
		}
	})

	notFound := []struct {
		name string
		// setup creates what the case needs and returns the client id to
		// look up.
		setup             func(t *testing.T, s *storage.Store) string
		wantStored        bool
		wantDisabled      bool
		wantOwnerDisabled bool
	}{
		{
			name:  "unknown client",
			setup: func(*testing.T, *storage.Store) string { return "client-unknown" },
		},
		{
			name: "disabled client",
			setup: func(t *testing.T, s *storage.Store) string {
				mustCreateUser(t, s, alice())
				c := reportsClient()
				c.Disabled = true
				mustCreateClient(t, s, c)
				return c.ID
			},
			wantStored:   true,
			wantDisabled: true,
		},
		{
			name: "disabled owner",
			setup: func(t *testing.T, s *storage.Store) string {
				u := alice()
				u.Disabled = true
				mustCreateUser(t, s, u)
				c := reportsClient()
				mustCreateClient(t, s, c)
				return c.ID
			},
			wantStored:        true,
			wantOwnerDisabled: true,
		},
	}
	for _, tc := range notFound {
		t.Run("GetClient not found/"+tc.name, func(t *testing.T) {
			s := open(t)
			id := tc.setup(t, s)

			got, err := s.GetClient(t.Context(), id)
			if !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("GetClient(%q) = %v, %v; want fosite.ErrNotFound", id, got, err)
			}

			// Client still returns a disabled client, with the flag that
			// explains why GetClient hides it.
			stored, err := s.Client(t.Context(), id)
			if !tc.wantStored {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Client(%q) = %v, want ErrNotFound", id, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Client(%q): %v", id, err)
			}
			if stored.Disabled != tc.wantDisabled {
				t.Errorf("Disabled = %t, want %t", stored.Disabled, tc.wantDisabled)
			}
			if stored.OwnerDisabled != tc.wantOwnerDisabled {
				t.Errorf("OwnerDisabled = %t, want %t", stored.OwnerDisabled, tc.wantOwnerDisabled)
			}
		})
	}

	t.Run("unknown owner", func(t *testing.T) {
		s := open(t)

		err := s.CreateClient(t.Context(), reportsClient())
		if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("CreateClient with unknown owner = %v, want ErrNotFound", err)
		}
		if _, err := s.Client(t.Context(), clientID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Client after rejected create = %v, want ErrNotFound", err)
		}
	})

	duplicates := []struct {
		name string
		id   string
	}{
		{name: "registered client", id: clientID},
		{name: "built-in legacy client", id: storage.LegacyClientID},
	}
	for _, tc := range duplicates {
		t.Run("duplicate id/"+tc.name, func(t *testing.T) {
			s := open(t)
			mustCreateUser(t, s, alice())
			mustCreateClient(t, s, reportsClient())
			before, err := s.Client(t.Context(), tc.id)
			if err != nil {
				t.Fatalf("Client(%q) before: %v", tc.id, err)
			}

			dup := &storage.Client{ID: tc.id, Name: "Impostor", GrantTypes: []string{"password"}, Public: true}
			if err := s.CreateClient(t.Context(), dup); !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("CreateClient(%q) again = %v, want ErrConflict", tc.id, err)
			}

			after, err := s.Client(t.Context(), tc.id)
			if err != nil {
				t.Fatalf("Client(%q) after: %v", tc.id, err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("client changed by conflicting create (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("built-in legacy client", func(t *testing.T) {
		s := open(t)

		got, err := s.GetClient(t.Context(), storage.LegacyClientID)
		if err != nil {
			t.Fatalf("GetClient(%q): %v", storage.LegacyClientID, err)
		}
		if !got.IsPublic() {
			t.Errorf("IsPublic() = false, want true")
		}
		if len(got.GetHashedSecret()) != 0 {
			t.Errorf("GetHashedSecret() = %q, want empty", got.GetHashedSecret())
		}
		if diff := cmp.Diff(fosite.Arguments{"password"}, got.GetGrantTypes()); diff != "" {
			t.Errorf("GetGrantTypes() mismatch (-want +got):\n%s", diff)
		}
	})
}

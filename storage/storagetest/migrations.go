package storagetest

import (
	"testing"

	"github.com/quanux/authserver/storage"
)

func testMigrations(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("migrate again is a no-op", func(t *testing.T) {
		s := open(t)
		mustCreateUser(t, s, alice())

		applied, err := s.Migrate(t.Context())
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if len(applied) != 0 {
			t.Errorf("Migrate on a migrated store applied %v, want none", applied)
		}

		pending, err := s.PendingMigrations(t.Context())
		if err != nil {
			t.Fatalf("PendingMigrations: %v", err)
		}
		if len(pending) != 0 {
			t.Errorf("PendingMigrations = %v, want none", pending)
		}

		// Data written before the second run survives it.
		if _, err := s.UserByID(t.Context(), aliceID); err != nil {
			t.Errorf("UserByID after second Migrate: %v", err)
		}
		if _, err := s.Client(t.Context(), storage.LegacyClientID); err != nil {
			t.Errorf("Client(%q) after second Migrate: %v", storage.LegacyClientID, err)
		}
	})
}

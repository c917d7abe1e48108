package storagetest

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

func testTokenSessions(t *testing.T, open func(t *testing.T) *storage.Store) {
	testTokenRoundTrip(t, open)
	testTokenLookupErrors(t, open)
	testTokenRevocation(t, open)
	testTokenRotation(t, open)
	testTokenDeletion(t, open)
}

func testTokenRoundTrip(t *testing.T, open func(t *testing.T) *storage.Store) {
	owners := []struct {
		name   string
		userID string
	}{
		{name: "user token", userID: aliceID},
		{name: "client token", userID: ""},
	}
	for _, kind := range tokenKinds {
		for _, owner := range owners {
			t.Run("round trip/"+kind.name+"/"+owner.name, func(t *testing.T) {
				s := open(t)
				tokenFixture(t, s)
				req := newRequest("req-1", clientID, owner.userID)
				want := viewRequest(t, req)
				want.Form = storedForm()

				mustCreateToken(t, s, kind, "sig-1", req)
				got := mustGetActive(t, s, kind, "sig-1")

				if diff := cmp.Diff(want, viewRequest(t, got), equateSecond); diff != "" {
					t.Errorf("stored request mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}

	for _, kind := range tokenKinds {
		t.Run("get without session/"+kind.name, func(t *testing.T) {
			s := open(t)
			tokenFixture(t, s)
			req := newRequest("req-1", clientID, aliceID)
			want := viewRequest(t, req)
			want.Form = storedForm()
			mustCreateToken(t, s, kind, "sig-1", req)

			// Revocation passes no session, so the store makes one with
			// Config.NewSession.
			got, err := kind.get(t.Context(), s, "sig-1", nil)
			if err != nil {
				t.Fatalf("get %s token with nil session: %v", kind.name, err)
			}
			if diff := cmp.Diff(want, viewRequest(t, got), equateSecond); diff != "" {
				t.Errorf("stored request mismatch (-want +got):\n%s", diff)
			}
		})
	}

	credentials := []string{"password", "client_secret", "refresh_token", "client_assertion", "code"}
	for _, param := range credentials {
		t.Run("form drops credential/"+param, func(t *testing.T) {
			s := open(t)
			tokenFixture(t, s)
			req := newRequest("req-1", clientID, aliceID)
			req.Form = url.Values{"grant_type": {"password"}, param: {"credential-value"}}
			mustCreateToken(t, s, accessKind, "sig-1", req)

			got := mustGetActive(t, s, accessKind, "sig-1").GetRequestForm()
			if got.Has(param) {
				t.Errorf("stored form has %q = %q, want it dropped", param, got[param])
			}
			if got.Get("grant_type") != "password" {
				t.Errorf("stored form grant_type = %q, want %q", got.Get("grant_type"), "password")
			}
		})
	}
}

func testTokenLookupErrors(t *testing.T, open func(t *testing.T) *storage.Store) {
	for _, kind := range tokenKinds {
		t.Run("unknown signature/"+kind.name, func(t *testing.T) {
			s := open(t)
			tokenFixture(t, s)
			mustCreateToken(t, s, kind, "sig-1", newRequest("req-1", clientID, aliceID))

			_, err := kind.get(t.Context(), s, "sig-unknown", NewSession())
			if !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("get %s token %q = %v, want fosite.ErrNotFound", kind.name, "sig-unknown", err)
			}
		})
	}

	// A signature of one kind must not find a token of the other.
	kindPairs := []struct {
		stored, looked tokenKind
	}{
		{stored: accessKind, looked: refreshKind},
		{stored: refreshKind, looked: accessKind},
	}
	for _, tc := range kindPairs {
		t.Run("other kind/"+tc.looked.name+" finds no "+tc.stored.name, func(t *testing.T) {
			s := open(t)
			tokenFixture(t, s)
			mustCreateToken(t, s, tc.stored, "sig-1", newRequest("req-1", clientID, aliceID))

			_, err := tc.looked.get(t.Context(), s, "sig-1", NewSession())
			if !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("get %s token with %s signature = %v, want fosite.ErrNotFound", tc.looked.name, tc.stored.name, err)
			}
		})
	}

	disabled := []struct {
		name string
		// setup creates the user and client and returns the request whose
		// tokens must not be found.
		setup func(t *testing.T, s *storage.Store) *fosite.Request
	}{
		{
			name: "disabled user",
			setup: func(t *testing.T, s *storage.Store) *fosite.Request {
				u := alice()
				u.Disabled = true
				mustCreateUser(t, s, u)
				mustCreateClient(t, s, &storage.Client{ID: "client-cli", Name: "CLI", Public: true})
				return newRequest("req-1", "client-cli", aliceID)
			},
		},
		{
			name: "disabled client",
			setup: func(t *testing.T, s *storage.Store) *fosite.Request {
				mustCreateUser(t, s, alice())
				mustCreateClient(t, s, &storage.Client{ID: "client-cli", Name: "CLI", Public: true, Disabled: true})
				return newRequest("req-1", "client-cli", aliceID)
			},
		},
		{
			name: "client of disabled owner",
			setup: func(t *testing.T, s *storage.Store) *fosite.Request {
				u := alice()
				u.Disabled = true
				mustCreateUser(t, s, u)
				mustCreateClient(t, s, reportsClient())
				return newRequest("req-1", clientID, "")
			},
		},
	}
	for _, tc := range disabled {
		for _, kind := range tokenKinds {
			t.Run("not found for "+tc.name+"/"+kind.name, func(t *testing.T) {
				s := open(t)
				req := tc.setup(t, s)
				mustCreateToken(t, s, kind, "sig-1", req)

				_, err := kind.get(t.Context(), s, "sig-1", NewSession())
				if !errors.Is(err, fosite.ErrNotFound) {
					t.Errorf("get %s token = %v, want fosite.ErrNotFound", kind.name, err)
				}
			})
		}
	}
}

// twoFamilies stores an access and a refresh token for each of two request
// families: at-1/rt-1 for req-1 and at-2/rt-2 for req-2.
func twoFamilies(t *testing.T, s *storage.Store) {
	t.Helper()
	tokenFixture(t, s)
	for _, family := range []string{"1", "2"} {
		req := newRequest("req-"+family, clientID, aliceID)
		mustCreateToken(t, s, accessKind, "at-"+family, req)
		if err := s.CreateRefreshTokenSession(t.Context(), "rt-"+family, "at-"+family, req); err != nil {
			t.Fatalf("CreateRefreshTokenSession(rt-%s): %v", family, err)
		}
	}
}

// wantInactive fails the test if the token is returned as active. Both
// ErrInactiveToken and ErrNotFound count, because fosite's reference
// MemoryStore deletes a revoked access token where this store keeps it
// inactive.
func wantInactive(t *testing.T, s *storage.Store, kind tokenKind, signature string) {
	t.Helper()
	_, err := kind.get(t.Context(), s, signature, NewSession())
	if !errors.Is(err, fosite.ErrInactiveToken) && !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("get %s token %q = %v, want fosite.ErrInactiveToken or fosite.ErrNotFound", kind.name, signature, err)
	}
}

// wantInactiveWithRequest fails the test unless the lookup returns the
// request together with fosite.ErrInactiveToken, which fosite's refresh
// handler needs to revoke the token family on reuse.
func wantInactiveWithRequest(t *testing.T, s *storage.Store, kind tokenKind, signature, requestID string) {
	t.Helper()
	req, err := kind.get(t.Context(), s, signature, NewSession())
	if !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("get %s token %q = %v, want fosite.ErrInactiveToken", kind.name, signature, err)
	}
	if req == nil {
		t.Errorf("get %s token %q returned no request with the inactive-token error", kind.name, signature)
		return
	}
	if req.GetID() != requestID {
		t.Errorf("get %s token %q returned request %q, want %q", kind.name, signature, req.GetID(), requestID)
	}
}

func testTokenRevocation(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("revoke refresh token", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)

		if err := s.RevokeRefreshToken(t.Context(), "req-1"); err != nil {
			t.Fatalf("RevokeRefreshToken: %v", err)
		}

		wantInactiveWithRequest(t, s, refreshKind, "rt-1", "req-1")
		mustGetActive(t, s, refreshKind, "rt-2")
		mustGetActive(t, s, accessKind, "at-2")
	})

	t.Run("revoke access token", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)

		if err := s.RevokeAccessToken(t.Context(), "req-1"); err != nil {
			t.Fatalf("RevokeAccessToken: %v", err)
		}

		wantInactive(t, s, accessKind, "at-1")
		mustGetActive(t, s, accessKind, "at-2")
		mustGetActive(t, s, refreshKind, "rt-2")
	})

	t.Run("revoke unknown family", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)

		if err := s.RevokeRefreshToken(t.Context(), "req-unknown"); err != nil {
			t.Errorf("RevokeRefreshToken(unknown) = %v, want nil", err)
		}
		if err := s.RevokeAccessToken(t.Context(), "req-unknown"); err != nil {
			t.Errorf("RevokeAccessToken(unknown) = %v, want nil", err)
		}
		for _, sig := range []string{"at-1", "at-2"} {
			mustGetActive(t, s, accessKind, sig)
		}
		for _, sig := range []string{"rt-1", "rt-2"} {
			mustGetActive(t, s, refreshKind, sig)
		}
	})
}

func testTokenRotation(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("rotate refresh token", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)

		if err := s.RotateRefreshToken(t.Context(), "req-1", "rt-1"); err != nil {
			t.Fatalf("RotateRefreshToken: %v", err)
		}

		wantInactiveWithRequest(t, s, refreshKind, "rt-1", "req-1")
		wantInactive(t, s, accessKind, "at-1")
		mustGetActive(t, s, refreshKind, "rt-2")
		mustGetActive(t, s, accessKind, "at-2")
	})

	t.Run("successors of rotated token stay active", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)
		if err := s.RotateRefreshToken(t.Context(), "req-1", "rt-1"); err != nil {
			t.Fatalf("RotateRefreshToken: %v", err)
		}

		// fosite's refresh handler keeps the request id of the family and
		// stores the new pair right after the rotation.
		successor := newRequest("req-1", clientID, aliceID)
		mustCreateToken(t, s, accessKind, "at-1b", successor)
		if err := s.CreateRefreshTokenSession(t.Context(), "rt-1b", "at-1b", successor); err != nil {
			t.Fatalf("CreateRefreshTokenSession(rt-1b): %v", err)
		}

		mustGetActive(t, s, accessKind, "at-1b")
		mustGetActive(t, s, refreshKind, "rt-1b")
		wantInactiveWithRequest(t, s, refreshKind, "rt-1", "req-1")
	})

	t.Run("rotate twice", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)
		if err := s.RotateRefreshToken(t.Context(), "req-1", "rt-1"); err != nil {
			t.Fatalf("first RotateRefreshToken: %v", err)
		}

		err := s.RotateRefreshToken(t.Context(), "req-1", "rt-1")
		if !errors.Is(err, fosite.ErrSerializationFailure) {
			t.Errorf("second RotateRefreshToken = %v, want fosite.ErrSerializationFailure", err)
		}
	})

	t.Run("concurrent rotation", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)

		const callers = 8
		rotations := make([]func(ctx context.Context) error, callers)
		for i := range rotations {
			rotations[i] = func(ctx context.Context) error {
				return s.RotateRefreshToken(ctx, "req-1", "rt-1")
			}
		}
		errs := startTogether(t, rotations...)

		succeeded := 0
		for i, err := range errs {
			switch {
			case err == nil:
				succeeded++
			case !errors.Is(err, fosite.ErrSerializationFailure):
				t.Errorf("caller %d: RotateRefreshToken = %v, want nil or fosite.ErrSerializationFailure", i, err)
			}
		}
		if succeeded != 1 {
			t.Errorf("%d of %d concurrent rotations succeeded, want exactly 1", succeeded, callers)
		}
		wantInactiveWithRequest(t, s, refreshKind, "rt-1", "req-1")
	})
}

func testTokenDeletion(t *testing.T, open func(t *testing.T) *storage.Store) {
	others := map[string]tokenKind{accessKind.name: refreshKind, refreshKind.name: accessKind}
	for _, kind := range tokenKinds {
		t.Run("delete/"+kind.name, func(t *testing.T) {
			s := open(t)
			tokenFixture(t, s)
			req := newRequest("req-1", clientID, aliceID)
			other := others[kind.name]
			mustCreateToken(t, s, kind, "sig-deleted", req)
			mustCreateToken(t, s, kind, "sig-kept", req)
			mustCreateToken(t, s, other, "sig-other-kind", req)

			if err := kind.delete(t.Context(), s, "sig-deleted"); err != nil {
				t.Fatalf("delete %s token: %v", kind.name, err)
			}

			if _, err := kind.get(t.Context(), s, "sig-deleted", NewSession()); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("get deleted %s token = %v, want fosite.ErrNotFound", kind.name, err)
			}
			mustGetActive(t, s, kind, "sig-kept")
			mustGetActive(t, s, other, "sig-other-kind")
			if err := kind.delete(t.Context(), s, "sig-deleted"); err != nil {
				t.Errorf("delete %s token again = %v, want nil", kind.name, err)
			}
		})
	}

	t.Run("delete expired tokens", func(t *testing.T) {
		s := open(t)
		tokenFixture(t, s)
		expired := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		live := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		cutoff := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

		tokens := []struct {
			kind      tokenKind
			signature string
			// expiresAt is the expiry for the token's kind. Zero means the
			// session sets none.
			expiresAt   time.Time
			wantDeleted bool
		}{
			{kind: accessKind, signature: "at-expired", expiresAt: expired, wantDeleted: true},
			{kind: refreshKind, signature: "rt-expired", expiresAt: expired, wantDeleted: true},
			{kind: accessKind, signature: "at-live", expiresAt: live},
			{kind: refreshKind, signature: "rt-live", expiresAt: live},
			{kind: refreshKind, signature: "rt-no-expiry"},
		}
		wantDeleted := int64(0)
		for _, tok := range tokens {
			req := newRequest("req-"+tok.signature, clientID, aliceID)
			session := sessionOf(t, req)
			delete(session.ExpiresAt, fosite.AccessToken)
			delete(session.ExpiresAt, fosite.RefreshToken)
			if !tok.expiresAt.IsZero() {
				tokenType := fosite.AccessToken
				if tok.kind.name == refreshKind.name {
					tokenType = fosite.RefreshToken
				}
				session.ExpiresAt[tokenType] = tok.expiresAt
			}
			mustCreateToken(t, s, tok.kind, tok.signature, req)
			if tok.wantDeleted {
				wantDeleted++
			}
		}

		deleted, err := s.DeleteExpiredTokens(t.Context(), cutoff)
		if err != nil {
			t.Fatalf("DeleteExpiredTokens: %v", err)
		}
		if deleted != wantDeleted {
			t.Errorf("DeleteExpiredTokens deleted %d, want %d", deleted, wantDeleted)
		}
		for _, tok := range tokens {
			_, err := tok.kind.get(t.Context(), s, tok.signature, NewSession())
			if tok.wantDeleted && !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("get %s after cleanup = %v, want fosite.ErrNotFound", tok.signature, err)
			}
			if !tok.wantDeleted && err != nil {
				t.Errorf("get %s after cleanup = %v, want it kept", tok.signature, err)
			}
		}
	})
}

package storagetest

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

var (
	// requestedAt has a fractional second, which a database may round.
	requestedAt      = time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	accessExpiresAt  = time.Date(2030, 1, 2, 4, 4, 5, 0, time.UTC)
	refreshExpiresAt = time.Date(2030, 2, 1, 3, 4, 5, 0, time.UTC)
)

// requestForm returns a token request form that carries credentials, as the
// password and refresh grants receive it.
func requestForm() url.Values {
	return url.Values{
		"grant_type":    {"password"},
		"username":      {"alice"},
		"scope":         {"openid offline"},
		"client_id":     {clientID},
		"password":      {"correct horse battery staple"},
		"client_secret": {"client-secret-value"},
		"refresh_token": {"refresh-token-value"},
	}
}

// storedForm is requestForm without the parameters that carry credentials.
func storedForm() url.Values {
	return url.Values{
		"grant_type": {"password"},
		"username":   {"alice"},
		"scope":      {"openid offline"},
		"client_id":  {clientID},
	}
}

// newRequest returns a token request of family requestID for the client,
// acting for userID, or for the client itself when userID is empty.
func newRequest(requestID, client, userID string) *fosite.Request {
	session := newSession()
	session.User = userID
	session.Subject = userID
	if userID == "" {
		session.Subject = client
	}
	session.Username = "alice"
	session.ExpiresAt[fosite.AccessToken] = accessExpiresAt
	session.ExpiresAt[fosite.RefreshToken] = refreshExpiresAt

	return &fosite.Request{
		ID:                requestID,
		RequestedAt:       requestedAt,
		Client:            &storage.Client{ID: client},
		RequestedScope:    fosite.Arguments{"openid", "offline", "reports.read"},
		GrantedScope:      fosite.Arguments{"openid", "offline"},
		RequestedAudience: fosite.Arguments{"https://api.example.com"},
		GrantedAudience:   fosite.Arguments{"https://api.example.com"},
		Form:              requestForm(),
		Session:           session,
	}
}

// sessionOf returns the *Session of a request that newRequest built.
func sessionOf(t *testing.T, req fosite.Requester) *Session {
	t.Helper()
	session, ok := req.GetSession().(*Session)
	if !ok {
		t.Fatalf("request %s has session %T, want *Session", req.GetID(), req.GetSession())
	}
	return session
}

// requestView is the part of a stored request that must survive a round
// trip.
type requestView struct {
	ID                string
	ClientID          string
	RequestedScopes   []string
	GrantedScopes     []string
	RequestedAudience []string
	GrantedAudience   []string
	Form              url.Values
	RequestedAt       time.Time
	Subject           string
	Username          string
	UserID            string
	AccessExpiresAt   time.Time
	RefreshExpiresAt  time.Time
}

func viewRequest(t *testing.T, req fosite.Requester) requestView {
	t.Helper()
	session := sessionOf(t, req)
	return requestView{
		ID:                req.GetID(),
		ClientID:          req.GetClient().GetID(),
		RequestedScopes:   req.GetRequestedScopes(),
		GrantedScopes:     req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Form:              req.GetRequestForm(),
		RequestedAt:       req.GetRequestedAt(),
		Subject:           session.GetSubject(),
		Username:          session.GetUsername(),
		UserID:            session.UserID(),
		AccessExpiresAt:   session.GetExpiresAt(fosite.AccessToken),
		RefreshExpiresAt:  session.GetExpiresAt(fosite.RefreshToken),
	}
}

// tokenKind abstracts over access and refresh tokens, so one table can
// cover both.
type tokenKind struct {
	name   string
	create func(ctx context.Context, s *storage.Store, signature string, req fosite.Requester) error
	get    func(ctx context.Context, s *storage.Store, signature string, session fosite.Session) (fosite.Requester, error)
	delete func(ctx context.Context, s *storage.Store, signature string) error
}

var (
	accessKind = tokenKind{
		name: "access",
		create: func(ctx context.Context, s *storage.Store, signature string, req fosite.Requester) error {
			return s.CreateAccessTokenSession(ctx, signature, req)
		},
		get: func(ctx context.Context, s *storage.Store, signature string, session fosite.Session) (fosite.Requester, error) {
			return s.GetAccessTokenSession(ctx, signature, session)
		},
		delete: func(ctx context.Context, s *storage.Store, signature string) error {
			return s.DeleteAccessTokenSession(ctx, signature)
		},
	}
	refreshKind = tokenKind{
		name: "refresh",
		create: func(ctx context.Context, s *storage.Store, signature string, req fosite.Requester) error {
			return s.CreateRefreshTokenSession(ctx, signature, signature+"-access", req)
		},
		get: func(ctx context.Context, s *storage.Store, signature string, session fosite.Session) (fosite.Requester, error) {
			return s.GetRefreshTokenSession(ctx, signature, session)
		},
		delete: func(ctx context.Context, s *storage.Store, signature string) error {
			return s.DeleteRefreshTokenSession(ctx, signature)
		},
	}
	tokenKinds = []tokenKind{accessKind, refreshKind}
)

func mustCreateToken(t *testing.T, s *storage.Store, kind tokenKind, signature string, req fosite.Requester) {
	t.Helper()
	if err := kind.create(t.Context(), s, signature, req); err != nil {
		t.Fatalf("create %s token %q: %v", kind.name, signature, err)
	}
}

// mustGetActive fails the test unless the token is found and active.
func mustGetActive(t *testing.T, s *storage.Store, kind tokenKind, signature string) fosite.Requester {
	t.Helper()
	req, err := kind.get(t.Context(), s, signature, NewSession())
	if err != nil {
		t.Fatalf("get %s token %q: %v", kind.name, signature, err)
	}
	return req
}

// tokenFixture creates alice and her client, which most token cases need.
func tokenFixture(t *testing.T, s *storage.Store) {
	t.Helper()
	mustCreateUser(t, s, alice())
	mustCreateClient(t, s, reportsClient())
}

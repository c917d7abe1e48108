package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/quanux/authserver/storage"
)

// Run runs the conformance suite. open must return a fresh, migrated, empty
// store for each call, configured with [NewSession] as its
// storage.Config.NewSession, and close it through t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("Clients", func(t *testing.T) { testClients(t, open) })
	t.Run("TokenSessions", func(t *testing.T) { testTokenSessions(t, open) })
	t.Run("Transactions", func(t *testing.T) { testTransactions(t, open) })
	t.Run("SigningKeys", func(t *testing.T) { testSigningKeys(t, open) })
	t.Run("Migrations", func(t *testing.T) { testMigrations(t, open) })
	t.Run("LoginFailures", func(t *testing.T) { testLoginFailures(t, open) })
	t.Run("AuditEvents", func(t *testing.T) { testAuditEvents(t, open) })
	t.Run("Admin", func(t *testing.T) { testAdmin(t, open) })
}

// Session is the fosite session the suite stores with its tokens. It
// implements [storage.UserBound], as the server's own session does.
type Session struct {
	oauth2.JWTSession
	// User is the id of the user the token acts for, or empty for a client
	// token.
	User string `json:"user_id,omitempty"`
}

// NewSession returns an empty *Session, for storage.Config.NewSession.
func NewSession() fosite.Session {
	return newSession()
}

func newSession() *Session {
	return &Session{JWTSession: oauth2.JWTSession{
		JWTClaims: &jwt.JWTClaims{},
		JWTHeader: &jwt.Headers{},
		ExpiresAt: make(map[fosite.TokenType]time.Time),
	}}
}

// UserID returns the id of the user the token acts for.
func (s *Session) UserID() string { return s.User }

// equateSecond treats times less than a second apart as equal, because
// databases store timestamps at different precisions.
var equateSecond = cmpopts.EquateApproxTime(time.Second)

// concurrencyTimeout bounds the tests that race several writers, so a lock
// that is never released fails the test instead of hanging it.
const concurrencyTimeout = 30 * time.Second

// startTogether runs each fn in its own goroutine, releases them at once,
// and returns their errors in the order of fns. It fails the test if they
// do not all return within concurrencyTimeout.
func startTogether(t *testing.T, fns ...func(ctx context.Context) error) []error {
	t.Helper()

	ctx, cancel := context.WithTimeout(t.Context(), concurrencyTimeout)
	defer cancel()

	type result struct {
		index int
		err   error
	}
	start := make(chan struct{})
	results := make(chan result, len(fns))
	for i, fn := range fns {
		go func() {
			<-start
			results <- result{index: i, err: fn(ctx)}
		}()
	}
	close(start)

	errs := make([]error, len(fns))
	for range fns {
		select {
		case r := <-results:
			errs[r.index] = r.err
		case <-time.After(concurrencyTimeout + 5*time.Second):
			t.Fatalf("concurrent calls did not return within %v", concurrencyTimeout)
		}
	}
	return errs
}

package oauth

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
)

// Session is the fosite session of every token this server issues. It is
// persisted as JSON with each token record.
type Session struct {
	oauth2.JWTSession
	// User is the id of the user the token acts for; for a
	// client-credentials token, the client's owner.
	User string `json:"user_id,omitempty"`
	// GrantType is the grant that started the token family.
	GrantType string `json:"grant_type,omitempty"`
}

// NewSession returns an empty session.
func NewSession() *Session {
	return &Session{JWTSession: oauth2.JWTSession{
		JWTClaims: &jwt.JWTClaims{},
		JWTHeader: &jwt.Headers{},
		ExpiresAt: make(map[fosite.TokenType]time.Time),
	}}
}

// UserID returns the id of the user the token acts for. It implements
// storage.UserBound, so the token record names that user.
func (s *Session) UserID() string { return s.User }

// Clone returns a deep copy.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if jwtCopy, ok := s.JWTSession.Clone().(*oauth2.JWTSession); ok && jwtCopy != nil {
		c.JWTSession = *jwtCopy
	}
	return &c
}

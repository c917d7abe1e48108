package storage

import (
	"database/sql"
	"time"
)

type userModel struct {
	ID           string `gorm:"primaryKey"`
	Username     string
	UsernameKey  string
	PasswordHash string
	Scopes       string
	Disabled     bool
	TokenEpoch   int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (userModel) TableName() string { return "users" }

type clientModel struct {
	ID         string `gorm:"primaryKey"`
	Name       string
	Email      string
	SecretHash string
	OwnerID    sql.NullString
	Scopes     string
	GrantTypes string
	Public     bool
	Disabled   bool
	Introspect bool
	TokenEpoch int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func (clientModel) TableName() string { return "clients" }

type tokenKind string

const (
	kindAccess  tokenKind = "access"
	kindRefresh tokenKind = "refresh"
)

type tokenSessionModel struct {
	// Signature is the SHA-256 of the token's signature part, so the
	// database never holds material that completes a token.
	Signature         string `gorm:"primaryKey"`
	Kind              tokenKind
	RequestID         string
	ClientID          string
	UserID            sql.NullString
	Subject           string
	AccessSignature   string
	RequestedScopes   string
	GrantedScopes     string
	RequestedAudience string
	GrantedAudience   string
	Form              string
	Session           string
	Active            bool
	RequestedAt       time.Time
	ExpiresAt         time.Time
	CreatedAt         time.Time
}

func (tokenSessionModel) TableName() string { return "token_sessions" }

type signingKeyModel struct {
	KID         string `gorm:"column:kid;primaryKey"`
	Algorithm   string
	State       string
	PrivateKey  string
	PublicKey   string
	CreatedAt   time.Time
	ActivatedAt sql.NullTime
	RetiredAt   sql.NullTime
}

func (signingKeyModel) TableName() string { return "signing_keys" }

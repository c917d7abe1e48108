package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ory/fosite"
)

var _ fosite.ClientManager = (*Store)(nil)

// Client is an OAuth 2.0 client. It implements fosite.Client.
type Client struct {
	ID    string
	Name  string
	Email string
	// SecretHash is the client secret's keyed hash in the form the
	// configured fosite hasher reads; empty for public clients.
	SecretHash []byte
	// OwnerID is the user who registered the client; empty for built-in
	// clients.
	OwnerID    string
	Scopes     []string
	GrantTypes []string
	Public     bool
	Disabled   bool
	// Introspect lets the client introspect tokens issued to any client,
	// as a resource server does; without it a client introspects only its
	// own tokens.
	Introspect bool
	// TokenEpoch counts the revocations of all the client's tokens. A
	// token that is not recorded carries the epoch it was issued in, and
	// is valid only while the epoch is unchanged.
	TokenEpoch int64
	// OwnerTokenEpoch is the owning user's TokenEpoch when the client was
	// read, counting revocations of every token that acts for the user;
	// read, never written.
	OwnerTokenEpoch int64
	// OwnerDisabled reports whether the owning user is disabled; it is
	// read, never written.
	OwnerDisabled bool
	// OwnerScopes are the owning user's scopes when the client was read,
	// so a token request needs no second query for the owner; read, never
	// written.
	OwnerScopes []string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// LogValue omits the secret hash.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", c.ID), slog.String("name", c.Name))
}

// GetID returns the client id.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret returns the stored keyed hash of the secret.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs returns nil: no grant this server offers redirects.
func (c *Client) GetRedirectURIs() []string { return nil }

// GetGrantTypes returns the grants the client may use.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes returns nil: the authorization endpoint is not served.
func (c *Client) GetResponseTypes() fosite.Arguments { return nil }

// GetScopes returns the scopes the client may request.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic reports whether the client has no secret.
func (c *Client) IsPublic() bool { return c.Public }

// GetAudience returns nil; the server grants its one configured audience
// to every token.
func (c *Client) GetAudience() fosite.Arguments { return nil }

type clientRow struct {
	Model           clientModel `gorm:"embedded"`
	OwnerDisabled   sql.NullBool
	OwnerScopes     sql.NullString
	OwnerTokenEpoch sql.NullInt64
}

func (r clientRow) client() *Client {
	m := r.Model
	return &Client{
		ID:              m.ID,
		Name:            m.Name,
		Email:           m.Email,
		SecretHash:      []byte(m.SecretHash),
		OwnerID:         m.OwnerID.String,
		Scopes:          splitScopes(m.Scopes),
		GrantTypes:      splitScopes(m.GrantTypes),
		Public:          m.Public,
		Disabled:        m.Disabled,
		Introspect:      m.Introspect,
		TokenEpoch:      m.TokenEpoch,
		OwnerTokenEpoch: r.OwnerTokenEpoch.Int64,
		OwnerDisabled:   r.OwnerDisabled.Bool,
		OwnerScopes:     ownerScopes(r.OwnerScopes),
		CreatedAt:       m.CreatedAt,
		UpdatedAt:       m.UpdatedAt,
	}
}

func ownerScopes(s sql.NullString) []string {
	if !s.Valid {
		return nil
	}
	return splitScopes(s.String)
}

// CreateClient inserts c. It returns ErrConflict when the id exists and
// ErrNotFound when the owner does not.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	now := s.now().UTC()
	m := clientModel{
		ID:         c.ID,
		Name:       c.Name,
		Email:      c.Email,
		SecretHash: string(c.SecretHash),
		OwnerID:    sql.NullString{String: c.OwnerID, Valid: c.OwnerID != ""},
		Scopes:     joinScopes(c.Scopes),
		GrantTypes: joinScopes(c.GrantTypes),
		Public:     c.Public,
		Disabled:   c.Disabled,
		Introspect: c.Introspect,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	if err := s.writer(ctx).Create(&m).Error; err != nil {
		return fmt.Errorf("create client %s: %w", c.ID, translate(err))
	}
	c.CreatedAt, c.UpdatedAt = now, now
	return nil
}

// Client returns the client with that id, disabled or not, or ErrNotFound.
func (s *Store) Client(ctx context.Context, id string) (*Client, error) {
	var row clientRow
	err := s.db(ctx).Table("clients").
		Select("clients.*, users.disabled AS owner_disabled, users.scopes AS owner_scopes, users.token_epoch AS owner_token_epoch").
		Joins("LEFT JOIN users ON users.id = clients.owner_id").
		Where("clients.id = ?", id).
		Take(&row).Error
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", id, translate(err))
	}
	return row.client(), nil
}

// GetClient returns the client for fosite. A disabled client, or one whose
// owner is disabled, is reported as not found, so it can neither
// authenticate nor have its tokens introspect as active. Errors satisfy
// errors.Is(err, fosite.ErrNotFound) when no usable client exists.
//
// Outside a transaction the client comes from the store's cache while the
// change feed is in sync (see [Store.SyncChanges]), so a change made by
// another process takes effect within one sync interval.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.CachedClient(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", fosite.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	if c.Disabled || c.OwnerDisabled {
		return nil, fmt.Errorf("client %s is disabled: %w", id, fosite.ErrNotFound)
	}
	return c, nil
}

// ClientAssertionJWTValid rejects every JTI: the server accepts no JWT
// client assertions (private_key_jwt), so none can be valid.
func (s *Store) ClientAssertionJWTValid(context.Context, string) error {
	return fmt.Errorf("client assertions: %w", errors.ErrUnsupported)
}

// SetClientAssertionJWT refuses to record a JTI, for the reason given on
// [Store.ClientAssertionJWTValid].
func (s *Store) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return fmt.Errorf("client assertions: %w", errors.ErrUnsupported)
}

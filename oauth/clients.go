package oauth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/quanux/authserver/storage"
)

// Client returns client id for an administrator. It returns
// storage.ErrNotFound for an unknown id and for the built-in
// storage.LegacyClientID, which no admin path may change.
func (a *Accounts) Client(ctx context.Context, id string) (*storage.Client, error) {
	if id == storage.LegacyClientID {
		return nil, fmt.Errorf("client %s: built-in: %w", id, storage.ErrNotFound)
	}
	return a.store.Client(ctx, id)
}

// OwnedClient returns client id if user ownerID owns it. It returns
// storage.ErrNotFound for another user's client, an unknown id and the
// built-in client alike, so a caller cannot learn which ids exist.
func (a *Accounts) OwnedClient(ctx context.Context, ownerID, id string) (*storage.Client, error) {
	c, err := a.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	if ownerID == "" || c.OwnerID != ownerID {
		return nil, fmt.Errorf("client %s of user %s: %w", id, ownerID, storage.ErrNotFound)
	}
	return c, nil
}

// ClientsOf returns the clients that user ownerID owns, oldest first.
func (a *Accounts) ClientsOf(ctx context.Context, ownerID string) ([]*storage.Client, error) {
	if ownerID == "" {
		return []*storage.Client{}, nil
	}
	return a.store.ListClients(ctx, ownerID, storage.Page{})
}

// RotateSecret gives client id a new secret and returns it; like the
// first secret, it is not stored and cannot be shown again. The old
// secret stops working at once, and every token of the client is revoked,
// because anyone with the old secret may have obtained them. It returns
// storage.ErrNotFound for an unknown id and the built-in client, and an
// error wrapping ErrInvalidInput for a public client.
func (a *Accounts) RotateSecret(ctx context.Context, id string) (string, error) {
	c, err := a.Client(ctx, id)
	if err != nil {
		return "", err
	}
	if c.Public {
		return "", fmt.Errorf("%w: client %s is public and has no secret", ErrInvalidInput, id)
	}
	secret := newClientSecret()
	hash, err := a.secrets.Hash(ctx, []byte(secret))
	if err != nil {
		return "", err
	}

	var revoked int64
	err = a.inTx(ctx, func(ctx context.Context) error {
		if err := a.store.SetClientSecretHash(ctx, id, hash); err != nil {
			return err
		}
		revoked, err = a.store.RevokeTokensOfClient(ctx, id)
		return err
	})
	if err != nil {
		return "", err
	}
	a.logger.InfoContext(ctx, "client secret rotated", "client_id", id, "revoked_tokens", revoked)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventSecretRotated, UserID: c.OwnerID, ClientID: id, Detail: fmt.Sprintf("revoked_tokens=%d", revoked)})
	return secret, nil
}

// SetClientScopes replaces the scopes client id may request, which must be
// a subset of its owner's current scopes. Tokens issued before keep their
// scopes until they expire. It returns errors wrapping ErrInvalidInput
// for an invalid scope, ErrScopeNotAllowed for a scope the owner lacks,
// and storage.ErrNotFound for an unknown id and the built-in client.
func (a *Accounts) SetClientScopes(ctx context.Context, id string, scopes []string) error {
	if err := ValidateScopes(scopes); err != nil {
		return err
	}
	c, err := a.Client(ctx, id)
	if err != nil {
		return err
	}
	owner, err := a.store.UserByID(ctx, c.OwnerID)
	if err != nil {
		return fmt.Errorf("owner of client %s: %w", id, err)
	}
	for _, s := range scopes {
		if !slices.Contains(owner.Scopes, s) {
			return fmt.Errorf("%w: the owner does not have scope %q", ErrScopeNotAllowed, s)
		}
	}
	scopes = dedupe(scopes)

	if err := a.store.SetClientScopes(ctx, id, scopes); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "client scopes changed", "client_id", id, "scopes", strings.Join(scopes, " "))
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventScopesChanged, UserID: c.OwnerID, ClientID: id, Detail: "scopes=" + strings.Join(scopes, " ")})
	return nil
}

// DisableClient disables client id and revokes its tokens, and returns
// how many it revoked. A disabled client cannot authenticate. Because the
// tokens are revoked, not only hidden, enabling the client again does not
// revive them. It returns storage.ErrNotFound for an unknown id and the
// built-in client.
func (a *Accounts) DisableClient(ctx context.Context, id string) (int64, error) {
	c, err := a.Client(ctx, id)
	if err != nil {
		return 0, err
	}

	var revoked int64
	err = a.inTx(ctx, func(ctx context.Context) error {
		if err := a.store.SetClientDisabled(ctx, id, true); err != nil {
			return err
		}
		var err error
		revoked, err = a.store.RevokeTokensOfClient(ctx, id)
		return err
	})
	if err != nil {
		return 0, err
	}
	a.logger.InfoContext(ctx, "client disabled", "client_id", id, "revoked_tokens", revoked)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventClientDisabled, UserID: c.OwnerID, ClientID: id, Detail: fmt.Sprintf("revoked_tokens=%d", revoked)})
	return revoked, nil
}

// EnableClient enables client id again. It returns storage.ErrNotFound for
// an unknown id and the built-in client.
func (a *Accounts) EnableClient(ctx context.Context, id string) error {
	if err := a.store.SetClientDisabled(ctx, id, false); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "client enabled", "client_id", id)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventClientEnabled, ClientID: id})
	return nil
}

// DeleteClient deletes client id and every token issued to it. It returns
// storage.ErrNotFound for an unknown id and the built-in client.
func (a *Accounts) DeleteClient(ctx context.Context, id string) error {
	c, err := a.Client(ctx, id)
	if err != nil {
		return err
	}
	if err := a.store.DeleteClient(ctx, id); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "client deleted", "client_id", id)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventClientDeleted, UserID: c.OwnerID, ClientID: id})
	return nil
}

// Logout revokes the token that info describes together with its family
// (see [TokenInfo.RequestID]): the grant that issued it and every refresh
// after it. A family already revoked is not an error.
func (a *Accounts) Logout(ctx context.Context, info TokenInfo) error {
	if err := a.store.RevokeTokenFamily(ctx, info.RequestID); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "logged out", "subject", info.UserID, "client_id", info.ClientID)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventTokenRevoked, UserID: info.UserID, ClientID: info.ClientID, Detail: "logout"})
	return nil
}

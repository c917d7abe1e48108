package storage

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// Page selects part of a listing: at most Limit rows, after skipping the
// first Offset. A zero Limit means no limit.
type Page struct {
	Limit  int
	Offset int
}

func (p Page) apply(q *gorm.DB) (*gorm.DB, error) {
	if p.Limit < 0 || p.Offset < 0 {
		return nil, fmt.Errorf("invalid page: limit %d, offset %d must not be negative", p.Limit, p.Offset)
	}
	if p.Limit > 0 {
		q = q.Limit(p.Limit)
	}
	if p.Offset > 0 {
		q = q.Offset(p.Offset)
	}
	return q, nil
}

// ListUsers returns one page of users ordered by normalised username, so
// "alice" and "Bob" sort as a reader expects. An empty page is an empty
// slice, not an error.
func (s *Store) ListUsers(ctx context.Context, page Page) ([]User, error) {
	q, err := page.apply(s.db(ctx).Order("username_key").Order("id"))
	if err != nil {
		return nil, err
	}
	var rows []userModel
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users := make([]User, 0, len(rows))
	for _, m := range rows {
		users = append(users, m.user())
	}
	return users, nil
}

// UserUpdate names the fields [Store.UpdateUser] changes. A nil field keeps
// its stored value.
type UserUpdate struct {
	// PasswordHash is a PHC string such as "$argon2id$v=19$...".
	PasswordHash *string
	Scopes       *[]string
	Disabled     *bool
}

// UpdateUser changes the given fields of user id and sets its UpdatedAt.
// It returns ErrNotFound for an unknown id. Disabling a user makes the
// lookups of its tokens and of its clients fail, in this process at once
// and in others from their next sync (see [Store.GetClient]). The token records stay active, so enabling the user
// again revives the tokens that have not expired.
func (s *Store) UpdateUser(ctx context.Context, id string, u UserUpdate) error {
	fields := map[string]any{"updated_at": s.now().UTC()}
	if u.PasswordHash != nil {
		fields["password_hash"] = *u.PasswordHash
	}
	if u.Scopes != nil {
		fields["scopes"] = joinScopes(*u.Scopes)
	}
	if u.Disabled != nil {
		fields["disabled"] = *u.Disabled
	}

	err := s.changeRow(ctx, changeUser, id, func(tx *gorm.DB) *gorm.DB {
		return tx.Model(&userModel{}).Where("id = ?", id).Updates(fields)
	})
	if err != nil {
		return fmt.Errorf("update user %s: %w", id, err)
	}
	return nil
}

// DeleteUser deletes user id. The foreign keys delete the clients it owns
// and every token record of the user and of those clients with it. It
// returns ErrNotFound for an unknown id.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.changeRow(ctx, changeUser, id, func(tx *gorm.DB) *gorm.DB {
		return tx.Where("id = ?", id).Delete(&userModel{})
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	return nil
}

// ListClients returns one page of clients ordered by creation time: all of
// them when ownerID is empty, else those owned by ownerID (none for an
// unknown owner). The built-in [LegacyClientID] is never listed.
func (s *Store) ListClients(ctx context.Context, ownerID string, page Page) ([]*Client, error) {
	q := s.db(ctx).Table("clients").
		Select("clients.*, users.disabled AS owner_disabled").
		Joins("LEFT JOIN users ON users.id = clients.owner_id").
		Where("clients.id <> ?", LegacyClientID)
	if ownerID != "" {
		q = q.Where("clients.owner_id = ?", ownerID)
	}
	q, err := page.apply(q.Order("clients.created_at").Order("clients.id"))
	if err != nil {
		return nil, err
	}

	var rows []clientRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	clients := make([]*Client, 0, len(rows))
	for _, r := range rows {
		clients = append(clients, r.client())
	}
	return clients, nil
}

// updateClient sets fields of client id and its UpdatedAt. The built-in
// legacy client is reported as not found, so no admin path can change it.
func (s *Store) updateClient(ctx context.Context, id string, fields map[string]any) error {
	if id == LegacyClientID {
		return fmt.Errorf("update client %s: built-in: %w", id, ErrNotFound)
	}
	fields["updated_at"] = s.now().UTC()
	err := s.changeRow(ctx, changeClient, id, func(tx *gorm.DB) *gorm.DB {
		return tx.Model(&clientModel{}).Where("id = ?", id).Updates(fields)
	})
	if err != nil {
		return fmt.Errorf("update client %s: %w", id, err)
	}
	return nil
}

// SetClientDisabled disables or enables client id. A disabled client can
// neither authenticate nor have its tokens accepted (see
// [Store.GetClient]). It returns ErrNotFound for an unknown id and for
// [LegacyClientID].
func (s *Store) SetClientDisabled(ctx context.Context, id string, disabled bool) error {
	return s.updateClient(ctx, id, map[string]any{"disabled": disabled})
}

// SetClientScopes replaces the scopes client id may request. It returns
// ErrNotFound for an unknown id and for [LegacyClientID].
func (s *Store) SetClientScopes(ctx context.Context, id string, scopes []string) error {
	return s.updateClient(ctx, id, map[string]any{"scopes": joinScopes(scopes)})
}

// SetClientSecretHash replaces the stored secret hash of client id, so the
// old secret stops matching at once. It returns ErrNotFound for an unknown
// id and for [LegacyClientID].
func (s *Store) SetClientSecretHash(ctx context.Context, id string, hash []byte) error {
	return s.updateClient(ctx, id, map[string]any{"secret_hash": string(hash)})
}

// DeleteClient deletes client id; the foreign key deletes its token
// records with it. It returns ErrNotFound for an unknown id and for
// [LegacyClientID].
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if id == LegacyClientID {
		return fmt.Errorf("delete client %s: built-in: %w", id, ErrNotFound)
	}
	err := s.changeRow(ctx, changeClient, id, func(tx *gorm.DB) *gorm.DB {
		return tx.Where("id = ?", id).Delete(&clientModel{})
	})
	if err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	return nil
}

// RevokeTokensOfClient deactivates every access and refresh token issued to
// client id and returns how many records were active. It also advances the
// client's TokenEpoch, which revokes its tokens that have no record. It returns ErrNotFound for
// an unknown id and for [LegacyClientID], whose tokens are every user's
// legacy logins.
func (s *Store) RevokeTokensOfClient(ctx context.Context, id string) (int64, error) {
	if id == LegacyClientID {
		return 0, fmt.Errorf("revoke tokens of client %s: built-in: %w", id, ErrNotFound)
	}
	return s.revokeTokensWhere(ctx, "client "+id, &clientModel{}, "client_id", id, changeClient)
}

// RevokeTokensOfUser deactivates every access and refresh token that acts
// for user id, which includes the client-credentials tokens of the
// clients it owns, and returns how many records were active. It also
// advances the user's TokenEpoch, which revokes the tokens without a
// record that act for the user. It returns ErrNotFound for an unknown id.
func (s *Store) RevokeTokensOfUser(ctx context.Context, id string) (int64, error) {
	return s.revokeTokensWhere(ctx, "user "+id, &userModel{}, "user_id", id, changeUser)
}

// revokeTokensWhere advances the token epoch of the row of owner with that
// id, deactivates the active tokens whose column equals id, and records the
// change of kind, in one transaction.
func (s *Store) revokeTokensWhere(ctx context.Context, what string, owner any, column, id, kind string) (int64, error) {
	var revoked int64
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := s.lockTx(tx, lockChanges); err != nil {
			return err
		}
		res := tx.Model(owner).Where("id = ?", id).Update("token_epoch", gorm.Expr("token_epoch + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		res = tx.Model(&tokenSessionModel{}).
			Where(map[string]any{column: id, "active": true}).
			Update("active", false)
		if res.Error != nil {
			return res.Error
		}
		revoked = res.RowsAffected
		return s.changeIn(tx, kind, id)
	})
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of %s: %w", what, translate(err))
	}
	return revoked, nil
}

// RevokeTokenFamily deactivates the access and refresh tokens of one
// request family: a grant and every refresh that followed it, which share
// its request id. An unknown family is not an error.
func (s *Store) RevokeTokenFamily(ctx context.Context, requestID string) error {
	if requestID == "" {
		return errors.New("revoke token family: empty request id")
	}
	err := s.writer(ctx).Model(&tokenSessionModel{}).
		Where("request_id = ? AND active = ?", requestID, true).
		Update("active", false).Error
	if err != nil {
		return fmt.Errorf("revoke tokens of request %s: %w", requestID, err)
	}
	return nil
}

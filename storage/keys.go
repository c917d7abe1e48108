package storage

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"

	"gorm.io/gorm"

	"github.com/quanux/authserver/keys"
)

var _ keys.Store = (*Store)(nil)

// SigningKeys returns every stored signing key.
func (s *Store) SigningKeys(ctx context.Context) ([]keys.Record, error) {
	var rows []signingKeyModel
	if err := s.db(ctx).Order("created_at").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}

	records := make([]keys.Record, 0, len(rows))
	for _, m := range rows {
		sealed, err := base64.StdEncoding.DecodeString(m.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: decode private key column: %w", m.KID, err)
		}
		records = append(records, keys.Record{
			KeyID:       m.KID,
			Algorithm:   m.Algorithm,
			State:       keys.State(m.State),
			PrivateKey:  sealed,
			PublicKey:   []byte(m.PublicKey),
			CreatedAt:   m.CreatedAt,
			ActivatedAt: m.ActivatedAt.Time,
			RetiredAt:   m.RetiredAt.Time,
		})
	}
	return records, nil
}

// ApplyRotation applies r in one transaction. The compare step reads the
// active key inside the transaction, which holds the write lock on SQLite
// (BEGIN IMMEDIATE) and an advisory lock on PostgreSQL, so two processes
// rotating at once cannot both pass it.
func (s *Store) ApplyRotation(ctx context.Context, r keys.Rotation) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		if err := s.lockTx(tx, lockKeys); err != nil {
			return err
		}
		var active []string
		err := tx.Model(&signingKeyModel{}).
			Where("state = ?", string(keys.StateActive)).
			Pluck("kid", &active).Error
		if err != nil {
			return fmt.Errorf("rotate signing keys: read active key: %w", err)
		}
		if !matchesExpectedActive(active, r.ExpectedActive) {
			return fmt.Errorf("rotate signing keys: expected active key %q, found %q: %w", r.ExpectedActive, active, keys.ErrRotationConflict)
		}

		at := r.At.UTC()
		for _, rec := range r.Insert {
			m := signingKeyModel{
				KID:        rec.KeyID,
				Algorithm:  rec.Algorithm,
				State:      string(rec.State),
				PrivateKey: base64.StdEncoding.EncodeToString(rec.PrivateKey),
				PublicKey:  string(rec.PublicKey),
				CreatedAt:  rec.CreatedAt.UTC(),
			}
			if !rec.ActivatedAt.IsZero() {
				m.ActivatedAt = sql.NullTime{Time: rec.ActivatedAt.UTC(), Valid: true}
			}
			if !rec.RetiredAt.IsZero() {
				m.RetiredAt = sql.NullTime{Time: rec.RetiredAt.UTC(), Valid: true}
			}
			if err := tx.Create(&m).Error; err != nil {
				return fmt.Errorf("rotate signing keys: insert %s: %w", rec.KeyID, translate(err))
			}
		}

		if len(r.Retire) > 0 {
			err := tx.Model(&signingKeyModel{}).
				Where("kid IN ?", r.Retire).
				Updates(map[string]any{"state": string(keys.StateRetired), "retired_at": at}).Error
			if err != nil {
				return fmt.Errorf("rotate signing keys: retire %v: %w", r.Retire, err)
			}
		}

		if r.Activate != "" {
			res := tx.Model(&signingKeyModel{}).
				Where("kid = ?", r.Activate).
				Updates(map[string]any{"state": string(keys.StateActive), "activated_at": at})
			if res.Error != nil {
				return fmt.Errorf("rotate signing keys: activate %s: %w", r.Activate, res.Error)
			}
			if res.RowsAffected == 0 {
				return fmt.Errorf("rotate signing keys: activate %s: %w", r.Activate, ErrNotFound)
			}
		}
		return nil
	})
}

func matchesExpectedActive(active []string, expected string) bool {
	if expected == "" {
		return len(active) == 0
	}
	return len(active) == 1 && active[0] == expected
}

package storage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CopyCounts is how many rows of each kind [Store.CopyFrom] inserted.
type CopyCounts struct {
	Users, Clients, SigningKeys, Tokens, Revocations int64
}

// copyBatch is the number of rows read and written per statement.
const copyBatch = 500

// CopyFrom copies users, clients, signing keys, unexpired token records and
// unexpired revocations of tokens without a record from src into s, in one transaction on s, so a failed copy leaves s as it
// was. Rows whose key s already has are skipped, so the copy can be run
// again. Both stores must be migrated to the same version. Private keys
// and client-secret hashes are copied as stored, so the destination needs
// the same master secret.
func (s *Store) CopyFrom(ctx context.Context, src *Store) (CopyCounts, error) {
	var counts CopyCounts
	srcPending, err := src.PendingMigrations(ctx)
	if err != nil {
		return counts, err
	}
	dstPending, err := s.PendingMigrations(ctx)
	if err != nil {
		return counts, err
	}
	if len(srcPending) > 0 || len(dstPending) > 0 {
		return counts, fmt.Errorf("copy: both databases must be fully migrated (source pending %v, destination pending %v)", srcPending, dstPending)
	}

	if err := s.checkKeysFrom(ctx, src); err != nil {
		return counts, err
	}

	err = s.wdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if counts.Users, err = copyRows[userModel](ctx, src, tx, nil); err != nil {
			return fmt.Errorf("copy users: %w", err)
		}
		skipBuiltIn := func(q *gorm.DB) *gorm.DB { return q.Where("id <> ?", LegacyClientID) }
		if counts.Clients, err = copyRows[clientModel](ctx, src, tx, skipBuiltIn); err != nil {
			return fmt.Errorf("copy clients: %w", err)
		}
		if counts.SigningKeys, err = copyRows[signingKeyModel](ctx, src, tx, nil); err != nil {
			return fmt.Errorf("copy signing keys: %w", err)
		}
		now := s.now().UTC()
		unexpired := func(q *gorm.DB) *gorm.DB { return q.Where("expires_at > ?", now) }
		if counts.Tokens, err = copyRows[tokenSessionModel](ctx, src, tx, unexpired); err != nil {
			return fmt.Errorf("copy token records: %w", err)
		}
		if counts.Revocations, err = s.copyRevocations(ctx, src, tx, now); err != nil {
			return fmt.Errorf("copy revocations: %w", err)
		}
		return nil
	})
	if err != nil {
		return CopyCounts{}, err
	}
	return counts, nil
}

// checkKeysFrom refuses a copy into a database that has signing keys of
// its own: merging two key sets would leave two active keys.
func (s *Store) checkKeysFrom(ctx context.Context, src *Store) error {
	dstKeys, err := s.SigningKeys(ctx)
	if err != nil {
		return err
	}
	srcKeys, err := src.SigningKeys(ctx)
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(srcKeys))
	for _, k := range srcKeys {
		known[k.KeyID] = true
	}
	for _, k := range dstKeys {
		if !known[k.KeyID] {
			return fmt.Errorf("copy: the destination already has signing key %s, which the source lacks; copy into a new, empty database", k.KeyID)
		}
	}
	return nil
}

// copyRows copies the rows of model M that filter selects from src into
// tx, in batches, skipping rows whose primary key exists.
func copyRows[M any](ctx context.Context, src *Store, tx *gorm.DB, filter func(*gorm.DB) *gorm.DB) (int64, error) {
	var total int64
	q := src.gdb.WithContext(ctx).Model(new(M))
	if filter != nil {
		q = filter(q)
	}
	var batch []M
	res := q.FindInBatches(&batch, copyBatch, func(_ *gorm.DB, _ int) error {
		ins := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&batch)
		if ins.Error != nil {
			return ins.Error
		}
		total += ins.RowsAffected
		return nil
	})
	return total, res.Error
}

// copyRevocations copies the unexpired token revocations of src's change
// feed into tx as new rows. Their seq values are left to the destination,
// whose readers expect seq to grow; rows copied twice are harmless.
func (s *Store) copyRevocations(ctx context.Context, src *Store, tx *gorm.DB, now time.Time) (int64, error) {
	var rows []changeModel
	err := src.db(ctx).Where("kind = ? AND expires_at > ?", changeTokenRevoked, now).Order("seq").Find(&rows).Error
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	if err := s.lockTx(tx, lockChanges); err != nil {
		return 0, err
	}
	for i := range rows {
		rows[i].Seq = 0
	}
	if err := tx.CreateInBatches(rows, copyBatch).Error; err != nil {
		return 0, err
	}
	return int64(len(rows)), nil
}

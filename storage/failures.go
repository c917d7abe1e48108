package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// LoginFailure is the shared count of consecutive failed credential checks
// for one key (a username or a client id), so that every replica enforces
// the same lockout.
type LoginFailure struct {
	Key      string
	Failures int
	// LockedUntil is zero when the key is not locked.
	LockedUntil time.Time
}

type loginFailureModel struct {
	Key         string `gorm:"primaryKey"`
	Failures    int
	LockedUntil sql.NullTime
	UpdatedAt   time.Time
}

func (loginFailureModel) TableName() string { return "login_failures" }

// LoginFailures returns the records of the keys that have any.
func (s *Store) LoginFailures(ctx context.Context, keys []string) (map[string]LoginFailure, error) {
	out := make(map[string]LoginFailure, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	rows, err := s.sqlReader(ctx).QueryContext(ctx, s.statements.loginFailuresSQL(len(keys)), args...)
	if err != nil {
		return nil, fmt.Errorf("read login failures: %w", err)
	}
	// The early returns below report an error of their own, so they drop
	// the error of Close. The return on success checks it.
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var m loginFailureModel
		if err := rows.Scan(&m.Key, &m.Failures, &m.LockedUntil); err != nil {
			return nil, fmt.Errorf("read login failures: %w", err)
		}
		out[m.Key] = LoginFailure{Key: m.Key, Failures: m.Failures, LockedUntil: m.LockedUntil.Time}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read login failures: %w", err)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("read login failures: %w", err)
	}
	return out, nil
}

// RecordLoginFailure adds one failure to key atomically, even with several
// processes counting at once, and sets the lock that lockUntil computes
// from the new count (zero for none). It returns the new record.
func (s *Store) RecordLoginFailure(ctx context.Context, key string, now time.Time, lockUntil func(failures int) time.Time) (LoginFailure, error) {
	var rec LoginFailure
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var failures int
		err := tx.Raw(`INSERT INTO login_failures (key, failures, updated_at) VALUES (?, 1, ?)
			ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures + 1, updated_at = excluded.updated_at
			RETURNING failures`, key, now.UTC()).Scan(&failures).Error
		if err != nil {
			return err
		}
		rec = LoginFailure{Key: key, Failures: failures, LockedUntil: lockUntil(failures)}
		if rec.LockedUntil.IsZero() {
			return nil
		}
		return tx.Model(&loginFailureModel{}).Where("key = ?", key).
			Update("locked_until", rec.LockedUntil.UTC()).Error
	})
	if err != nil {
		return LoginFailure{}, fmt.Errorf("record login failure: %w", err)
	}
	return rec, nil
}

// ClearLoginFailures deletes the records of keys, after a success.
func (s *Store) ClearLoginFailures(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.writer(ctx).Where("key IN ?", keys).Delete(&loginFailureModel{}).Error; err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}

// DeleteStaleLoginFailures deletes records not updated since cutoff and
// returns how many it deleted.
func (s *Store) DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.writer(ctx).Where("updated_at < ?", cutoff.UTC()).Delete(&loginFailureModel{})
	if res.Error != nil {
		return 0, fmt.Errorf("delete stale login failures: %w", res.Error)
	}
	return res.RowsAffected, nil
}

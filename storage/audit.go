package storage

import (
	"context"
	"fmt"
	"time"
)

// AuditEvent is one security-relevant event. Detail is a short text
// without secrets, such as the grant type or a key id.
type AuditEvent struct {
	ID         string
	OccurredAt time.Time
	Type       string
	UserID     string
	ClientID   string
	Address    string
	UserAgent  string
	Detail     string
}

type auditEventModel struct {
	ID         string `gorm:"primaryKey"`
	OccurredAt time.Time
	Type       string
	UserID     string
	ClientID   string
	Address    string
	UserAgent  string
	Detail     string
}

func (auditEventModel) TableName() string { return "audit_events" }

// InsertAuditEvents writes events in one statement. Events whose id exists
// are an error (ErrConflict).
func (s *Store) InsertAuditEvents(ctx context.Context, events []AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([]auditEventModel, len(events))
	for i, e := range events {
		rows[i] = auditEventModel(e)
		rows[i].OccurredAt = e.OccurredAt.UTC()
	}
	if err := s.writer(ctx).Create(&rows).Error; err != nil {
		return fmt.Errorf("insert %d audit events: %w", len(events), translate(err))
	}
	return nil
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	UserID   string
	ClientID string
	Type     string
	Since    time.Time
	// Limit caps the result; 0 means 100.
	Limit int
}

// AuditEvents returns the newest events that match f, newest first.
func (s *Store) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	q := s.db(ctx).Model(&auditEventModel{})
	if f.UserID != "" {
		q = q.Where("user_id = ?", f.UserID)
	}
	if f.ClientID != "" {
		q = q.Where("client_id = ?", f.ClientID)
	}
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if !f.Since.IsZero() {
		q = q.Where("occurred_at >= ?", f.Since.UTC())
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var rows []auditEventModel
	if err := q.Order("occurred_at DESC, id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out := make([]AuditEvent, len(rows))
	for i, r := range rows {
		out[i] = AuditEvent(r)
	}
	return out, nil
}

// DeleteAuditEventsBefore deletes events older than cutoff and returns how
// many it deleted.
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.writer(ctx).Where("occurred_at < ?", cutoff.UTC()).Delete(&auditEventModel{})
	if res.Error != nil {
		return 0, fmt.Errorf("delete old audit events: %w", res.Error)
	}
	return res.RowsAffected, nil
}

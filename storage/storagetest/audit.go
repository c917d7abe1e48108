package storagetest

import (
	"testing"
	"time"

	"github.com/quanux/authserver/storage"
)

func testAuditEvents(t *testing.T, open func(t *testing.T) *storage.Store) {
	s := open(t)
	ctx := t.Context()
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	events := []storage.AuditEvent{
		{ID: "e1", OccurredAt: base, Type: "login_failed", UserID: "user_a", Address: "192.0.2.1", UserAgent: "curl/8", Detail: "grant_type=password"},
		{ID: "e2", OccurredAt: base.Add(time.Minute), Type: "token_issued", UserID: "user_a", ClientID: "client_1"},
		{ID: "e3", OccurredAt: base.Add(2 * time.Minute), Type: "token_issued", UserID: "user_b", ClientID: "client_2"},
	}
	if err := s.InsertAuditEvents(ctx, events); err != nil {
		t.Fatalf("InsertAuditEvents: %v", err)
	}

	tests := []struct {
		name   string
		filter storage.AuditFilter
		want   []string
	}{
		{"all, newest first", storage.AuditFilter{}, []string{"e3", "e2", "e1"}},
		{"by user", storage.AuditFilter{UserID: "user_a"}, []string{"e2", "e1"}},
		{"by client", storage.AuditFilter{ClientID: "client_2"}, []string{"e3"}},
		{"by type", storage.AuditFilter{Type: "login_failed"}, []string{"e1"}},
		{"since", storage.AuditFilter{Since: base.Add(time.Minute)}, []string{"e3", "e2"}},
		{"limit", storage.AuditFilter{Limit: 1}, []string{"e3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.AuditEvents(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if len(ids) != len(tt.want) {
				t.Fatalf("ids = %v, want %v", ids, tt.want)
			}
			for i := range ids {
				if ids[i] != tt.want[i] {
					t.Fatalf("ids = %v, want %v", ids, tt.want)
				}
			}
		})
	}

	got, err := s.AuditEvents(ctx, storage.AuditFilter{Type: "login_failed"})
	if err != nil || len(got) != 1 {
		t.Fatalf("AuditEvents: %v, %v", got, err)
	}
	if e := got[0]; !e.OccurredAt.Equal(base) || e.Address != "192.0.2.1" || e.UserAgent != "curl/8" || e.Detail != "grant_type=password" {
		t.Errorf("event round trip = %+v", e)
	}

	n, err := s.DeleteAuditEventsBefore(ctx, base.Add(90*time.Second))
	if err != nil || n != 2 {
		t.Errorf("DeleteAuditEventsBefore = %d, %v; want 2 deleted", n, err)
	}
}

package storage_test

import (
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
	"github.com/quanux/authserver/storage/storagetest"
)

const benchClientID = "client-bench"

// benchStore returns a migrated SQLite store with one user and a client that
// user owns, so lookups pay for the owner join as in production.
func benchStore(b *testing.B) *storage.Store {
	b.Helper()
	s := openMigrated(b)
	if err := s.CreateUser(b.Context(), storage.User{ID: "user-bench", Username: "bench", PasswordHash: "x"}); err != nil {
		b.Fatalf("CreateUser: %v", err)
	}
	client := &storage.Client{
		ID:         benchClientID,
		Name:       "Bench",
		SecretHash: []byte("hash"),
		OwnerID:    "user-bench",
		Scopes:     []string{"openid", "offline"},
		GrantTypes: []string{"password", "refresh_token"},
	}
	if err := s.CreateClient(b.Context(), client); err != nil {
		b.Fatalf("CreateClient: %v", err)
	}
	return s
}

func benchRequest(requestID string) *fosite.Request {
	session := storagetest.NewSession().(*storagetest.Session)
	session.User = "user-bench"
	session.Subject = "user-bench"
	session.ExpiresAt[fosite.AccessToken] = time.Now().Add(time.Hour)
	return &fosite.Request{
		ID:             requestID,
		RequestedAt:    time.Now(),
		Client:         &storage.Client{ID: benchClientID},
		RequestedScope: fosite.Arguments{"openid", "offline"},
		GrantedScope:   fosite.Arguments{"openid", "offline"},
		Form:           url.Values{"grant_type": {"password"}, "username": {"bench"}},
		Session:        session,
	}
}

func BenchmarkCreateAccessTokenSession(b *testing.B) {
	s := benchStore(b)
	req := benchRequest("req-bench")

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.CreateAccessTokenSession(b.Context(), fmt.Sprintf("sig-%d", i), req); err != nil {
			b.Fatalf("CreateAccessTokenSession: %v", err)
		}
		i++
	}
}

// BenchmarkCreateAccessTokenSessionParallel runs 16 writers per
// GOMAXPROCS at once, as concurrent token requests do, so it measures how
// the writers wait for one another as well as the INSERT itself.
func BenchmarkCreateAccessTokenSessionParallel(b *testing.B) {
	s := benchStore(b)
	req := benchRequest("req-bench")
	var next atomic.Int64

	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			signature := fmt.Sprintf("sig-%d", next.Add(1))
			if err := s.CreateAccessTokenSession(b.Context(), signature, req); err != nil {
				b.Errorf("CreateAccessTokenSession: %v", err)
				return
			}
		}
	})
}

func BenchmarkGetAccessTokenSession(b *testing.B) {
	s := benchStore(b)
	if err := s.CreateAccessTokenSession(b.Context(), "sig-bench", benchRequest("req-bench")); err != nil {
		b.Fatalf("CreateAccessTokenSession: %v", err)
	}

	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetAccessTokenSession(b.Context(), "sig-bench", storagetest.NewSession()); err != nil {
			b.Fatalf("GetAccessTokenSession: %v", err)
		}
	}
}

func BenchmarkGetClient(b *testing.B) {
	s := benchStore(b)

	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetClient(b.Context(), benchClientID); err != nil {
			b.Fatalf("GetClient: %v", err)
		}
	}
}

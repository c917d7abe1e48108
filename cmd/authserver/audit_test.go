package main

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

type auditEvent struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	Address   string    `json:"address"`
	UserAgent string    `json:"user_agent"`
	Detail    string    `json:"detail"`
}

func auditEvents(t *testing.T, in *instance, args ...string) []auditEvent {
	t.Helper()
	var events []auditEvent
	decodeJSON(t, in.cli("", append([]string{"audit", "--json", "--limit", "1000"}, args...)...), &events)
	return events
}

func findEvent(events []auditEvent, match func(auditEvent) bool) (auditEvent, bool) {
	for _, e := range events {
		if match(e) {
			return e, true
		}
	}
	return auditEvent{}, false
}

func TestAuditTrail(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	userID := in.createUser("alice", "alice password 1", aliceScopes)
	s := in.serve()
	userToken := s.login(map[string]string{"username": "alice", "password": "alice password 1"})["token"].(string)
	clientID, secret := s.registerClient(userToken, "runner")
	machine := s.login(map[string]string{"client_id": clientID, "client_secret": secret})["token"].(string)
	jti := verifyOffline(t, s, machine).claims.ID
	_ = s.postJSON("/api/auth/login", "", map[string]string{"username": "alice", "password": "wrong"})
	if r := s.postForm("/oauth2/revoke", url.Values{"token": {machine}}, clientID, secret); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}

	// Events are written in the background within a second.
	var events []auditEvent
	deadline := time.Now().Add(10 * time.Second)
	for {
		events = auditEvents(t, in)
		if _, ok := findEvent(events, func(e auditEvent) bool { return e.Type == "token_revoked" }); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token_revoked event 10s after the revocation; events: %+v", events)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Trace the machine token back to its client and the user who
	// registered that client.
	issued, ok := findEvent(events, func(e auditEvent) bool {
		return e.Type == "token_issued" && strings.Contains(e.Detail, "jti="+jti)
	})
	if !ok {
		t.Fatalf("no token_issued event for jti %s", jti)
	}
	if issued.ClientID != clientID || issued.UserID != userID || issued.Address != "127.0.0.1" || issued.UserAgent == "" {
		t.Errorf("token_issued event %+v: want client %s, user %s, address and user agent", issued, clientID, userID)
	}
	if _, ok := findEvent(events, func(e auditEvent) bool {
		return e.Type == "client_registered" && e.ClientID == clientID && e.UserID == userID
	}); !ok {
		t.Error("no client_registered event linking the client to its owner")
	}
	if _, ok := findEvent(events, func(e auditEvent) bool {
		return e.Type == "login_failed" && strings.Contains(e.Detail, "username=alice")
	}); !ok {
		t.Error("no login_failed event for the wrong password")
	}
	if _, ok := findEvent(events, func(e auditEvent) bool { return e.Type == "user_created" && e.UserID == userID }); !ok {
		t.Error("no user_created event")
	}

	// Filters.
	for _, e := range auditEvents(t, in, "--type", "login_failed") {
		if e.Type != "login_failed" {
			t.Errorf("--type login_failed listed a %s event", e.Type)
		}
	}
	for _, e := range auditEvents(t, in, "--user", "alice") {
		if e.UserID != userID {
			t.Errorf("--user alice listed an event of user %q", e.UserID)
		}
	}
	for _, e := range auditEvents(t, in, "--client", clientID) {
		if e.ClientID != clientID {
			t.Errorf("--client listed an event of client %q", e.ClientID)
		}
	}
	if got := auditEvents(t, in, "--since", time.Now().Add(time.Hour).Format(time.RFC3339)); len(got) != 0 {
		t.Errorf("--since an hour ahead listed %d events", len(got))
	}

	in.cli("", "keys", "rotate")
	if _, ok := findEvent(auditEvents(t, in, "--type", "key_rotated"), func(auditEvent) bool { return true }); !ok {
		t.Error("keys rotate wrote no key_rotated event")
	}
	if text := in.cli("", "audit", "--limit", "3"); !strings.HasPrefix(text, "TIME") {
		t.Errorf("audit printed %q, want a table with a header", text)
	}
}

func TestAuditRefreshReuse(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.createUser("alice", "alice password 1", aliceScopes)
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	decodeJSON(t, in.cli("", "clients", "create", "--name", "desktop", "--owner", "alice", "--grant-types", "password refresh_token", "--json"), &c)
	s := in.serve()

	first := s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice password 1"}}, c.ClientID, c.ClientSecret).json(t)
	refresh := first["refresh_token"].(string)
	for range 2 {
		_ = s.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, c.ClientID, c.ClientSecret)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		events := auditEvents(t, in, "--type", "refresh_reuse_detected")
		if e, ok := findEvent(events, func(auditEvent) bool { return true }); ok {
			if e.ClientID != c.ClientID {
				t.Errorf("refresh_reuse_detected event names client %q, want %s", e.ClientID, c.ClientID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no refresh_reuse_detected event 10s after a refresh token was reused")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

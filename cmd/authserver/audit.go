package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quanux/authserver/storage"
)

func newAuditCommand(o *options) *cobra.Command {
	var user, client, eventType, since string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List security events: logins, tokens, revocations, account and key changes",
		Long: "List audit events, newest first. Filters combine. Event types: login_succeeded, login_failed, token_issued, " +
			"refresh_reuse_detected, token_revoked, client_registered, secret_rotated, client_disabled, client_enabled, client_deleted, " +
			"scopes_changed, password_changed, user_created, user_disabled, user_enabled, user_deleted, key_rotated.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, err := storage.Open(ctx, o.storageConfig(o.database))
			if err != nil {
				return err
			}
			defer closeStore(store, o.logger)
			if _, err := store.Migrate(ctx); err != nil {
				return err
			}

			filter := storage.AuditFilter{ClientID: client, Type: eventType, Limit: limit}
			if user != "" {
				filter.UserID = user
				if !strings.HasPrefix(user, "user_") {
					u, err := store.UserByUsername(ctx, user)
					if errors.Is(err, storage.ErrNotFound) {
						return fmt.Errorf("user %q not found; pass a username or a user_ id", user)
					}
					if err != nil {
						return err
					}
					filter.UserID = u.ID
				}
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				filter.Since = t
			}

			events, err := store.AuditEvents(ctx, filter)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type eventJSON struct {
					Time      time.Time `json:"time"`
					Type      string    `json:"type"`
					UserID    string    `json:"user_id,omitempty"`
					ClientID  string    `json:"client_id,omitempty"`
					Address   string    `json:"address,omitempty"`
					UserAgent string    `json:"user_agent,omitempty"`
					Detail    string    `json:"detail,omitempty"`
				}
				list := make([]eventJSON, 0, len(events))
				for _, e := range events {
					list = append(list, eventJSON{e.OccurredAt.UTC(), e.Type, e.UserID, e.ClientID, e.Address, e.UserAgent, e.Detail})
				}
				return json.NewEncoder(out).Encode(list)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tTYPE\tUSER\tCLIENT\tADDRESS\tDETAIL")
			for _, e := range events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.OccurredAt.UTC().Format(time.RFC3339), e.Type, dash(e.UserID), dash(e.ClientID), dash(e.Address), e.Detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only events of this user: a username or a user_ id")
	cmd.Flags().StringVar(&client, "client", "", "only events of this client id")
	cmd.Flags().StringVar(&eventType, "type", "", "only events of this type")
	cmd.Flags().StringVar(&since, "since", "", "only events since a time: a duration back from now (24h) or an RFC 3339 time")
	cmd.Flags().IntVar(&limit, "limit", 100, "maximum number of events")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// parseSince reads a duration back from now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: use a duration such as 24h or a time such as 2026-01-02T15:04:05Z", s)
	}
	return t, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

func newMigrateCommand(o *options) *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations, or copy another database in",
		Long: "Apply every pending database migration and exit. serve also migrates on start; this command lets an operator migrate ahead of a rollout.\n\n" +
			"With --from, also copy users, clients, signing keys and unexpired tokens from that database (such as the old SQLite file when moving to PostgreSQL) into --database. " +
			"Both must use the same master secret; rows that already exist are skipped, so the copy can be repeated.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, err := storage.Open(ctx, o.storageConfig(o.database))
			if err != nil {
				return err
			}
			defer closeStore(store, o.logger)
			applied, err := store.Migrate(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(applied) == 0 {
				fmt.Fprintln(out, "database is up to date")
			} else {
				fmt.Fprintf(out, "applied migrations %v\n", applied)
			}
			if from == "" {
				return nil
			}
			return o.copyDatabase(ctx, out, store, from)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "database to copy from: a SQLite file path or a postgres:// URL")
	return cmd
}

// copyDatabase copies the database at from into dst and checks that the
// copied signing keys open under this process's master secret.
func (o *options) copyDatabase(ctx context.Context, out io.Writer, dst *storage.Store, from string) error {
	if err := o.loadSecret(ctx); err != nil {
		return err
	}
	src, err := storage.Open(ctx, o.storageConfig(from))
	if err != nil {
		return fmt.Errorf("open source database: %w", err)
	}
	defer closeStore(src, o.logger)
	if _, err := src.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate source database: %w", err)
	}

	counts, err := dst.CopyFrom(ctx, src)
	if err != nil {
		return err
	}
	alg, err := activeAlgorithm(ctx, dst)
	if err != nil {
		return err
	}
	if _, err := o.openKeys(ctx, dst, alg); err != nil {
		return fmt.Errorf("the copied signing keys do not open; use the master secret of the source database: %w", err)
	}
	fmt.Fprintf(out, "copied %d users, %d clients, %d signing keys, %d tokens, %d revocations\n", counts.Users, counts.Clients, counts.SigningKeys, counts.Tokens, counts.Revocations)
	return nil
}

// accounts opens the database and the account rules for an admin command.
func (o *options) accounts(ctx context.Context) (*oauth.Accounts, *storage.Store, error) {
	if err := o.loadSecret(ctx); err != nil {
		return nil, nil, err
	}
	store, err := o.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	secrets, err := oauth.NewSecretHasher(o.secret)
	if err != nil {
		_ = store.Close()
		return nil, nil, err
	}
	passwords, err := oauth.NewPasswordHasher(oauth.Argon2Params{})
	if err != nil {
		_ = store.Close()
		return nil, nil, err
	}
	acc := oauth.NewAccounts(store, passwords, secrets, o.logger)
	acc.SetAuditor(oauth.NewSyncAuditor(store, o.logger))
	return acc, store, nil
}

func newKeysCommand(o *options) *cobra.Command {
	keysCmd := &cobra.Command{Use: "keys", Short: "Manage signing keys"}
	keysCmd.PersistentFlags().DurationVar(&o.accessTokenTTL, "access-token-ttl", time.Hour, "access-token lifetime; retired keys stay published this long plus 5 minutes")

	var alg string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make the next key active and retire the active one",
		Long: "Promote the published next key to active, retire the active key (it stays in the JWKS while tokens it signed may be live), and create a new next key. " +
			"Running servers pick the change up at their next key reload.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			km, store, err := o.keyManager(ctx, alg)
			if err != nil {
				return err
			}
			defer closeStore(store, o.logger)
			info, err := km.Rotate(ctx)
			if err != nil {
				return err
			}
			oauth.NewSyncAuditor(store, o.logger).Record(ctx, storage.AuditEvent{Type: oauth.EventKeyRotated, Detail: "kid=" + info.KeyID})
			fmt.Fprintf(cmd.OutOrStdout(), "active key: %s (%s)\n", info.KeyID, info.Algorithm)
			return nil
		},
	}
	rotate.Flags().StringVar(&alg, "signing-alg", "", "algorithm of the new keys: RS256, ES256 or EdDSA; default the active key's")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			km, store, err := o.keyManager(ctx, "")
			if err != nil {
				return err
			}
			defer closeStore(store, o.logger)
			return printKeys(cmd.OutOrStdout(), km.Keys(), asJSON)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")

	keysCmd.AddCommand(rotate, list)
	return keysCmd
}

// keyManager opens the keys for an admin command. An empty alg keeps the
// active key's algorithm, so an admin command never changes it by default.
func (o *options) keyManager(ctx context.Context, alg string) (*keys.Manager, *storage.Store, error) {
	if err := o.loadSecret(ctx); err != nil {
		return nil, nil, err
	}
	store, err := o.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	if alg == "" {
		alg, err = activeAlgorithm(ctx, store)
		if err != nil {
			_ = store.Close()
			return nil, nil, err
		}
	}
	km, err := o.openKeys(ctx, store, alg)
	if err != nil {
		_ = store.Close()
		return nil, nil, err
	}
	return km, store, nil
}

func activeAlgorithm(ctx context.Context, store *storage.Store) (string, error) {
	records, err := store.SigningKeys(ctx)
	if err != nil {
		return "", err
	}
	for _, r := range records {
		if r.State == keys.StateActive {
			return r.Algorithm, nil
		}
	}
	return "RS256", nil
}

func printKeys(w io.Writer, infos []keys.Info, asJSON bool) error {
	if asJSON {
		type keyJSON struct {
			KeyID       string     `json:"kid"`
			Algorithm   string     `json:"alg"`
			State       string     `json:"state"`
			Published   bool       `json:"published"`
			CreatedAt   time.Time  `json:"created_at"`
			ActivatedAt *time.Time `json:"activated_at,omitempty"`
			RetiredAt   *time.Time `json:"retired_at,omitempty"`
		}
		out := make([]keyJSON, 0, len(infos))
		for _, k := range infos {
			out = append(out, keyJSON{k.KeyID, k.Algorithm, string(k.State), k.Published, k.CreatedAt, optionalTime(k.ActivatedAt), optionalTime(k.RetiredAt)})
		}
		return json.NewEncoder(w).Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tPUBLISHED\tCREATED")
	for _, k := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", k.KeyID, k.Algorithm, k.State, k.Published, k.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
	fmt.Fprintf(out, "copied %d users, %d clients, %d signing keys, %d tokens\n", counts.Users, counts.Clients, counts.SigningKeys, counts.Tokens)
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

func newUsersCommand(o *options) *cobra.Command {
	users := &cobra.Command{Use: "users", Short: "Manage users"}

	var username, scopes string
	var passwordStdin bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a user and print its id",
		Long: "Create a user with a password read from standard input and print the new user id (user_…). " +
			"The username is compared case-insensitively after Unicode normalisation (RFC 8265).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !passwordStdin {
				return errors.New("pass --password-stdin and write the password to standard input; passwords are never taken as flags")
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			acc, store, err := o.accounts(ctx)
			if err != nil {
				return err
			}
			defer closeStore(store, o.logger)

			u, err := acc.CreateUser(ctx, username, password, strings.Fields(scopes))
			if errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("user %q already exists", username)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), u.ID)
			return nil
		},
	}
	create.Flags().StringVar(&username, "username", "", "username (required)")
	create.Flags().StringVar(&scopes, "scopes", "", `space-separated scopes the user holds, such as "strategy:read forge:write"`)
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (its first line)")
	_ = create.MarkFlagRequired("username")
	users.AddCommand(create)
	return users
}

// readPassword returns the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReaderSize(r, oauth.MaxPasswordLength+2).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", errors.New("the password read from standard input is empty")
	}
	if len(password) > oauth.MaxPasswordLength {
		return "", oauth.ErrPasswordTooLong
	}
	return password, nil
}

func newClientsCommand(o *options) *cobra.Command {
	clients := &cobra.Command{Use: "clients", Short: "Manage OAuth 2.0 clients"}

	var name, owner, scopes, email, grantTypes string
	var asJSON, scopesSet, introspect bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a confidential client and print its id and secret",
		Long: "Create a confidential client owned by a user and print client_id and client_secret. " +
			"The secret is shown only once. Without --scopes the client gets all of the owner's scopes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			acc, store, err := o.accounts(ctx)
			if err != nil {
				return err
			}
			defer closeStore(store, o.logger)

			u, err := store.UserByUsername(ctx, owner)
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("owner %q not found", owner)
			}
			if err != nil {
				return err
			}
			reg := oauth.ClientRegistration{OwnerID: u.ID, Name: name, Email: email, GrantTypes: strings.Fields(grantTypes), Introspect: introspect}
			if scopesSet = cmd.Flags().Changed("scopes"); scopesSet {
				reg.Scopes = strings.Fields(scopes)
			}
			c, secret, err := acc.RegisterClient(ctx, reg)
			if err != nil {
				return err
			}

			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{
					"client_id": c.ID, "client_secret": secret, "name": c.Name, "owner_id": u.ID, "scopes": c.Scopes, "grant_types": c.GrantTypes,
				})
			}
			fmt.Fprintf(out, "client_id: %s\nclient_secret: %s\n", c.ID, secret)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "client name (required)")
	create.Flags().StringVar(&owner, "owner", "", "username of the owning user (required)")
	create.Flags().StringVar(&scopes, "scopes", "", "space-separated scopes, a subset of the owner's; default all of the owner's")
	create.Flags().StringVar(&email, "email", "", "contact email")
	create.Flags().StringVar(&grantTypes, "grant-types", "client_credentials", "space-separated grants the client may use: client_credentials, password, refresh_token")
	create.Flags().BoolVar(&introspect, "introspect", false, "let the client introspect tokens of every client, as a resource server does")
	create.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("owner")
	clients.AddCommand(create)
	return clients
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

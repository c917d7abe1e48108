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

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

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
	users.AddCommand(create,
		newUsersListCommand(o),
		newUsersShowCommand(o),
		newUsersDisableCommand(o),
		newUsersEnableCommand(o),
		newUsersSetPasswordCommand(o),
		newUsersSetScopesCommand(o),
		newUsersDeleteCommand(o),
		newUsersImportCommand(o),
	)
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

// withAccounts opens the database and the account rules for one admin
// command, runs fn, and closes the database.
func (o *options) withAccounts(cmd *cobra.Command, fn func(ctx context.Context, acc *oauth.Accounts, store *storage.Store) error) error {
	ctx := cmd.Context()
	acc, store, err := o.accounts(ctx)
	if err != nil {
		return err
	}
	defer closeStore(store, o.logger)
	return fn(ctx, acc, store)
}

// onUser runs fn on the user that name (a username or a user_ id) names,
// with the account rules open.
func (o *options) onUser(cmd *cobra.Command, name string, fn func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, u storage.User) error) error {
	return o.withAccounts(cmd, func(ctx context.Context, acc *oauth.Accounts, store *storage.Store) error {
		u, err := findUser(ctx, store, name)
		if err != nil {
			return err
		}
		return fn(ctx, acc, store, u)
	})
}

// onClient runs fn on the client with that id, with the account rules
// open.
func (o *options) onClient(cmd *cobra.Command, id string, fn func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, c *storage.Client) error) error {
	return o.withAccounts(cmd, func(ctx context.Context, acc *oauth.Accounts, store *storage.Store) error {
		c, err := findClient(ctx, store, id)
		if err != nil {
			return err
		}
		return fn(ctx, acc, store, c)
	})
}

// withStore opens the database for a command that only reads it, so it
// needs no master secret.
func (o *options) withStore(cmd *cobra.Command, fn func(ctx context.Context, store *storage.Store) error) error {
	ctx := cmd.Context()
	store, err := o.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore(store, o.logger)
	return fn(ctx, store)
}

// findUser returns the user that name names: a username, compared after
// RFC 8265 normalisation like at login, or else a user id.
func findUser(ctx context.Context, store *storage.Store, name string) (storage.User, error) {
	u, err := store.UserByUsername(ctx, name)
	if !errors.Is(err, storage.ErrNotFound) {
		return u, err
	}
	u, err = store.UserByID(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, fmt.Errorf("user %q not found", name)
	}
	return u, err
}

// userJSON is one user in the --json output of users list and show. It
// never carries the password hash, only its scheme.
type userJSON struct {
	ID             string    `json:"id"`
	Username       string    `json:"username"`
	Scopes         []string  `json:"scopes"`
	Disabled       bool      `json:"disabled"`
	PasswordScheme string    `json:"password_scheme"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func newUserJSON(u storage.User) userJSON {
	return userJSON{
		ID:             u.ID,
		Username:       u.Username,
		Scopes:         nonNilStrings(u.Scopes),
		Disabled:       u.Disabled,
		PasswordScheme: passwordScheme(u.PasswordHash),
		CreatedAt:      u.CreatedAt.UTC(),
		UpdatedAt:      u.UpdatedAt.UTC(),
	}
}

// passwordScheme names the scheme of a stored password hash, without
// revealing the hash.
func passwordScheme(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return "argon2id"
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		return "bcrypt"
	default:
		return "unknown"
	}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// countOf returns n and noun, with an English plural s unless n is 1.
func countOf[N int | int64](n N, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// scopeText renders scopes for a table or message.
func scopeText(scopes []string) string {
	if len(scopes) == 0 {
		return "(none)"
	}
	return strings.Join(scopes, " ")
}

func newUsersListCommand(o *options) *cobra.Command {
	var limit, offset int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users in username order",
		Long: "List users in the order of their normalised usernames, with id, state, password-hash scheme and scopes. " +
			"Password hashes are never printed. The scheme bcrypt means the user was imported and has not logged in since; " +
			"the hash becomes argon2id at the next successful login.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStore(cmd, func(ctx context.Context, store *storage.Store) error {
				users, err := store.ListUsers(ctx, storage.Page{Limit: limit, Offset: offset})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					list := make([]userJSON, 0, len(users))
					for _, u := range users {
						list = append(list, newUserJSON(u))
					}
					return json.NewEncoder(out).Encode(list)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tID\tDISABLED\tPASSWORD\tCREATED\tSCOPES")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\n", u.Username, u.ID, u.Disabled, passwordScheme(u.PasswordHash), u.CreatedAt.UTC().Format(time.RFC3339), scopeText(u.Scopes))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "maximum number of users to print; 0 prints all")
	cmd.Flags().IntVar(&offset, "offset", 0, "number of users to skip before printing, for paging with --limit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of users")
	return cmd
}

func newUsersShowCommand(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show USERNAME",
		Short: "Show one user and its clients",
		Long: "Show a user's id, state, password-hash scheme, scopes and clients. " +
			"USERNAME is compared like at login (case-insensitively, after RFC 8265 normalisation); a user id (user_…) works too. " +
			"Password hashes and client secrets are never printed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStore(cmd, func(ctx context.Context, store *storage.Store) error {
				u, err := findUser(ctx, store, args[0])
				if err != nil {
					return err
				}
				clients, err := store.ListClients(ctx, u.ID, storage.Page{})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					owned := make([]clientJSON, 0, len(clients))
					for _, c := range clients {
						owned = append(owned, newClientJSON(c, u.Username))
					}
					return json.NewEncoder(out).Encode(struct {
						userJSON
						Clients []clientJSON `json:"clients"`
					}{newUserJSON(u), owned})
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "id:\t%s\n", u.ID)
				fmt.Fprintf(tw, "username:\t%s\n", u.Username)
				fmt.Fprintf(tw, "disabled:\t%t\n", u.Disabled)
				fmt.Fprintf(tw, "password:\t%s\n", passwordScheme(u.PasswordHash))
				fmt.Fprintf(tw, "scopes:\t%s\n", scopeText(u.Scopes))
				fmt.Fprintf(tw, "created:\t%s\n", u.CreatedAt.UTC().Format(time.RFC3339))
				fmt.Fprintf(tw, "updated:\t%s\n", u.UpdatedAt.UTC().Format(time.RFC3339))
				fmt.Fprintf(tw, "clients:\t%d\n", len(clients))
				if err := tw.Flush(); err != nil {
					return err
				}
				// The clients get a table of their own, so that their ids
				// do not widen the first column above.
				tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, c := range clients {
					fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.ID, c.Name, clientState(c))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object, with the user's clients under \"clients\"")
	return cmd
}

func newUsersDisableCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "disable USERNAME",
		Short: "Disable a user and revoke its tokens",
		Long: "Disable a user. It can no longer log in, its clients can no longer get tokens, and every token that acts for it, " +
			"including the client-credentials tokens of its clients, is revoked at once, also on running servers. " +
			"The user and its clients are kept; users enable lets it log in again, with new tokens.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onUser(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, u storage.User) error {
				revoked, err := acc.DisableUser(ctx, u.ID)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %q disabled; %s revoked\n", u.Username, countOf(revoked, "token"))
				return nil
			})
		},
	}
}

func newUsersEnableCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "enable USERNAME",
		Short: "Enable a disabled user",
		Long: "Enable a disabled user, so that it can log in and its clients can get tokens again. " +
			"Tokens revoked when it was disabled stay revoked.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onUser(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, u storage.User) error {
				if err := acc.EnableUser(ctx, u.ID); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %q enabled\n", u.Username)
				return nil
			})
		},
	}
}

func newUsersSetPasswordCommand(o *options) *cobra.Command {
	var passwordStdin, revokeTokens bool
	cmd := &cobra.Command{
		Use:   "set-password USERNAME --password-stdin",
		Short: "Set a user's password, read from standard input",
		Long: "Replace a user's password with the first line of standard input, hashed with argon2id. " +
			"Tokens issued before stay valid until they expire unless --revoke-tokens is given.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !passwordStdin {
				return errors.New("pass --password-stdin and write the password to standard input; passwords are never taken as flags")
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return o.onUser(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, u storage.User) error {
				if err := acc.SetPassword(ctx, u.ID, password); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if !revokeTokens {
					fmt.Fprintf(out, "password of user %q changed\n", u.Username)
					return nil
				}
				revoked, err := acc.RevokeUserTokens(ctx, u.ID)
				if err != nil {
					return fmt.Errorf("the password was changed, but revoking the tokens failed: %w", err)
				}
				fmt.Fprintf(out, "password of user %q changed; %s revoked\n", u.Username, countOf(revoked, "token"))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (its first line); required")
	cmd.Flags().BoolVar(&revokeTokens, "revoke-tokens", false, "also revoke every token that acts for the user, including its clients' client-credentials tokens")
	return cmd
}

func newUsersSetScopesCommand(o *options) *cobra.Command {
	var scopes string
	var revokeTokens bool
	cmd := &cobra.Command{
		Use:   "set-scopes USERNAME --scopes \"a b\"",
		Short: "Replace a user's scopes",
		Long: "Replace the scopes a user holds. The user's clients keep their own scope lists, but every token request grants only " +
			"scopes the owner still holds, so narrowing a user narrows the new tokens of its clients too. " +
			"Tokens issued before keep their scopes until they expire (at most --access-token-ttl of serve) unless --revoke-tokens is given.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onUser(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, u storage.User) error {
				list := strings.Fields(scopes)
				if err := acc.SetScopes(ctx, u.ID, list); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if !revokeTokens {
					fmt.Fprintf(out, "user %q now has scopes: %s\n", u.Username, scopeText(list))
					return nil
				}
				revoked, err := acc.RevokeUserTokens(ctx, u.ID)
				if err != nil {
					return fmt.Errorf("the scopes were changed, but revoking the tokens failed: %w", err)
				}
				fmt.Fprintf(out, "user %q now has scopes: %s; %s revoked\n", u.Username, scopeText(list), countOf(revoked, "token"))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&scopes, "scopes", "", `space-separated scopes, such as "strategy:read forge:write"; "" removes all (required)`)
	cmd.Flags().BoolVar(&revokeTokens, "revoke-tokens", false, "also revoke every token that acts for the user, so no token keeps a removed scope")
	_ = cmd.MarkFlagRequired("scopes")
	return cmd
}

func newUsersDeleteCommand(o *options) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete USERNAME --yes",
		Short: "Delete a user, its clients and all their tokens",
		Long: "Delete a user for good, together with the clients it owns and every token of both. " +
			"Running servers reject the tokens at once. Without --yes the command only says what it would delete.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onUser(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, u storage.User) error {
				clients, err := store.ListClients(ctx, u.ID, storage.Page{})
				if err != nil {
					return err
				}
				if !yes {
					return fmt.Errorf("deleting user %q also deletes its %s and all their tokens; pass --yes to confirm", u.Username, countOf(len(clients), "client"))
				}
				if err := acc.DeleteUser(ctx, u.ID); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %q deleted with %s\n", u.Username, countOf(len(clients), "client"))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion; without it nothing is deleted")
	return cmd
}

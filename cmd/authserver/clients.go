package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

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
	clients.AddCommand(create,
		newClientsListCommand(o),
		newClientsShowCommand(o),
		newClientsDisableCommand(o),
		newClientsEnableCommand(o),
		newClientsDeleteCommand(o),
		newClientsRotateSecretCommand(o),
		newClientsSetScopesCommand(o),
	)
	return clients
}

// findClient returns client id. The built-in legacy login client is
// reported as not found, because no admin command may show or change it.
func findClient(ctx context.Context, store *storage.Store, id string) (*storage.Client, error) {
	if id == storage.LegacyClientID {
		return nil, fmt.Errorf("client %q not found; it is the built-in legacy login client, which cannot be managed", id)
	}
	c, err := store.Client(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("client %q not found", id)
	}
	return c, err
}

// clientNotFound turns the not-found error of an account change into the
// same message findClient gives, for a client deleted in between.
func clientNotFound(id string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("client %q not found", id)
	}
	return err
}

// clientJSON is one client in the --json output of clients list and show,
// and of users show. It never carries the secret or its hash.
type clientJSON struct {
	ClientID      string    `json:"client_id"`
	Name          string    `json:"name"`
	Email         string    `json:"email"`
	OwnerID       string    `json:"owner_id"`
	Owner         string    `json:"owner"`
	Scopes        []string  `json:"scopes"`
	GrantTypes    []string  `json:"grant_types"`
	Introspect    bool      `json:"introspect"`
	Disabled      bool      `json:"disabled"`
	OwnerDisabled bool      `json:"owner_disabled"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func newClientJSON(c *storage.Client, owner string) clientJSON {
	return clientJSON{
		ClientID:      c.ID,
		Name:          c.Name,
		Email:         c.Email,
		OwnerID:       c.OwnerID,
		Owner:         owner,
		Scopes:        nonNilStrings(c.Scopes),
		GrantTypes:    nonNilStrings(c.GrantTypes),
		Introspect:    c.Introspect,
		Disabled:      c.Disabled,
		OwnerDisabled: c.OwnerDisabled,
		CreatedAt:     c.CreatedAt.UTC(),
		UpdatedAt:     c.UpdatedAt.UTC(),
	}
}

// ownerNames looks up and remembers the usernames of client owners.
type ownerNames struct {
	store *storage.Store
	names map[string]string
}

func (n *ownerNames) of(ctx context.Context, ownerID string) (string, error) {
	if name, ok := n.names[ownerID]; ok {
		return name, nil
	}
	u, err := n.store.UserByID(ctx, ownerID)
	if err != nil {
		return "", fmt.Errorf("owner %s: %w", ownerID, err)
	}
	n.names[ownerID] = u.Username
	return u.Username, nil
}

// clientState describes a client's state for a table.
func clientState(c *storage.Client) string {
	switch {
	case c.Disabled:
		return "disabled"
	case c.OwnerDisabled:
		return "owner disabled"
	default:
		return "enabled"
	}
}

func newClientsListCommand(o *options) *cobra.Command {
	var owner string
	var limit, offset int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List clients, oldest first",
		Long: "List registered clients, oldest first, with owner, state, grant types and scopes; with --owner only that user's. " +
			"Client secrets are never printed, and the built-in legacy login client is not listed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withStore(cmd, func(ctx context.Context, store *storage.Store) error {
				ownerID := ""
				if owner != "" {
					u, err := findUser(ctx, store, owner)
					if err != nil {
						return err
					}
					ownerID = u.ID
				}
				clients, err := store.ListClients(ctx, ownerID, storage.Page{Limit: limit, Offset: offset})
				if err != nil {
					return err
				}

				names := &ownerNames{store: store, names: map[string]string{}}
				list := make([]clientJSON, 0, len(clients))
				for _, c := range clients {
					name, err := names.of(ctx, c.OwnerID)
					if err != nil {
						return err
					}
					list = append(list, newClientJSON(c, name))
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return json.NewEncoder(out).Encode(list)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT_ID\tNAME\tOWNER\tSTATE\tCREATED\tGRANT_TYPES\tSCOPES")
				for i, c := range clients {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, list[i].Owner, clientState(c),
						c.CreatedAt.UTC().Format(time.RFC3339), strings.Join(c.GrantTypes, " "), scopeText(c.Scopes))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "list only the clients of this user (username or user id); default all clients")
	cmd.Flags().IntVar(&limit, "limit", 0, "maximum number of clients to print; 0 prints all")
	cmd.Flags().IntVar(&offset, "offset", 0, "number of clients to skip before printing, for paging with --limit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of clients")
	return cmd
}

func newClientsShowCommand(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show CLIENT_ID",
		Short: "Show one client",
		Long:  "Show a client's name, owner, state, grant types and scopes. The secret is never printed; clients rotate-secret issues a new one.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withStore(cmd, func(ctx context.Context, store *storage.Store) error {
				c, err := findClient(ctx, store, args[0])
				if err != nil {
					return err
				}
				names := &ownerNames{store: store, names: map[string]string{}}
				owner, err := names.of(ctx, c.OwnerID)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return json.NewEncoder(out).Encode(newClientJSON(c, owner))
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "client_id:\t%s\n", c.ID)
				fmt.Fprintf(tw, "name:\t%s\n", c.Name)
				fmt.Fprintf(tw, "email:\t%s\n", c.Email)
				fmt.Fprintf(tw, "owner:\t%s (%s)\n", owner, c.OwnerID)
				fmt.Fprintf(tw, "state:\t%s\n", clientState(c))
				fmt.Fprintf(tw, "grant_types:\t%s\n", strings.Join(c.GrantTypes, " "))
				fmt.Fprintf(tw, "scopes:\t%s\n", scopeText(c.Scopes))
				fmt.Fprintf(tw, "introspect:\t%t\n", c.Introspect)
				fmt.Fprintf(tw, "created:\t%s\n", c.CreatedAt.UTC().Format(time.RFC3339))
				fmt.Fprintf(tw, "updated:\t%s\n", c.UpdatedAt.UTC().Format(time.RFC3339))
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newClientsDisableCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "disable CLIENT_ID",
		Short: "Disable a client and revoke its tokens",
		Long: "Disable a client: it can no longer get tokens, and every token issued to it is revoked at once, also on running servers. " +
			"The client is kept; clients enable lets it get tokens again with its current secret.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onClient(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, c *storage.Client) error {
				revoked, err := acc.DisableClient(ctx, c.ID)
				if err != nil {
					return clientNotFound(c.ID, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "client %s (%s) disabled; %s revoked\n", c.ID, c.Name, countOf(revoked, "token"))
				return nil
			})
		},
	}
}

func newClientsEnableCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "enable CLIENT_ID",
		Short: "Enable a disabled client",
		Long:  "Enable a disabled client, so that it can get tokens again with its current secret. Tokens revoked when it was disabled stay revoked.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onClient(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, c *storage.Client) error {
				if err := acc.EnableClient(ctx, c.ID); err != nil {
					return clientNotFound(c.ID, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "client %s (%s) enabled\n", c.ID, c.Name)
				return nil
			})
		},
	}
}

func newClientsDeleteCommand(o *options) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete CLIENT_ID --yes",
		Short: "Delete a client and its tokens",
		Long: "Delete a client for good, together with every token issued to it. Running servers reject the tokens at once. " +
			"Without --yes the command only says what it would delete.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onClient(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, c *storage.Client) error {
				if !yes {
					return fmt.Errorf("deleting client %s (%s) also deletes all its tokens; pass --yes to confirm", c.ID, c.Name)
				}
				if err := acc.DeleteClient(ctx, c.ID); err != nil {
					return clientNotFound(c.ID, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "client %s (%s) deleted\n", c.ID, c.Name)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion; without it nothing is deleted")
	return cmd
}

func newClientsRotateSecretCommand(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "Give a client a new secret and print it",
		Long: "Give a client a new secret and print client_id and client_secret. The secret is shown only once. " +
			"The old secret stops working at once, and every token issued to the client is revoked, " +
			"because whoever held the old secret may hold those tokens too.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onClient(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, c *storage.Client) error {
				secret, err := acc.RotateSecret(ctx, c.ID)
				if err != nil {
					return clientNotFound(c.ID, err)
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return json.NewEncoder(out).Encode(map[string]string{"client_id": c.ID, "client_secret": secret})
				}
				fmt.Fprintf(out, "client_id: %s\nclient_secret: %s\n", c.ID, secret)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object with client_id and client_secret")
	return cmd
}

func newClientsSetScopesCommand(o *options) *cobra.Command {
	var scopes string
	cmd := &cobra.Command{
		Use:   "set-scopes CLIENT_ID --scopes \"a b\"",
		Short: "Replace the scopes a client may request",
		Long: "Replace the scopes a client may request. They must be a subset of the owner's current scopes. " +
			"Tokens issued before keep their scopes until they expire (at most --access-token-ttl of serve).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.onClient(cmd, args[0], func(ctx context.Context, acc *oauth.Accounts, store *storage.Store, c *storage.Client) error {
				list := strings.Fields(scopes)
				if err := acc.SetClientScopes(ctx, c.ID, list); err != nil {
					return clientNotFound(c.ID, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "client %s (%s) now has scopes: %s\n", c.ID, c.Name, scopeText(list))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&scopes, "scopes", "", `space-separated scopes, a subset of the owner's, such as "strategy:read"; "" removes all (required)`)
	_ = cmd.MarkFlagRequired("scopes")
	return cmd
}

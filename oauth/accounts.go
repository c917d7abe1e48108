package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/quanux/authserver/storage"
)

// Limits on client registration input.
const (
	MaxClientNameLength = 100 // characters
	MaxEmailLength      = 254 // bytes, RFC 5321 §4.5.3.1.3
	MaxScopes           = 64
	MaxScopeLength      = 128 // bytes
)

// ErrInvalidInput wraps every validation failure of account input; its
// message is safe to show to the caller.
var ErrInvalidInput = errors.New("invalid input")

// ErrScopeNotAllowed is returned when a client would get a scope its owner
// lacks.
var ErrScopeNotAllowed = errors.New("scope not allowed")

// Accounts creates users and clients and checks passwords, applying the
// same rules for the command line and both HTTP faces. It is safe for
// concurrent use.
type Accounts struct {
	store     *storage.Store
	passwords *PasswordHasher
	secrets   *SecretHasher
	logger    *slog.Logger
	auditor   *Auditor
}

// SetAuditor makes the account changes write audit events to au. Call it
// before the Accounts is used.
func (a *Accounts) SetAuditor(au *Auditor) { a.auditor = au }

// NewAccounts returns Accounts over store. logger may be nil.
func NewAccounts(store *storage.Store, passwords *PasswordHasher, secrets *SecretHasher, logger *slog.Logger) *Accounts {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Accounts{store: store, passwords: passwords, secrets: secrets, logger: logger}
}

// CreateUser creates a user with a new "user_" id. It returns errors
// wrapping ErrInvalidInput for a bad username, password or scope, and
// storage.ErrConflict when the normalised username is taken.
func (a *Accounts) CreateUser(ctx context.Context, username, password string, scopes []string) (storage.User, error) {
	if _, err := storage.NormalizeUsername(username); err != nil {
		return storage.User{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if password == "" {
		return storage.User{}, fmt.Errorf("%w: password is empty", ErrInvalidInput)
	}
	if err := ValidateScopes(scopes); err != nil {
		return storage.User{}, err
	}
	hash, err := a.passwords.Hash(password)
	if errors.Is(err, ErrPasswordTooLong) {
		return storage.User{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if err != nil {
		return storage.User{}, err
	}

	u := storage.User{ID: newUserID(), Username: username, PasswordHash: hash, Scopes: dedupe(scopes)}
	if err := a.store.CreateUser(ctx, u); err != nil {
		return storage.User{}, err
	}
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventUserCreated, UserID: u.ID, Detail: "username=" + u.Username})
	return u, nil
}

// ClientRegistration is the input of [Accounts.RegisterClient].
type ClientRegistration struct {
	OwnerID string
	Name    string
	Email   string
	// Scopes narrows the client to these scopes; nil means all of the
	// owner's scopes at registration time.
	Scopes []string
	// GrantTypes lists the grants the client may use, from
	// ClientGrantTypes; nil means client_credentials only.
	GrantTypes []string
	// Introspect lets the client introspect every token, as a resource
	// server needs; only operators grant it.
	Introspect bool
}

// ClientGrantTypes are the grants a registered client may be allowed.
var ClientGrantTypes = []string{"client_credentials", "password", "refresh_token"}

// RegisterClient creates a confidential client owned by r.OwnerID and
// returns it with its secret, which is not stored and cannot be shown
// again. It returns errors wrapping ErrInvalidInput for bad input,
// ErrScopeNotAllowed for a scope the owner lacks, and storage.ErrNotFound
// when the owner does not exist.
func (a *Accounts) RegisterClient(ctx context.Context, r ClientRegistration) (*storage.Client, string, error) {
	if err := validateClientName(r.Name); err != nil {
		return nil, "", err
	}
	if err := validateEmail(r.Email); err != nil {
		return nil, "", err
	}
	owner, err := a.store.UserByID(ctx, r.OwnerID)
	if err != nil {
		return nil, "", err
	}
	if owner.Disabled {
		return nil, "", fmt.Errorf("owner %s is disabled: %w", owner.ID, storage.ErrNotFound)
	}

	scopes := owner.Scopes
	if r.Scopes != nil {
		if err := ValidateScopes(r.Scopes); err != nil {
			return nil, "", err
		}
		for _, s := range r.Scopes {
			if !slices.Contains(owner.Scopes, s) {
				return nil, "", fmt.Errorf("%w: the owner does not have scope %q", ErrScopeNotAllowed, s)
			}
		}
		scopes = dedupe(r.Scopes)
	}

	grants := []string{"client_credentials"}
	if r.GrantTypes != nil {
		if err := validateGrantTypes(r.GrantTypes); err != nil {
			return nil, "", err
		}
		grants = dedupe(r.GrantTypes)
	}

	secret := newClientSecret()
	hash, err := a.secrets.Hash(ctx, []byte(secret))
	if err != nil {
		return nil, "", err
	}
	c := &storage.Client{
		ID:         newClientID(),
		Name:       r.Name,
		Email:      r.Email,
		SecretHash: hash,
		OwnerID:    owner.ID,
		Scopes:     scopes,
		GrantTypes: grants,
		Introspect: r.Introspect,
	}
	if err := a.store.CreateClient(ctx, c); err != nil {
		return nil, "", err
	}
	a.logger.InfoContext(ctx, "client registered", "client_id", c.ID, "subject", owner.ID)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventClientRegistered, UserID: owner.ID, ClientID: c.ID, Detail: "name=" + c.Name})
	return c, secret, nil
}

// Authenticate checks a username and password. It returns ok false, with a
// nil error, for an unknown or disabled user and for a wrong password, and
// spends the time of one hash verification in every case. An error means an
// outage, not bad credentials. A correct password whose hash uses weaker
// parameters or bcrypt is rehashed with the current parameters.
func (a *Accounts) Authenticate(ctx context.Context, username, password string) (storage.User, bool, error) {
	release, err := a.passwords.Acquire(ctx)
	if err != nil {
		return storage.User{}, false, err
	}
	defer release()

	u, err := a.store.UserByUsername(ctx, username)
	if errors.Is(err, storage.ErrNotFound) {
		a.passwords.VerifyDummy(password)
		return storage.User{}, false, nil
	}
	if err != nil {
		return storage.User{}, false, err
	}

	ok, rehash, err := a.passwords.Verify(u.PasswordHash, password)
	if err != nil {
		return storage.User{}, false, fmt.Errorf("verify password of user %s: %w", u.ID, err)
	}
	if !ok || u.Disabled {
		return storage.User{}, false, nil
	}

	if rehash {
		a.upgradeHash(ctx, u, password)
	}
	return u, true, nil
}

func (a *Accounts) upgradeHash(ctx context.Context, u storage.User, password string) {
	hash, err := a.passwords.Hash(password)
	if err != nil {
		a.logger.ErrorContext(ctx, "password rehash failed", "subject", u.ID, "err", err)
		return
	}
	err = a.store.UpdatePasswordHash(ctx, u.ID, u.PasswordHash, hash)
	if errors.Is(err, storage.ErrNotFound) {
		// The password changed meanwhile; the newer hash stays.
		return
	}
	if err != nil {
		a.logger.ErrorContext(ctx, "password rehash failed", "subject", u.ID, "err", err)
		return
	}
	a.logger.InfoContext(ctx, "password hash upgraded", "subject", u.ID)
}

// ValidateScopes checks scope tokens against RFC 6749 §3.3 (printable ASCII
// without space, quote or backslash) and the size limits. Errors wrap
// ErrInvalidInput.
func ValidateScopes(scopes []string) error {
	if len(scopes) > MaxScopes {
		return fmt.Errorf("%w: more than %d scopes", ErrInvalidInput, MaxScopes)
	}
	for _, s := range scopes {
		if s == "" || len(s) > MaxScopeLength {
			return fmt.Errorf("%w: scope %q must be 1 to %d bytes", ErrInvalidInput, s, MaxScopeLength)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return fmt.Errorf("%w: scope %q has a character RFC 6749 does not allow", ErrInvalidInput, s)
			}
		}
	}
	return nil
}

func validateGrantTypes(grants []string) error {
	if len(grants) == 0 {
		return fmt.Errorf("%w: a client needs at least one grant type", ErrInvalidInput)
	}
	for _, g := range grants {
		if !slices.Contains(ClientGrantTypes, g) {
			return fmt.Errorf("%w: grant type %q is not one of %s", ErrInvalidInput, g, strings.Join(ClientGrantTypes, ", "))
		}
	}
	if slices.Contains(grants, "refresh_token") && !slices.Contains(grants, "password") {
		return fmt.Errorf("%w: refresh_token needs the password grant, the only one that issues refresh tokens", ErrInvalidInput)
	}
	return nil
}

func validateClientName(name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("%w: client_name is empty", ErrInvalidInput)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: client_name is not valid UTF-8", ErrInvalidInput)
	}
	if n := utf8.RuneCountInString(name); n > MaxClientNameLength {
		return fmt.Errorf("%w: client_name has %d characters, the maximum is %d", ErrInvalidInput, n, MaxClientNameLength)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w: client_name contains a control or format character", ErrInvalidInput)
		}
	}
	return nil
}

func validateEmail(email string) error {
	if email == "" {
		return nil
	}
	if len(email) > MaxEmailLength {
		return fmt.Errorf("%w: email longer than %d bytes", ErrInvalidInput, MaxEmailLength)
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return fmt.Errorf("%w: email is not a plain address such as name@example.com", ErrInvalidInput)
	}
	return nil
}

func dedupe(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

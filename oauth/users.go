package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/quanux/authserver/storage"
)

// SetPassword replaces the password of user id with an argon2id hash of
// password. Tokens issued before stay valid until they expire; call
// [Accounts.RevokeUserTokens] to end them. It returns errors wrapping
// ErrInvalidInput for an empty or too long password, and
// storage.ErrNotFound for an unknown id.
func (a *Accounts) SetPassword(ctx context.Context, id, password string) error {
	if password == "" {
		return fmt.Errorf("%w: password is empty", ErrInvalidInput)
	}
	hash, err := a.passwords.Hash(password)
	if errors.Is(err, ErrPasswordTooLong) {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if err != nil {
		return err
	}

	if err := a.store.UpdateUser(ctx, id, storage.UserUpdate{PasswordHash: &hash}); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "password changed", "subject", id)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventPasswordChanged, UserID: id})
	return nil
}

// SetScopes replaces the scopes of user id. The user's clients keep their
// own scope lists, but every token request grants only scopes the owner
// still holds, so narrowing a user narrows their clients' new tokens too.
// Tokens issued before keep their scopes until they expire. It returns
// errors wrapping ErrInvalidInput for an invalid scope, and
// storage.ErrNotFound for an unknown id.
func (a *Accounts) SetScopes(ctx context.Context, id string, scopes []string) error {
	if err := ValidateScopes(scopes); err != nil {
		return err
	}
	scopes = dedupe(scopes)

	if err := a.store.UpdateUser(ctx, id, storage.UserUpdate{Scopes: &scopes}); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "user scopes changed", "subject", id, "scopes", strings.Join(scopes, " "))
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventScopesChanged, UserID: id, Detail: "scopes=" + strings.Join(scopes, " ")})
	return nil
}

// DisableUser disables user id and revokes every token that acts for it,
// including the client-credentials tokens of its clients, and returns how
// many tokens it revoked. A disabled user cannot log in and its clients
// cannot authenticate. Because the tokens are revoked, not only hidden,
// enabling the user again does not revive them. It returns
// storage.ErrNotFound for an unknown id.
func (a *Accounts) DisableUser(ctx context.Context, id string) (int64, error) {
	disabled := true
	var revoked int64
	err := a.inTx(ctx, func(ctx context.Context) error {
		if err := a.store.UpdateUser(ctx, id, storage.UserUpdate{Disabled: &disabled}); err != nil {
			return err
		}
		var err error
		revoked, err = a.store.RevokeTokensOfUser(ctx, id)
		return err
	})
	if err != nil {
		return 0, err
	}
	a.logger.InfoContext(ctx, "user disabled", "subject", id, "revoked_tokens", revoked)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventUserDisabled, UserID: id, Detail: fmt.Sprintf("revoked_tokens=%d", revoked)})
	return revoked, nil
}

// EnableUser enables user id again. It returns storage.ErrNotFound for an
// unknown id.
func (a *Accounts) EnableUser(ctx context.Context, id string) error {
	enabled := false
	if err := a.store.UpdateUser(ctx, id, storage.UserUpdate{Disabled: &enabled}); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "user enabled", "subject", id)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventUserEnabled, UserID: id})
	return nil
}

// DeleteUser deletes user id together with its clients and every token of
// both. It returns storage.ErrNotFound for an unknown id.
func (a *Accounts) DeleteUser(ctx context.Context, id string) error {
	if err := a.store.DeleteUser(ctx, id); err != nil {
		return err
	}
	a.logger.InfoContext(ctx, "user deleted", "subject", id)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventUserDeleted, UserID: id})
	return nil
}

// RevokeUserTokens revokes every token that acts for user id, including
// the client-credentials tokens of its clients, and returns how many it
// revoked. It returns storage.ErrNotFound for an unknown id.
func (a *Accounts) RevokeUserTokens(ctx context.Context, id string) (int64, error) {
	revoked, err := a.store.RevokeTokensOfUser(ctx, id)
	if err != nil {
		return 0, err
	}
	a.logger.InfoContext(ctx, "user tokens revoked", "subject", id, "revoked_tokens", revoked)
	return revoked, nil
}

// UserImport is one user of [Accounts.ImportUser], with a password hash
// made by another system.
type UserImport struct {
	Username string
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$) or an argon2id
	// PHC string; see [ValidatePasswordHash].
	PasswordHash string
	Scopes       []string
}

// LogValue keeps the password hash out of logs.
func (u UserImport) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", u.Username))
}

// ImportUser creates a user with a new "user_" id and an existing password
// hash. The hash is verified at login like any other, and a bcrypt hash or
// a weaker argon2id hash is replaced by a current argon2id hash at the
// first successful login. It returns errors wrapping ErrInvalidInput for a
// bad username, hash or scope, and storage.ErrConflict when the
// normalised username is taken.
func (a *Accounts) ImportUser(ctx context.Context, in UserImport) (storage.User, error) {
	if _, err := storage.NormalizeUsername(in.Username); err != nil {
		return storage.User{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if err := ValidatePasswordHash(in.PasswordHash); err != nil {
		return storage.User{}, err
	}
	if err := ValidateScopes(in.Scopes); err != nil {
		return storage.User{}, err
	}

	u := storage.User{ID: newUserID(), Username: in.Username, PasswordHash: in.PasswordHash, Scopes: dedupe(in.Scopes)}
	if err := a.store.CreateUser(ctx, u); err != nil {
		return storage.User{}, err
	}
	a.logger.InfoContext(ctx, "user imported", "subject", u.ID)
	a.auditor.Record(ctx, storage.AuditEvent{Type: EventUserCreated, UserID: u.ID, Detail: "username=" + u.Username + " imported"})
	return u, nil
}

// MaxImportedBcryptCost is the highest bcrypt cost [ValidatePasswordHash]
// accepts. Each step doubles the work of one login, and 14 is 16 times
// the cost of 10, the default of most bcrypt libraries.
const MaxImportedBcryptCost = 14

// minArgon2SaltLength is the shortest salt accepted, in bytes; the PHC
// string format requires at least 8.
const minArgon2SaltLength = 8

// ValidatePasswordHash checks that hash is a well-formed bcrypt hash
// ($2a$, $2b$ or $2y$, cost 4 to [MaxImportedBcryptCost]) or argon2id PHC
// string (version 19, parameters the login path accepts), so that an
// imported user can log in. Errors wrap ErrInvalidInput and never contain
// the hash.
func ValidatePasswordHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		return validateBcryptHash(hash)
	case strings.HasPrefix(hash, "$argon2id$"):
		_, salt, _, err := parseArgon2(hash)
		if err != nil {
			return fmt.Errorf("%w: password_hash: %w", ErrInvalidInput, err)
		}
		if len(salt) < minArgon2SaltLength {
			return fmt.Errorf("%w: password_hash: argon2id salt shorter than %d bytes", ErrInvalidInput, minArgon2SaltLength)
		}
		return nil
	default:
		return fmt.Errorf("%w: password_hash must be a bcrypt hash ($2a$, $2b$ or $2y$) or an argon2id PHC string ($argon2id$)", ErrInvalidInput)
	}
}

// bcryptHashLength is the length of a bcrypt hash: "$2b$", two cost
// digits, "$", then 22 characters of salt and 31 of hash.
const bcryptHashLength = 60

func validateBcryptHash(hash string) error {
	if len(hash) != bcryptHashLength || hash[6] != '$' {
		return fmt.Errorf("%w: password_hash: a bcrypt hash has %d characters in the form $2b$10$ and 53 more", ErrInvalidInput, bcryptHashLength)
	}
	for i := 7; i < len(hash); i++ {
		if !isBcryptBase64(hash[i]) {
			return fmt.Errorf("%w: password_hash: bcrypt salt and hash use only ./A-Za-z0-9", ErrInvalidInput)
		}
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return fmt.Errorf("%w: password_hash: %w", ErrInvalidInput, err)
	}
	if cost > MaxImportedBcryptCost {
		return fmt.Errorf("%w: password_hash: bcrypt cost %d is above the maximum of %d", ErrInvalidInput, cost, MaxImportedBcryptCost)
	}
	return nil
}

func isBcryptBase64(c byte) bool {
	return c == '.' || c == '/' || ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
}

// inTx runs fn in one database transaction, passing the context that
// carries it.
func (a *Accounts) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	txCtx, err := a.store.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err := fn(txCtx); err != nil {
		if rerr := a.store.Rollback(txCtx); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return a.store.Commit(txCtx)
}

package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/text/secure/precis"
)

// MaxUsernameLength is the maximum length of a normalised username, in
// bytes.
const MaxUsernameLength = 128

// ErrInvalidUsername is returned by [NormalizeUsername] for a username that
// is empty, too long, or has characters RFC 8265 disallows.
var ErrInvalidUsername = errors.New("invalid username")

// NormalizeUsername returns the form under which a username is stored and
// compared: the RFC 8265 UsernameCaseMapped profile (width mapping, case
// folding, NFC), so "Alice", "ALICE" and the full-width "Ａｌｉｃｅ" are one
// account. Callers that track per-username state (lockout counters) must key
// it by this form too.
func NormalizeUsername(username string) (string, error) {
	key, err := precis.UsernameCaseMapped.String(username)
	if err != nil || key == "" {
		return "", fmt.Errorf("%w: it must be non-empty and use letters, digits and symbols without spaces", ErrInvalidUsername)
	}
	if len(key) > MaxUsernameLength {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidUsername, MaxUsernameLength)
	}
	return key, nil
}

// User is an account that logs in with a password.
type User struct {
	ID       string
	Username string
	// PasswordHash is a PHC string such as "$argon2id$v=19$...".
	PasswordHash string
	Scopes       []string
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// LogValue redacts the password hash.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", u.ID), slog.String("username", u.Username))
}

func (m userModel) user() User {
	return User{
		ID:           m.ID,
		Username:     m.Username,
		PasswordHash: m.PasswordHash,
		Scopes:       splitScopes(m.Scopes),
		Disabled:     m.Disabled,
		CreatedAt:    m.CreatedAt,
		UpdatedAt:    m.UpdatedAt,
	}
}

// CreateUser inserts u. It returns ErrInvalidUsername for a username that
// does not normalise, and ErrConflict when the id or the normalised
// username exists.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	key, err := NormalizeUsername(u.Username)
	if err != nil {
		return err
	}

	now := s.now().UTC()
	m := userModel{
		ID:           u.ID,
		Username:     u.Username,
		UsernameKey:  key,
		PasswordHash: u.PasswordHash,
		Scopes:       joinScopes(u.Scopes),
		Disabled:     u.Disabled,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := s.writer(ctx).Create(&m).Error; err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, translate(err))
	}
	return nil
}

// UserByUsername returns the user whose normalised username matches, or
// ErrNotFound (also for a username that does not normalise).
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	key, err := NormalizeUsername(username)
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	var m userModel
	if err := s.db(ctx).Where("username_key = ?", key).Take(&m).Error; err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, translate(err))
	}
	return m.user(), nil
}

// UserByID returns the user with that id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	var m userModel
	if err := s.db(ctx).Where("id = ?", id).Take(&m).Error; err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, translate(err))
	}
	return m.user(), nil
}

// UpdatePasswordHash replaces the stored hash of user id, but only while it
// still equals old, so a concurrent password change is never overwritten by
// a rehash. It returns ErrNotFound when no row matched.
func (s *Store) UpdatePasswordHash(ctx context.Context, id, old, hash string) error {
	res := s.writer(ctx).Model(&userModel{}).
		Where("id = ? AND password_hash = ?", id, old).
		Updates(map[string]any{"password_hash": hash, "updated_at": s.now().UTC()})
	if res.Error != nil {
		return fmt.Errorf("update password of user %s: %w", id, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("update password of user %s: %w", id, ErrNotFound)
	}
	return nil
}

func splitScopes(s string) []string {
	return strings.Fields(s)
}

func joinScopes(scopes []string) string {
	return strings.Join(scopes, " ")
}

package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	fositestorage "github.com/ory/fosite/storage"
	"gorm.io/gorm"
)

var (
	_ oauth2.CoreStorage                   = (*Store)(nil)
	_ oauth2.TokenRevocationStorage        = (*Store)(nil)
	_ oauth2.ClientCredentialsGrantStorage = (*Store)(nil)
	_ fositestorage.Transactional          = (*Store)(nil)
)

// UserBound is implemented by sessions that act for a user. The store
// records that user with each token, so deleting the user deletes its
// tokens and disabling the user deactivates them. The session type of
// package oauth implements it.
type UserBound interface {
	UserID() string
}

// farFuture stands for "never expires" in the expires_at column.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// formParametersNeverStored are removed from a request form before it is
// persisted, whatever the caller sanitised, because they carry
// credentials.
var formParametersNeverStored = []string{"password", "client_secret", "refresh_token", "client_assertion", "code"}

func hashSignature(signature string) string {
	sum := sha256.Sum256([]byte(signature))
	return hex.EncodeToString(sum[:])
}

func (s *Store) createTokenSession(ctx context.Context, kind tokenKind, signature, accessSignature string, req fosite.Requester) error {
	session := req.GetSession()
	if session == nil {
		return fmt.Errorf("store %s token of request %s: no session", kind, req.GetID())
	}
	sessionJSON, err := json.Marshal(session)
	if err != nil {
		return fmt.Errorf("store %s token of request %s: encode session: %w", kind, req.GetID(), err)
	}

	form := url.Values{}
	for k, v := range req.GetRequestForm() {
		form[k] = v
	}
	for _, k := range formParametersNeverStored {
		form.Del(k)
	}

	tokenType := fosite.AccessToken
	if kind == kindRefresh {
		tokenType = fosite.RefreshToken
	}
	expiresAt := session.GetExpiresAt(tokenType)
	if expiresAt.IsZero() {
		expiresAt = farFuture
	}

	var userID sql.NullString
	if ub, ok := session.(UserBound); ok && ub.UserID() != "" {
		userID = sql.NullString{String: ub.UserID(), Valid: true}
	}

	m := tokenSessionModel{
		Signature:         hashSignature(signature),
		Kind:              kind,
		RequestID:         req.GetID(),
		ClientID:          req.GetClient().GetID(),
		UserID:            userID,
		Subject:           session.GetSubject(),
		RequestedScopes:   joinScopes(req.GetRequestedScopes()),
		GrantedScopes:     joinScopes(req.GetGrantedScopes()),
		RequestedAudience: joinScopes(req.GetRequestedAudience()),
		GrantedAudience:   joinScopes(req.GetGrantedAudience()),
		Form:              form.Encode(),
		Session:           string(sessionJSON),
		Active:            true,
		RequestedAt:       req.GetRequestedAt().UTC(),
		ExpiresAt:         expiresAt.UTC(),
		CreatedAt:         s.now().UTC(),
	}
	if accessSignature != "" {
		m.AccessSignature = hashSignature(accessSignature)
	}
	if _, inTx := ctx.Value(txKey{}).(*gorm.DB); !inTx && s.batcher != nil {
		err = s.batcher.insert(ctx, m.insertArgs())
	} else {
		_, err = s.sqlWriter(ctx).ExecContext(ctx, s.statements.insertTokenSession, m.insertArgs()...)
	}
	if err != nil {
		return fmt.Errorf("store %s token of request %s: %w", kind, req.GetID(), s.translateDriver(err))
	}
	return nil
}

type tokenSessionRow struct {
	Model tokenSessionModel
	// UserDisabled is NULL for a token that acts for no user.
	UserDisabled sql.NullBool
}

// tokenSession loads a token and rebuilds its request. The request is
// returned together with fosite.ErrInactiveToken for a revoked or rotated
// token, as fosite's refresh handler needs it to revoke the token family.
// A token whose client or user is gone or disabled is not found.
func (s *Store) tokenSession(ctx context.Context, kind tokenKind, signature string, session fosite.Session) (fosite.Requester, error) {
	var row tokenSessionRow
	err := queryOne(ctx, s.sqlReader(ctx), s.statements.selectTokenSession,
		[]any{hashSignature(signature), string(kind)}, row.scanTargets()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s token: %w", kind, fosite.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s token: %w", kind, err)
	}
	m := row.Model
	if row.UserDisabled.Bool {
		return nil, fmt.Errorf("%s token of request %s: user disabled: %w", kind, m.RequestID, fosite.ErrNotFound)
	}

	client, err := s.GetClient(ctx, m.ClientID)
	if err != nil {
		return nil, fmt.Errorf("%s token of request %s: %w", kind, m.RequestID, err)
	}

	if session == nil {
		session = s.newSession()
	}
	if err := json.Unmarshal([]byte(m.Session), session); err != nil {
		return nil, fmt.Errorf("%s token of request %s: decode session: %w", kind, m.RequestID, err)
	}
	form, err := url.ParseQuery(m.Form)
	if err != nil {
		return nil, fmt.Errorf("%s token of request %s: decode form: %w", kind, m.RequestID, err)
	}

	req := &fosite.Request{
		ID:                m.RequestID,
		RequestedAt:       m.RequestedAt,
		Client:            client,
		RequestedScope:    splitScopes(m.RequestedScopes),
		GrantedScope:      splitScopes(m.GrantedScopes),
		Form:              form,
		Session:           session,
		RequestedAudience: splitScopes(m.RequestedAudience),
		GrantedAudience:   splitScopes(m.GrantedAudience),
	}
	if !m.Active {
		return req, fmt.Errorf("%s token of request %s: %w", kind, m.RequestID, fosite.ErrInactiveToken)
	}
	return req, nil
}

func (s *Store) deleteTokenSession(ctx context.Context, kind tokenKind, signature string) error {
	err := s.writer(ctx).
		Where("signature = ? AND kind = ?", hashSignature(signature), kind).
		Delete(&tokenSessionModel{}).Error
	if err != nil {
		return fmt.Errorf("delete %s token: %w", kind, err)
	}
	return nil
}

func (s *Store) deactivateFamily(ctx context.Context, kind tokenKind, requestID string) error {
	err := s.writer(ctx).Model(&tokenSessionModel{}).
		Where("request_id = ? AND kind = ? AND active = ?", requestID, kind, true).
		Update("active", false).Error
	if err != nil {
		return fmt.Errorf("revoke %s tokens of request %s: %w", kind, requestID, err)
	}
	return nil
}

// CreateAccessTokenSession records an issued access token under its
// signature.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createTokenSession(ctx, kindAccess, signature, "", req)
}

// GetAccessTokenSession returns the request of an access token: an error
// satisfying errors.Is(err, fosite.ErrNotFound) when unknown, and the
// request with fosite.ErrInactiveToken when revoked.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	return s.tokenSession(ctx, kindAccess, signature, session)
}

// DeleteAccessTokenSession deletes an access token's record; deleting an
// unknown one is not an error.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteTokenSession(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession records an issued refresh token with the
// signature of the access token issued beside it.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	return s.createTokenSession(ctx, kindRefresh, signature, accessSignature, req)
}

// GetRefreshTokenSession returns the request of a refresh token: an error
// satisfying errors.Is(err, fosite.ErrNotFound) when unknown, and the
// request with fosite.ErrInactiveToken when it was rotated or revoked.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	return s.tokenSession(ctx, kindRefresh, signature, session)
}

// DeleteRefreshTokenSession deletes a refresh token's record; deleting an
// unknown one is not an error.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteTokenSession(ctx, kindRefresh, signature)
}

// RotateRefreshToken deactivates the refresh token being exchanged and the
// access tokens of its family. The update matches only a token that is
// still active, so when two exchanges of one refresh token race, even on
// two processes, exactly one succeeds. The other gets
// fosite.ErrSerializationFailure.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	return s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&tokenSessionModel{}).
			Where("signature = ? AND kind = ? AND active = ?", hashSignature(signature), kindRefresh, true).
			Update("active", false)
		if res.Error != nil {
			return fmt.Errorf("rotate refresh token of request %s: %w", requestID, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("rotate refresh token of request %s: already rotated: %w", requestID, fosite.ErrSerializationFailure)
		}
		return s.deactivateFamily(context.WithValue(ctx, txKey{}, tx), kindAccess, requestID)
	})
}

// RevokeRefreshToken deactivates every refresh token of the request
// family (RFC 7009 §2.1). An unknown family is not an error.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.deactivateFamily(ctx, kindRefresh, requestID)
}

// RevokeAccessToken deactivates every access token of the request family.
// An unknown family is not an error.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.deactivateFamily(ctx, kindAccess, requestID)
}

// DeleteExpiredTokens deletes token records that expired before cutoff and
// returns how many it deleted.
func (s *Store) DeleteExpiredTokens(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.writer(ctx).Where("expires_at < ?", cutoff.UTC()).Delete(&tokenSessionModel{})
	if res.Error != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// CreateAuthorizeCodeSession is not supported: the server offers no
// authorization-code grant. It exists because fosite's introspection
// handler takes the whole core storage.
func (s *Store) CreateAuthorizeCodeSession(context.Context, string, fosite.Requester) error {
	return fmt.Errorf("authorization codes: %w", errors.ErrUnsupported)
}

// GetAuthorizeCodeSession finds no code, for the reason given on
// [Store.CreateAuthorizeCodeSession].
func (s *Store) GetAuthorizeCodeSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fmt.Errorf("authorization code: %w", fosite.ErrNotFound)
}

// InvalidateAuthorizeCodeSession finds no code, for the reason given on
// [Store.CreateAuthorizeCodeSession].
func (s *Store) InvalidateAuthorizeCodeSession(context.Context, string) error {
	return fmt.Errorf("authorization code: %w", fosite.ErrNotFound)
}

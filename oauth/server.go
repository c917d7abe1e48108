package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
	"github.com/ory/fosite/token/jwt"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/storage"
)

// Config for New. Zero values mean the defaults.
type Config struct {
	// Issuer is the iss of every token and the base of the endpoint URLs
	// in discovery; required, an absolute http or https URL.
	Issuer string
	// Audience is the aud of every access token; default "quanux-api".
	Audience string
	// AccessTokenTTL is the access-token lifetime; default 1h.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the refresh-token lifetime; default 720h.
	RefreshTokenTTL time.Duration
	// Secret is the master secret (at least 32 bytes); it keys the
	// client-secret HMAC and the refresh-token HMAC.
	Secret []byte
	// Argon2 sets the cost of new password hashes; zero means
	// DefaultArgon2Params.
	Argon2 Argon2Params
	// Guard sets the brute-force limits of the token endpoint and the
	// legacy login.
	Guard GuardConfig
	// Metrics receives grant counts; nil records none.
	Metrics *Metrics
	// StatelessClientTokens issues client-credentials access tokens
	// without a database record. Revocation then works through a list of
	// revoked token ids that every process loads from the database, and
	// through the token epochs of clients and users.
	StatelessClientTokens bool
	// Auditor receives the audit events of logins, token issuance,
	// revocation and account changes; nil records none.
	Auditor *Auditor
	// Logger; default discards.
	Logger *slog.Logger
}

// Server is the OAuth 2.0 authorization server: the fosite provider, the
// grant rules and the standard endpoints. It is safe for concurrent use.
type Server struct {
	provider *fosite.Fosite
	tokens   *accessTokenStrategy
	store    *storage.Store
	keys     *keys.Manager
	accounts *Accounts
	guard    *Guard
	auditor  *Auditor
	metrics  *Metrics
	issuer   string
	audience string
	logger   *slog.Logger
	// stateless issues client-credentials tokens without a record.
	stateless bool

	discovery []byte
}

// New composes the fosite provider over store and the signing keys.
func New(cfg Config, store *storage.Store, keyManager *keys.Manager) (*Server, error) {
	if err := applyDefaults(&cfg); err != nil {
		return nil, err
	}

	secrets, err := NewSecretHasher(cfg.Secret)
	if err != nil {
		return nil, err
	}
	passwords, err := NewPasswordHasher(cfg.Argon2)
	if err != nil {
		return nil, err
	}
	refreshKey, err := deriveKey(cfg.Secret, "authserver refresh-token hmac v1")
	if err != nil {
		return nil, err
	}
	guardCfg := cfg.Guard
	if guardCfg.Store == nil {
		guardCfg.Store = store
	}
	if guardCfg.Logger == nil {
		guardCfg.Logger = cfg.Logger
	}
	guard, err := NewGuard(guardCfg)
	if err != nil {
		return nil, err
	}

	s := &Server{
		store:    store,
		keys:     keyManager,
		accounts: NewAccounts(store, passwords, secrets, cfg.Logger),
		guard:    guard,
		auditor:  cfg.Auditor,
		metrics:  cfg.Metrics,
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		logger:   cfg.Logger,

		stateless: cfg.StatelessClientTokens,
	}

	s.accounts.SetAuditor(cfg.Auditor)

	fcfg := &fosite.Config{
		AccessTokenLifespan:  cfg.AccessTokenTTL,
		RefreshTokenLifespan: cfg.RefreshTokenTTL,
		AccessTokenIssuer:    cfg.Issuer,
		IDTokenIssuer:        cfg.Issuer,
		TokenURL:             cfg.Issuer + "/oauth2/token",
		JWTScopeClaimKey:     jwt.JWTScopeFieldString,
		ScopeStrategy:        fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: func(_ []string, requested []string) error {
			return s.checkAudience(requested)
		},
		GlobalSecret:        refreshKey,
		ClientSecretsHasher: secrets,
		// A refresh token is issued whenever the client may use the
		// refresh_token grant; no extra scope such as offline_access is
		// asked for.
		RefreshTokenScopes:         []string{},
		SendDebugMessagesToClients: false,
	}

	hmacStrategy := oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fcfg}, fcfg)
	tokens := &accessTokenStrategy{
		DefaultJWTStrategy: &oauth2.DefaultJWTStrategy{
			Signer:          keyManager.Signer(),
			HMACSHAStrategy: hmacStrategy,
			Config:          fcfg,
		},
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		now:      time.Now,
	}
	s.tokens = tokens
	clients := &clientStore{Store: store}
	owners := &passwordStore{Store: store, accounts: s.accounts}
	helper := &oauth2.HandleHelper{AccessTokenStrategy: tokens, AccessTokenStorage: tokenRecorder{store}, Config: fcfg}

	fcfg.TokenEndpointHandlers = fosite.TokenEndpointHandlers{
		&oauth2.ClientCredentialsGrantHandler{HandleHelper: helper, Config: fcfg},
		// The password grant is deprecated in fosite and left out of OAuth
		// 2.1, but the legacy login API is defined on top of it.
		&passwordGrantHandler{ResourceOwnerPasswordCredentialsGrantHandler: &oauth2.ResourceOwnerPasswordCredentialsGrantHandler{ //nolint:staticcheck // see above
			HandleHelper: helper,
			ResourceOwnerPasswordCredentialsGrantStorage: owners,
			RefreshTokenStrategy:                         tokens,
			Config:                                       fcfg,
		}},
		&oauth2.RefreshTokenGrantHandler{
			AccessTokenStrategy:    tokens,
			RefreshTokenStrategy:   tokens,
			TokenRevocationStorage: store,
			Config:                 fcfg,
		},
	}
	// fosite runs every introspection handler and fails if any fails, so
	// one handler chooses between the stateless check and the record.
	fcfg.TokenIntrospectionHandlers = fosite.TokenIntrospectionHandlers{
		&introspector{core: &oauth2.CoreValidator{CoreStrategy: tokens, CoreStorage: store, Config: fcfg}, server: s},
	}
	fcfg.RevocationHandlers = fosite.RevocationHandlers{
		&statelessRevoker{server: s},
		&oauth2.TokenRevocationHandler{
			TokenRevocationStorage: store,
			RefreshTokenStrategy:   tokens,
			AccessTokenStrategy:    tokens,
		},
	}

	s.provider = &fosite.Fosite{Store: clients, Config: fcfg}
	s.discovery, err = buildDiscovery(cfg.Issuer, keyManager.Algorithm())
	if err != nil {
		return nil, err
	}
	return s, nil
}

func applyDefaults(cfg *Config) error {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q must be an absolute http or https URL without query or fragment", cfg.Issuer)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.Audience == "" {
		cfg.Audience = "quanux-api"
	}
	if cfg.AccessTokenTTL == 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.RefreshTokenTTL == 0 {
		cfg.RefreshTokenTTL = 720 * time.Hour
	}
	if cfg.AccessTokenTTL < 0 || cfg.RefreshTokenTTL < 0 {
		return errors.New("token lifetimes must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Accounts returns the account rules the server uses.
func (s *Server) Accounts() *Accounts { return s.accounts }

// Register adds the standard endpoints to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /oauth2/token", s.withForm(s.handleToken))
	mux.HandleFunc("POST /oauth2/introspect", s.withForm(s.handleIntrospect))
	mux.HandleFunc("POST /oauth2/revoke", s.withForm(s.handleRevoke))
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.handleDiscovery)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	mux.HandleFunc("GET /userinfo", s.handleUserinfo)
}

func (s *Server) checkAudience(requested []string) error {
	for _, a := range requested {
		if a != s.audience {
			return fosite.ErrInvalidRequest.WithHintf("Requested audience %q is not served; tokens are issued for %q.", a, s.audience)
		}
	}
	return nil
}

// firstPartyKey marks a context as coming from the legacy adapter, the only
// caller allowed to use the built-in legacy login client.
type firstPartyKey struct{}

// clientStore is the fosite client manager. It hides the built-in legacy
// client from every caller but the legacy adapter, because that client is
// public and must not open the password grant without client
// authentication on the standard face.
type clientStore struct {
	*storage.Store
}

func (c *clientStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	if id == storage.LegacyClientID && ctx.Value(firstPartyKey{}) == nil {
		return nil, fmt.Errorf("client %s is internal: %w", id, fosite.ErrNotFound)
	}
	return c.Store.GetClient(ctx, id)
}

// passwordStore authenticates resource owners for fosite's password grant.
type passwordStore struct {
	*storage.Store
	accounts *Accounts
}

var _ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = (*passwordStore)(nil)

// Authenticate returns the user id for good credentials, and an error
// satisfying errors.Is(err, fosite.ErrNotFound) for bad ones, as fosite
// requires.
func (p *passwordStore) Authenticate(ctx context.Context, username, password string) (string, error) {
	u, ok, err := p.accounts.Authenticate(ctx, username, password)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fosite.ErrNotFound
	}
	return u.ID, nil
}

// passwordGrantHandler is fosite's password grant with one change: it
// issues a refresh token only to clients allowed the refresh_token grant,
// where fosite's handler issues one to every client.
type passwordGrantHandler struct {
	*oauth2.ResourceOwnerPasswordCredentialsGrantHandler
}

func (h *passwordGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, req fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, req) {
		return fosite.ErrUnknownRequest
	}
	if req.GetClient().GetGrantTypes().Has("refresh_token") {
		return h.ResourceOwnerPasswordCredentialsGrantHandler.PopulateTokenEndpointResponse(ctx, req, resp)
	}
	lifespan := fosite.GetEffectiveLifespan(req.GetClient(), fosite.GrantTypePassword, fosite.AccessToken, h.Config.GetAccessTokenLifespan(ctx))
	_, err := h.IssueAccessToken(ctx, lifespan, req, resp)
	return err
}

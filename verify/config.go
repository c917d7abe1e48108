package verify

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Defaults of the [Config] fields.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultRefreshInterval    = 5 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultFetchTimeout       = 10 * time.Second
)

// isSupportedAlgorithm reports whether alg is one of the asymmetric JWS
// algorithms (RFC 7518 §3.1, RFC 8037 §3.1) a verifier may accept. HMAC
// algorithms and "none" are absent on purpose, because a resource server
// has no shared secret, and accepting HS256 would let anyone sign with the
// public key.
func isSupportedAlgorithm(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	default:
		return false
	}
}

// Config configures [New]. The zero value of each optional field means its
// default.
type Config struct {
	// Issuer is the authorization server's issuer URL, compared exactly
	// with the iss claim and with the issuer of the discovery document.
	// Required.
	Issuer string
	// JWKSURL is the URL of the JWKS. Default: the jwks_uri of the
	// issuer's discovery document, read once by New.
	JWKSURL string
	// Audience is the value the aud claim must contain. Required.
	Audience string
	// Algorithms lists the accepted JWS algorithms. Default: RS256, ES256
	// and EdDSA, the three the authorization server signs with. Only
	// asymmetric algorithms are allowed.
	Algorithms []string
	// Leeway is the clock skew tolerated in exp, nbf and iat checks.
	// Default 30s, which covers hosts whose clocks drift apart between
	// NTP corrections while adding little to a token lifetime of an hour.
	// Zero means the default, so set 1ns for practically no leeway.
	Leeway time.Duration
	// RefreshInterval is how often the JWKS is fetched in the background,
	// so that new keys are known before tokens signed by them arrive and
	// withdrawn keys stop verifying. Default 5m.
	RefreshInterval time.Duration
	// MinRefreshInterval is the shortest time between two JWKS fetches
	// caused by tokens with an unknown kid. Within it, such tokens are
	// rejected without a fetch, so forged kids cannot flood the
	// authorization server. Default 10s.
	MinRefreshInterval time.Duration
	// FetchTimeout bounds each discovery or JWKS request. Default 10s.
	FetchTimeout time.Duration
	// HTTPClient makes the discovery and JWKS requests. Default: a client
	// with the standard transport and no timeout of its own, because each
	// request is bounded by FetchTimeout.
	HTTPClient *http.Client
	// Realm is the realm of the WWW-Authenticate challenges that
	// [Verifier.Require] sends. Default: Audience.
	Realm string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives key refreshes, fetch failures and rejected tokens.
	// Default: a logger that discards every record.
	Logger *slog.Logger
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	algorithms []jose.SignatureAlgorithm
}

func newSettings(cfg Config) (settings, error) {
	if cfg.Issuer == "" {
		return settings{}, errors.New("verify: config: Issuer is required")
	}
	if err := checkHTTPURL(cfg.Issuer); err != nil {
		return settings{}, fmt.Errorf("verify: config: Issuer: %w", err)
	}
	if cfg.JWKSURL != "" {
		if err := checkHTTPURL(cfg.JWKSURL); err != nil {
			return settings{}, fmt.Errorf("verify: config: JWKSURL: %w", err)
		}
	}
	if cfg.Audience == "" {
		return settings{}, errors.New("verify: config: Audience is required")
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"Leeway", cfg.Leeway},
		{"RefreshInterval", cfg.RefreshInterval},
		{"MinRefreshInterval", cfg.MinRefreshInterval},
		{"FetchTimeout", cfg.FetchTimeout},
	} {
		if d.value < 0 {
			return settings{}, fmt.Errorf("verify: config: %s is %s, must not be negative", d.name, d.value)
		}
	}

	s := settings{Config: cfg}
	algorithms := cfg.Algorithms
	if len(algorithms) == 0 {
		algorithms = []string{"RS256", "ES256", "EdDSA"}
	}
	for _, alg := range algorithms {
		if !isSupportedAlgorithm(alg) {
			return settings{}, fmt.Errorf("verify: config: algorithm %q is not supported; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA", alg)
		}
		s.algorithms = append(s.algorithms, jose.SignatureAlgorithm(alg))
	}
	if s.Realm == "" {
		s.Realm = s.Audience
	}
	if !isQuotable(s.Realm) {
		return settings{}, fmt.Errorf("verify: config: realm %q must be printable ASCII without quotes or backslashes", s.Realm)
	}
	if s.Leeway == 0 {
		s.Leeway = DefaultLeeway
	}
	if s.RefreshInterval == 0 {
		s.RefreshInterval = DefaultRefreshInterval
	}
	if s.MinRefreshInterval == 0 {
		s.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if s.FetchTimeout == 0 {
		s.FetchTimeout = DefaultFetchTimeout
	}
	if s.HTTPClient == nil {
		s.HTTPClient = &http.Client{}
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// checkHTTPURL checks that raw is an absolute http or https URL without
// query or fragment.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute http or https URL without query or fragment", raw)
	}
	return nil
}

// isQuotable reports whether s can stand in an RFC 9110 quoted-string
// without escapes, as RFC 6750 §3 requires of its attribute values.
func isQuotable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// wellKnownURLs returns the discovery URLs to try for issuer, in order:
// the OpenID Connect form (Discovery 1.0 §4), which appends to the issuer,
// and the RFC 8414 §3.1 form, which inserts the well-known path between
// host and issuer path.
func wellKnownURLs(issuer string) []string {
	trimmed := strings.TrimSuffix(issuer, "/")
	u, err := url.Parse(trimmed)
	if err != nil {
		return []string{trimmed + "/.well-known/openid-configuration"}
	}
	path := u.EscapedPath()
	u.Path, u.RawPath = "", ""
	return []string{
		trimmed + "/.well-known/openid-configuration",
		u.String() + "/.well-known/oauth-authorization-server" + path,
	}
}

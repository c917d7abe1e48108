package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// metadata contains the members of the authorization server metadata
// (RFC 8414 §2, OpenID Connect Discovery 1.0 §3) that a verifier reads.
type metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// discover reads the issuer's metadata, from the OpenID Connect location
// and then the RFC 8414 one, and returns its jwks_uri. A document whose
// issuer differs from the configured one is an error, not a reason to try
// the next location (RFC 8414 §3.3, OpenID Connect Discovery 1.0 §4.3).
func (v *Verifier) discover(ctx context.Context) (string, error) {
	var errs []error
	for _, url := range wellKnownURLs(v.cfg.Issuer) {
		var m metadata
		if err := v.fetchJSON(ctx, url, &m); err != nil {
			errs = append(errs, err)
			continue
		}
		if m.Issuer != v.cfg.Issuer {
			return "", fmt.Errorf("%s names issuer %q, not %q", url, m.Issuer, v.cfg.Issuer)
		}
		if err := checkHTTPURL(m.JWKSURI); err != nil {
			return "", fmt.Errorf("%s: jwks_uri: %w", url, err)
		}
		// An https issuer must not hand out keys over plain http, where
		// anyone on the path could replace them.
		if strings.HasPrefix(v.cfg.Issuer, "https://") && !strings.HasPrefix(m.JWKSURI, "https://") {
			return "", fmt.Errorf("%s: jwks_uri %q is not https like the issuer", url, m.JWKSURI)
		}
		return m.JWKSURI, nil
	}
	return "", errors.Join(errs...)
}

package oauth

import (
	"encoding/json"
	"net/http"
)

// metadata is the authorization server metadata (RFC 8414 §2), also served
// as the OpenID Provider configuration. It lists only what the server
// does, so members for what it lacks, such as an authorization endpoint
// or ID tokens, are left out. userinfo_endpoint names GET /userinfo. TestDiscoveryValuesAreBacked in
// cmd/authserver checks every member against a running server.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ClaimsSupported                   []string `json:"claims_supported"`
	// SubjectTypesSupported is required by OpenID Connect Discovery 1.0
	// §3. "public" is right because sub is the same user or client id
	// whichever client the token is issued to.
	SubjectTypesSupported []string `json:"subject_types_supported"`
	// AccessTokenSigningAlgValuesSupported is not registered in RFC 8414,
	// but some servers publish it so that resource servers know which alg
	// to expect in access tokens. It contains the algorithm new tokens are
	// signed with. Tokens signed before a change of --signing-alg keep
	// the previous algorithm until they expire, so verifiers should take
	// each key's alg from the JWKS.
	AccessTokenSigningAlgValuesSupported []string `json:"access_token_signing_alg_values_supported,omitempty"`
}

// clientAuthMethods are the client authentication methods of the token
// and revocation endpoints (RFC 6749 §2.3.1).
var clientAuthMethods = []string{"client_secret_basic", "client_secret_post"}

// introspectionAuthMethods are those of the introspection endpoint, where
// fosite reads client credentials only from the Authorization header.
var introspectionAuthMethods = []string{"client_secret_basic"}

// buildDiscovery returns the metadata document for issuer. signingAlgs are
// the JWS algorithms new access tokens are signed with. Without them the
// access_token_signing_alg_values_supported member is left out.
func buildDiscovery(issuer string, signingAlgs ...string) ([]byte, error) {
	m := metadata{
		Issuer:                issuer,
		TokenEndpoint:         issuer + "/oauth2/token",
		IntrospectionEndpoint: issuer + "/oauth2/introspect",
		RevocationEndpoint:    issuer + "/oauth2/revoke",
		JWKSURI:               issuer + "/.well-known/jwks.json",
		UserinfoEndpoint:      issuer + "/userinfo",
		GrantTypesSupported:   []string{"password", "client_credentials", "refresh_token"},
		// RFC 8414 §2 requires the member. The list is empty because no
		// authorization endpoint is served.
		ResponseTypesSupported:               []string{},
		TokenEndpointAuthMethodsSupported:    clientAuthMethods,
		IntrospectionAuthMethodsSupported:    introspectionAuthMethods,
		RevocationAuthMethodsSupported:       clientAuthMethods,
		ClaimsSupported:                      []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "user_id"},
		SubjectTypesSupported:                []string{"public"},
		AccessTokenSigningAlgValuesSupported: signingAlgs,
	}
	return json.Marshal(m)
}

func (s *Server) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(s.discovery)
}

// handleJWKS serves the public signing keys (RFC 7517 §5). Resource
// servers refetch on an unknown kid, so a short cache lifetime suffices.
func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.keys.JWKS())
}

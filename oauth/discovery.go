package oauth

import (
	"encoding/json"
	"net/http"
)

// metadata is the authorization server metadata (RFC 8414 §2), also served
// as the OpenID Provider configuration.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ClaimsSupported                   []string `json:"claims_supported"`
}

var clientAuthMethods = []string{"client_secret_basic", "client_secret_post"}

func buildDiscovery(issuer string) ([]byte, error) {
	m := metadata{
		Issuer:                            issuer,
		TokenEndpoint:                     issuer + "/oauth2/token",
		IntrospectionEndpoint:             issuer + "/oauth2/introspect",
		RevocationEndpoint:                issuer + "/oauth2/revoke",
		JWKSURI:                           issuer + "/.well-known/jwks.json",
		GrantTypesSupported:               []string{"password", "client_credentials", "refresh_token"},
		ResponseTypesSupported:            []string{},
		TokenEndpointAuthMethodsSupported: clientAuthMethods,
		IntrospectionAuthMethodsSupported: clientAuthMethods,
		RevocationAuthMethodsSupported:    clientAuthMethods,
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "user_id"},
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

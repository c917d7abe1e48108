// Package verify checks the authorization server's RFC 9068 access tokens
// in other services: it caches the JWKS, verifies signatures and claims,
// and provides HTTP middleware that enforces scopes. It must import
// nothing from the server, so that a service can depend on it alone.
package verify

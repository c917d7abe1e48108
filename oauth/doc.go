// Package oauth composes the fosite provider (password, client-credentials
// and refresh grants, introspection, revocation) and serves the standard
// endpoints: token, introspection, revocation, discovery and JWKS. It owns
// the session type, the password and client-secret hashers, and the
// account rules shared by every face. It must not import legacy or cmd.
package oauth

// Package legacy serves the documented QuanuX JSON login API
// (/api/auth/login, /api/auth/register-client) as an adapter: each request
// becomes a standard grant run through package oauth, so both faces issue
// identical tokens under the same rules. It owns the legacy wire types and
// error bodies, and issues no token of its own.
package legacy

// Package storage persists users, clients, token sessions and signing keys
// with gorm on SQLite or PostgreSQL, and implements fosite's storage
// interfaces and the store that package keys declares. gorm types and gorm
// errors never leave this package.
package storage

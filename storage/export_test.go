package storage

import "database/sql"

// SQLDB returns the connection pool under s, for tests that inspect the
// database with SQL the Store does not offer.
func (s *Store) SQLDB() (*sql.DB, error) {
	return s.gdb.DB()
}

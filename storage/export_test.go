package storage

import "database/sql"

// SQLDB returns the connection pool under s that runs reads, for tests
// that inspect the database with SQL the Store does not offer.
func (s *Store) SQLDB() (*sql.DB, error) {
	return s.gdb.DB()
}

// WriterSQLDB returns the connection pool under s that runs writes and
// transactions. On PostgreSQL it is the pool that SQLDB returns.
func (s *Store) WriterSQLDB() (*sql.DB, error) {
	return s.wdb.DB()
}

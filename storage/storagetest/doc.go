// Package storagetest is the conformance suite for [storage.Store]. It uses
// only the Store's exported API, so the same cases run on every database the
// store supports. Only test code should import it, because it depends on
// package testing.
package storagetest

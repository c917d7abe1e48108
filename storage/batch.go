package storage

import (
	"context"
	"errors"
	"sync"
	"time"

	"gorm.io/gorm"
)

// maxInsertBatch is the most token INSERTs one transaction groups.
const maxInsertBatch = 64

// batchTimeout bounds one batch transaction, which runs on a context of
// its own so that a requester that gives up does not abort the others.
const batchTimeout = 10 * time.Second

// errStoreClosed is returned for an INSERT queued when the store closes.
var errStoreClosed = errors.New("storage: store closed")

// insertBatcher groups the token INSERTs that arrive while the SQLite
// writer is busy into one transaction (group commit). Each committed
// transaction writes every changed page to the WAL once, so rows that
// share pages (the table's last leaf and the indexes on client, user and
// expiry) cost one page write per batch instead of one per token. A
// requester waits until its row is committed, so a token is never
// returned before its record is visible.
type insertBatcher struct {
	store *Store
	queue chan *batchedInsert
	stop  chan struct{}
	done  chan struct{}
	// stopOnce makes close safe to call again, as Store.Close is.
	stopOnce sync.Once
}

type batchedInsert struct {
	args []any
	// result receives the INSERT's error, or nil; it has room for one.
	result chan error
}

func newInsertBatcher(s *Store) *insertBatcher {
	b := &insertBatcher{
		store: s,
		queue: make(chan *batchedInsert, maxInsertBatch),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go b.run()
	return b
}

// insert queues one token INSERT and waits until it is committed or has
// failed, or ctx ends. After ctx ends the row may still be written, which
// leaves a record of a token that was never handed out.
func (b *insertBatcher) insert(ctx context.Context, args []any) error {
	r := &batchedInsert{args: args, result: make(chan error, 1)}
	select {
	case b.queue <- r:
	case <-b.stop:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		// The batcher stopped, possibly after sending the result.
		select {
		case err := <-r.result:
			return err
		default:
			return errStoreClosed
		}
	}
}

func (b *insertBatcher) run() {
	defer close(b.done)
	for {
		select {
		case first := <-b.queue:
			b.flush(b.collect(first))
		case <-b.stop:
			// Requesters that queued before the stop receive errStoreClosed.
			for {
				select {
				case r := <-b.queue:
					r.result <- errStoreClosed
				default:
					return
				}
			}
		}
	}
}

// collect returns first with the INSERTs queued behind it, without
// waiting for more: under light load every batch holds one row.
func (b *insertBatcher) collect(first *batchedInsert) []*batchedInsert {
	batch := []*batchedInsert{first}
	for len(batch) < maxInsertBatch {
		select {
		case r := <-b.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// flush writes batch in one transaction. If any row fails, the whole
// transaction is rolled back and each row is written alone, so every
// requester gets the result of its own row.
func (b *insertBatcher) flush(batch []*batchedInsert) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	query := b.store.statements.insertTokenSession
	if len(batch) > 1 {
		err := b.store.wdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, r := range batch {
				if _, err := tx.Statement.ConnPool.ExecContext(ctx, query, r.args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for _, r := range batch {
				r.result <- nil
			}
			return
		}
	}
	for _, r := range batch {
		_, err := b.store.wdb.ConnPool.ExecContext(ctx, query, r.args...)
		r.result <- err
	}
}

// close stops the batcher after the batch in progress; INSERTs still
// queued fail with errStoreClosed.
func (b *insertBatcher) close() {
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.done
}

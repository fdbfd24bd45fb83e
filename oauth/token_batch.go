package oauth

import (
	"context"
	"sync"

	"github.com/govsso/sso/db"
)

// tokenBatch gathers the token rows one HTTP request reads and writes, so
// that they cost one round trip each way instead of one per row. fosite
// asks its storage for rows one at a time: an authorization writes the
// code, its OpenID Connect request and its PKCE challenge; a code exchange
// reads those three (the code twice), deletes two and writes an access and
// a refresh token. On PostgreSQL each of those calls was a round trip and
// the round trips, not the rows, were the cost.
//
// A batch lives in the request's context (withTokenBatch). Reads are served
// from rows fetched ahead (prefetch); creates wait until the transaction
// commits or the request flushes them; deletes wait until the request ends.
// Nothing that must be atomic is deferred: a code's redemption and a refresh
// token's rotation still update their row at once, and the update itself
// refuses a second redemption.
type tokenBatch struct {
	mu      sync.Mutex
	known   map[TokenRef]*Token // fetched ahead; nil means known to be absent
	creates []*Token
	deletes []TokenRef
}

type tokenBatchKey struct{}

// withTokenBatch returns a context whose token reads and writes gather in
// a new batch.
func withTokenBatch(ctx context.Context) (context.Context, *tokenBatch) {
	b := &tokenBatch{known: map[TokenRef]*Token{}}
	return context.WithValue(ctx, tokenBatchKey{}, b), b
}

// batchOf returns the context's batch, or nil.
func batchOf(ctx context.Context) *tokenBatch {
	b, _ := ctx.Value(tokenBatchKey{}).(*tokenBatch)
	return b
}

// prefetch reads refs with one query; later reads of them in this request
// need no round trip, and a ref not found is known to be absent.
func (b *tokenBatch) prefetch(ctx context.Context, store TokenStore, refs []TokenRef) error {
	found, err := store.GetTokens(ctx, refs)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range refs {
		b.known[r] = nil
	}
	for _, t := range found {
		b.known[TokenRef{t.Kind, t.Signature}] = t
	}
	return nil
}

// lookup returns a row the batch knows of: created in this request or
// fetched ahead. ok is false when only the database can tell.
func (b *tokenBatch) lookup(ref TokenRef) (t *Token, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.creates {
		if c.Kind == ref.Kind && c.Signature == ref.Signature {
			cp := *c
			return &cp, true, nil
		}
	}
	t, ok = b.known[ref]
	if !ok {
		return nil, false, nil
	}
	if t == nil {
		return nil, true, db.ErrNotFound
	}
	cp := *t
	return &cp, true, nil
}

// create queues t for the next flush.
func (b *tokenBatch) create(t *Token) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.creates = append(b.creates, t)
}

// forget drops what the batch knows of ref after the row changed, so that
// a later read goes to the database.
func (b *tokenBatch) forget(ref TokenRef) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.known, ref)
}

// remove queues the deletion of ref for flushDeletes and forgets it: a
// later read in this request finds it absent, as it would in the database.
func (b *tokenBatch) remove(ref TokenRef) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.known[ref] = nil
	b.deletes = append(b.deletes, ref)
}

// flushCreates writes the queued rows with one statement, in the context's
// transaction if it has one.
func (b *tokenBatch) flushCreates(ctx context.Context, store TokenStore) error {
	b.mu.Lock()
	creates := b.creates
	b.creates = nil
	b.mu.Unlock()
	return store.CreateTokens(ctx, creates)
}

// flushDeletes removes the queued rows with one statement.
func (b *tokenBatch) flushDeletes(ctx context.Context, store TokenStore) error {
	b.mu.Lock()
	deletes := b.deletes
	b.deletes = nil
	b.mu.Unlock()
	return store.DeleteTokens(ctx, deletes)
}

// discardCreates forgets the queued rows of a transaction rolled back.
func (b *tokenBatch) discardCreates() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.creates = nil
}

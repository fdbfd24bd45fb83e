// Package audit is the append-only, tamper-evident log of everything that
// happens to accounts, clients, keys, consents and tokens: every sign-in,
// token issuance and revocation, consent and admin action is one Event with
// its time, actor, subject, client, IP address, user agent, action, result
// and reason. It owns the audit_events table and nothing else.
//
// # One unit of work
//
// Log.Append writes in the transaction carried by the context, so a change
// and the record of it commit or roll back together; without one it opens
// its own. Appending takes no lock, so audited work on many nodes never
// waits on the log.
//
// # The hash chain
//
// Log.Seal, run every second by each node's sealer (Log.RunSealer) and
// serialized cluster-wide (a transaction-scoped advisory lock per schema on
// PostgreSQL, the write lock on SQLite), takes the committed records not yet
// chained in seq order and gives each its place (ChainPos), the hex SM3
// hash (GB/T 32905) of the record before it (PrevHash; 64 zeros for the
// first) and its own Hash, computed over a canonical encoding: the JSON
// object
//
//	{"prev_hash":…,"id":…,"occurred_at":…,"actor":…,"subject":…,
//	 "client_id":…,"ip":…,"user_agent":…,"action":…,"result":…,
//	 "reason":…,"details":{…sorted keys…} or null}
//
// with the keys in exactly that order, no spaces, encoding/json's escaping,
// and occurred_at as RFC 3339 in UTC with exactly six fractional digits.
// Seq, ChainPos and Hash are not hashed. Changing this encoding would make
// every existing record fail verification, so it is pinned by a test.
//
// Chain order is sealing order: a record whose transaction commits late is
// chained when it becomes visible, after records that committed before it,
// so no record is ever skipped. The price is a window of about a second in
// which a new record is stored but not yet chained; Verify reports how many
// are pending.
//
// Log.Verify walks the chain in order and names the first record that was
// edited (its hash no longer matches its contents) or whose predecessor was
// deleted or edited and rehashed (its prev_hash no longer matches). A chain
// proves nothing about its own end: deleting the newest records leaves an
// intact, shorter chain. Verify returns the head hash; operators who need to
// detect truncation record it elsewhere (a ticket, a second system) and
// compare.
//
// # Hostile input
//
// Much of an event (user agent, identifiers typed into a login form) comes
// from whoever sent the request, and an audit write must never fail, or be
// made to fail, because of it. Event text is therefore cleaned, not
// refused: invalid UTF-8 and control characters (NUL included, which
// PostgreSQL's TEXT rejects; tab and newline excepted) become U+FFFD, and
// over-long fields are cut on a character boundary (user agent 512 bytes,
// reason 1000, identifiers 256, at most 32 details of 1000 bytes each).
//
// This package must not import any domain package; domains import it.
package audit

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
// its own. Appenders are serialized so that the chain has a single order: on
// PostgreSQL by a transaction-scoped advisory lock (one per schema, held
// until the caller's transaction ends), on SQLite by the immediate write
// lock every transaction already takes. Callers should therefore append as
// the last step of their transaction, and use the default READ COMMITTED
// isolation, under which the last record is read after the lock is taken.
//
// # The hash chain
//
// Each record carries the hex SM3 hash (GB/T 32905) of the record before it
// (PrevHash; 64 zeros for the first) and its own Hash, computed over a
// canonical encoding: the JSON object
//
//	{"prev_hash":…,"id":…,"occurred_at":…,"actor":…,"subject":…,
//	 "client_id":…,"ip":…,"user_agent":…,"action":…,"result":…,
//	 "reason":…,"details":{…sorted keys…} or null}
//
// with the keys in exactly that order, no spaces, encoding/json's escaping,
// and occurred_at as RFC 3339 in UTC with exactly six fractional digits.
// Seq and Hash are not hashed. Changing this encoding would make every
// existing record fail verification, so it is pinned by a test.
//
// Log.Verify walks the chain in seq order and names the first record that
// was edited (its hash no longer matches its contents) or whose predecessor
// was deleted or edited and rehashed (its prev_hash no longer matches). A
// chain proves nothing about its own end: deleting the newest records
// leaves an intact, shorter chain. Operators who need to detect that record
// the latest hash elsewhere (a ticket, a second system) and compare.
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

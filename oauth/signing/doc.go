// Package signing holds the keys that sign ID tokens and JWT access tokens:
// generating them, storing the private halves sealed under the
// key-encryption key, rotating them, and publishing the public halves as a
// JSON Web Key Set.
//
// Two keys are active at any time: RS256, which every OpenID Connect
// library must accept, and ES256 for clients that ask for it. A key's kid is
// the RFC 7638 thumbprint of its public key, so the same key always has the
// same kid and a kid cannot be reused for another key.
//
// A key lives through three states:
//
//   - active: it signs new tokens and is published;
//   - retired: `sso keys rotate` replaced it; it signs nothing but stays
//     published until retire_after, when every token it signed has expired,
//     so relying parties never meet a signature they cannot check;
//   - expired: no longer published; PurgeRetired deletes it a month later.
//
// Several nodes may start, or rotate, at once against one PostgreSQL
// database: key changes take a transaction-scoped advisory lock and check
// again under it, and a partial unique index guarantees one active key per
// algorithm whatever happens.
package signing

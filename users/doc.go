// Package users owns accounts — citizens, enterprises and staff — and how
// they prove who they are.
//
// It holds the account record and its validation (user.go), the national
// identifiers (identifiers.go), argon2id password hashing and the password
// policy (password.go), the account store (store.go), and the features built
// on them: lockout, password login, browser sessions, enterprises and their
// agents, the org tree, assurance levels and passkeys. Each store keeps all
// of its SQL in one file and takes part in the caller's transaction through
// the context (package db).
//
// Personal data is sealed at rest: phone and ID numbers are encrypted under
// the key-encryption key (package kek) and found through keyed HMAC blind
// indexes, so an exact lookup needs no decryption and a stolen database
// reveals neither. Password hashes never leave the package in JSON or errors.
//
// The package serves nothing: it must not import package oauth, package ui or
// any HTTP handler code, so that every protocol front end (pages, OAuth,
// the CLI, the admin API) calls the same rules. The only use of net/http is
// the outbound client of HTTPIdentityVerifier, which asks an external
// identity-verification service about a citizen.
package users

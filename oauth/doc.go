// Package oauth is the OAuth 2.0 / OpenID Connect provider of sso: the
// clients (department systems) that delegate login to it, the store of
// authorization codes, tokens and sessions, and, in later work, the fosite
// composition, discovery, userinfo and logout endpoints built on them.
//
// Client secrets are kept only as keyed hashes (SecretHasher), and token
// request data is sealed under the key-encryption key before it reaches the
// database, because it carries claims and personal data. All SQL of the
// package lives in store.go.
//
// This package must not import ui: pages are rendered elsewhere and call in.
package oauth

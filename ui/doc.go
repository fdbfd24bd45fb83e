// Package ui serves the pages a person sees in a browser: sign in, sign out
// and consent, in Chinese (zh-CN, the default) and English.
//
// ui renders pages with data handed to it and holds no rules of its own:
// whether a password is right, how long a session lasts, which clients
// exist and what a consent means are decided by the services in Config
// (package users and package oauth, wired together in cmd/sso). ui owns only
// what belongs to the browser: cookies, CSRF protection, safe redirects,
// language choice and the HTML itself.
//
// Every user-visible string lives in the message catalogue (messages.go);
// templates hold markup only. Pages load no scripts and no inline styles, so
// they run under a strict Content-Security-Policy.
//
// This package must not import oauth: the OAuth handlers call into ui
// (CurrentSession), never the other way round.
package ui

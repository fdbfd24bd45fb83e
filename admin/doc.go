// Package admin is the administration API under /admin/api/v1: accounts,
// OAuth clients, the organisation tree and the audit log, for callers
// holding an access token with the "admin" scope or for administrators
// signed in with the browser. Who may do what is decided in one place,
// rights.go; every change is written to the audit log in the transaction
// that makes it; errors are RFC 9457 problem documents.
package admin

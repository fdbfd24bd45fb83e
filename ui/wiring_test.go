package ui

import "github.com/govsso/sso/users"

// The services cmd/sso hands to New must fit the interfaces ui declares.
var (
	_ Authenticator  = (*users.Authenticator)(nil)
	_ SessionStarter = (*users.Sessions)(nil)
)

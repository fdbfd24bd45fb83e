package main

import (
	"fmt"
	"net"
	"net/url"

	"github.com/govsso/sso/ui"
	"github.com/govsso/sso/users"
)

// passkeyService is the WebAuthn relying party of the issuer: its RP ID is
// the issuer's host name and the only origin allowed is the issuer's. An
// issuer on an IP address cannot be a relying party (WebAuthn needs a
// domain), so passkeys are then off.
func passkeyService(a *app) (ui.Passkeys, error) {
	u, err := url.Parse(a.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("passkeys: issuer: %w", err)
	}
	if net.ParseIP(u.Hostname()) != nil {
		a.log.Warn("passkeys are off: the issuer is an IP address, and WebAuthn needs a host name", "issuer", a.cfg.Issuer)
		return nil, nil
	}
	p, err := users.NewPasskeys(users.PasskeyConfig{
		RPID: u.Hostname(), RPDisplayName: u.Hostname(), Origins: []string{u.Scheme + "://" + u.Host},
	}, users.NewPasskeyStore(a.db), a.users, a.lockout, a.audit)
	if err != nil {
		return nil, err
	}
	return p, nil
}

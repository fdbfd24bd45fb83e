package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/govsso/sso/admin"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/ui"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// adminAPI builds the administration API on the app's stores; callers are
// checked through the provider's tokens and the pages' sessions.
func adminAPI(a *app, provider *oauth.Provider, pages *ui.Pages, accounts *ui.AccountServices) *admin.API {
	return admin.New(admin.Config{
		DB:            a.db,
		Users:         a.users,
		OrgUnits:      users.NewOrgUnits(a.db),
		Assurance:     users.NewAssurance(a.db, a.users, nil, a.audit), // SetLevel needs no verifier
		Sessions:      a.sessions,
		Lockout:       a.lockout,
		Clients:       a.oauth,
		Secrets:       a.secrets,
		Audit:         a.audit,
		Tokens:        tokenIntrospector{provider},
		BrowserUser:   func(r *http.Request) (*users.Session, error) { return pages.CurrentSession(r) },
		Logger:        a.log,
		ResetLinks:    users.NewResetLinks(a.db, 0),
		ResetURL:      strings.TrimSuffix(a.cfg.Issuer, "/") + "/reset",
		Codes:         accounts.Codes,
		Grants:        provider,
		SecretOverlap: a.cfg.ClientSecretOverlap,
		Enterprises:   users.NewEnterprises(a.db, a.users),
		OnDisable:     revokeCertificatesOnDisable(a),
		OnDelete:      revokeCertificates(a, "account_deleted"),
		Webhooks:      webhooks.NewHub(a.db, a.kek),
	})
}

// tokenIntrospector lets the admin API check access tokens without
// depending on oauth.
type tokenIntrospector struct{ p *oauth.Provider }

func (t tokenIntrospector) Introspect(ctx context.Context, token string) (string, string, []string, error) {
	return t.p.IntrospectAccessToken(ctx, token)
}

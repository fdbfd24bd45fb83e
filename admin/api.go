package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// Prefix is where the API lives.
const Prefix = "/admin/api/v1"

// AdminScope is the scope a token must carry to use the API.
const AdminScope = "admin"

// TokenIntrospector checks a bearer access token. subject is the account
// the token was issued for, "" for a client acting on its own.
type TokenIntrospector interface {
	Introspect(ctx context.Context, token string) (clientID, subject string, scopes []string, err error)
}

// Config holds what the API works with.
type Config struct {
	DB          *db.DB
	Users       *users.SQLStore
	OrgUnits    *users.OrgUnits
	Assurance   *users.Assurance
	Sessions    *users.Sessions
	Lockout     *users.Lockout
	Clients     *oauth.SQLStore
	Secrets     *oauth.SecretHasher
	Audit       *audit.Log
	Tokens      TokenIntrospector
	BrowserUser func(*http.Request) (*users.Session, error)
	Logger      *slog.Logger
	// OnDisable runs in the transaction that disables an account (cmd/sso
	// revokes the person's signing certificates); nil does nothing.
	OnDisable func(ctx context.Context, userID string) error
	// OnDelete runs in the transaction that deletes an account, likewise.
	OnDelete func(ctx context.Context, userID string) error

	// ResetLinks, ResetURL (the reset page, issuer + "/reset") and Codes
	// let administrators start password resets; nil or "" turns the
	// methods that need them off.
	ResetLinks *users.ResetLinks
	ResetURL   string
	Codes      CodeSender
	// Grants revokes consents and tokens of deleted accounts and on
	// request; nil leaves them to expire.
	Grants Grants
	// SecretOverlap is how long a rotated client secret keeps working, and
	// the most a rotation request may ask for; 0 ends it at once.
	SecretOverlap time.Duration
	// Enterprises keeps enterprises and their agents.
	Enterprises *users.Enterprises
	// Webhooks keeps change-event subscriptions and their outbox; nil
	// turns change events off.
	Webhooks *webhooks.Hub
}

// API serves /admin/api/v1.
type API struct {
	Config
	log *slog.Logger

	// consoleMux routes Invoke's calls; built once, on first use.
	consoleMux     *http.ServeMux
	consoleMuxOnce sync.Once
}

// New returns the API.
func New(c Config) *API {
	l := c.Logger
	if l == nil {
		l = slog.Default()
	}
	return &API{Config: c, log: l}
}

// route is one operation: its method, its path as the OpenAPI document
// writes it (verbs after a colon, as in "/users/{id}:disable"), and the
// handler. The mux and the document are both built from this table.
type route struct {
	method, path, summary string
	handle                func(w http.ResponseWriter, r *http.Request, a Actor)
}

func (api *API) routes() []route {
	return []route{
		{"POST", "/users", "Create an account", api.createUser},
		{"GET", "/users", "Search accounts by username, phone, id_number, name prefix, org_unit, kind, status", api.searchUsers},
		{"GET", "/users/{id}", "Get an account", api.getUser},
		{"PATCH", "/users/{id}", "Update an account", api.patchUser},
		{"POST", "/users/{id}:disable", "Disable an account and end its sessions", api.disableUser},
		{"POST", "/users/{id}:enable", "Enable an account", api.enableUser},
		{"POST", "/users/{id}:unlock", "Clear sign-in lockouts", api.unlockUser},
		{"POST", "/users/{id}:revoke-sessions", "End every browser session", api.revokeSessions},
		{"POST", "/users/{id}:set-level", "Set the assurance level, with a reason", api.setLevel},
		{"DELETE", "/users/{id}", "Delete an account: it cannot sign in, its sessions and grants end, its personal data is erased after the retention", api.deleteUser},
		{"GET", "/users/{id}/sessions", "List the account's browser sessions", api.listUserSessions},
		{"DELETE", "/users/{id}/sessions", "End every browser session of the account", api.revokeSessions},
		{"DELETE", "/users/{id}/sessions/{session_id}", "End one browser session of the account", api.revokeUserSession},
		{"GET", "/users/{id}/consents", "List the clients the person consented to", api.listUserConsents},
		{"DELETE", "/users/{id}/consents", "Withdraw consents and tokens: of every client, or of ?client_id=", api.revokeUserConsents},
		{"POST", "/users/{id}/password-reset", "Start a password reset: a one-time link, or a code by SMS; never a password", api.startPasswordReset},
		{"POST", "/clients", "Register a client; the secret is shown once", api.createClient},
		{"GET", "/clients", "List clients", api.listClients},
		{"GET", "/clients/{id}", "Get a client", api.getClient},
		{"PATCH", "/clients/{id}", "Update a client", api.patchClient},
		{"POST", "/clients/{id}:rotate-secret", "Replace the secret; the new one is shown once", api.rotateSecret},
		{"DELETE", "/clients/{id}", "Delete a client and its tokens", api.deleteClient},
		{"GET", "/clients/{id}/consents", "List the people who consented to the client", api.listClientConsents},
		{"DELETE", "/clients/{id}/consents", "Withdraw every consent to the client and its tokens for people", api.revokeClientConsents},
		{"POST", "/org-units", "Create an org unit", api.createOrgUnit},
		{"GET", "/org-units/{id}", "Get a unit and its subtree", api.getOrgUnit},
		{"PATCH", "/org-units/{id}", "Rename or move a unit", api.patchOrgUnit},
		{"DELETE", "/org-units/{id}", "Delete an empty unit", api.deleteOrgUnit},
		{"GET", "/org-units/{id}/members", "List the unit's members with their roles (?subtree=true: of its subtree too), paged with ?after= and ?limit=", api.listMembers},
		{"PUT", "/org-units/{id}/members/{user_id}", "Put a person in the unit with a role (201), or change the role held there (200)", api.putMember},
		{"DELETE", "/org-units/{id}/members/{user_id}", "Take a person out of the unit", api.removeMember},
		{"GET", "/audit", "Query the audit log (JSON or CSV)", api.listAudit},
		{"POST", "/enterprises", "Register an enterprise by its unified social credit code, with its legal representative", api.createEnterprise},
		{"GET", "/enterprises/{id}", "Get an enterprise and its agents", api.getEnterprise},
		{"POST", "/enterprises/{id}/agents", "Let a person act for the enterprise", api.addAgent},
		{"DELETE", "/enterprises/{id}/agents/{user_id}", "Take an agent's right to act away", api.removeAgent},
		{"POST", "/enterprises/{id}:transfer-legal-representative", "Make another person the legal representative", api.transferLegalRep},
		{"POST", "/clients/{id}/webhooks", "Subscribe a URL of the client to change events; the signing secret is shown once", api.createWebhook},
		{"GET", "/clients/{id}/webhooks", "List the client's change-event subscriptions", api.listWebhooks},
		{"DELETE", "/clients/{id}/webhooks/{webhook_id}", "Delete a subscription and its pending deliveries", api.deleteWebhook},
		{"GET", "/clients/{id}/webhooks/{webhook_id}/deliveries", "The delivery log of a subscription: every attempt, newest first", api.listWebhookDeliveries},
		{"POST", "/users:import", "Import accounts from a CSV file (text/csv): a report of every rejected row; ?encoding=utf8|gbk, ?dry_run=, ?all_or_nothing=", api.importUsers},
	}
}

// Router is where the API registers its routes; *http.ServeMux is one.
type Router interface {
	Handle(pattern string, h http.Handler)
	HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request))
}

// Register adds the API to mux. Go's mux cannot match "{id}:verb" within
// one segment, so the verbs of a path share one pattern and are told apart
// here.
func (api *API) Register(mux Router) {
	verbs := map[string]map[string]route{} // mux pattern → verb → route
	var order []string
	for _, rt := range api.routes() {
		base, verb, _ := strings.Cut(rt.path, "}:")
		if verb != "" {
			base += "}"
		}
		pattern := rt.method + " " + Prefix + base
		if verbs[pattern] == nil {
			verbs[pattern] = map[string]route{}
			order = append(order, pattern)
		}
		verbs[pattern][verb] = rt
	}
	for _, pattern := range order {
		mux.Handle(pattern, api.dispatch(verbs[pattern]))
	}
	mux.HandleFunc("GET "+Prefix+"/openapi.json", api.openAPI)
}

// dispatch picks the route for the verb after the last colon of {id}.
func (api *API) dispatch(byVerb map[string]route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, verb := r.PathValue("id"), ""
		if i := strings.LastIndexByte(id, ':'); i >= 0 {
			if _, ok := byVerb[id[i+1:]]; ok {
				id, verb = id[:i], id[i+1:]
			}
		}
		rt, ok := byVerb[verb]
		if !ok {
			writeProblem(w, problem(http.StatusNotFound, "not-found", "Not found", "no such operation"))
			return
		}
		r.SetPathValue("id", id)
		a, p := api.authenticate(r)
		if p == errForbidden && ownerRoutes[rt.method+" "+rt.path] {
			p = nil // a person without an admin role; the handler checks ownership
		}
		if p != nil {
			if p.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer scope="`+AdminScope+`"`)
			}
			writeProblem(w, p)
			return
		}
		rt.handle(w, r, a)
	})
}

var (
	errUnauthenticated = problem(http.StatusUnauthorized, "unauthenticated", "Not signed in", "send an access token with the admin scope, or sign in as an administrator")
	errForbidden       = problem(http.StatusForbidden, "forbidden", "Forbidden", "your roles do not allow this on this target")
	errCSRF            = problem(http.StatusForbidden, "csrf", "CSRF token missing or wrong", "send the sso_csrf cookie's value in the X-CSRF-Token header")
)

// authenticate finds the caller: a bearer token with the admin scope, or a
// browser session (then unsafe methods need the CSRF header).
func (api *API) authenticate(r *http.Request) (Actor, *Problem) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || api.Tokens == nil {
			return Actor{}, errUnauthenticated
		}
		clientID, subject, scopes, err := api.Tokens.Introspect(ctx, strings.TrimSpace(token))
		if errors.Is(err, db.ErrUnavailable) {
			return Actor{}, errTryAgain // not 401: the token may well be good
		}
		if err != nil || !hasScope(scopes, AdminScope) {
			return Actor{}, errUnauthenticated
		}
		if subject == "" {
			return Actor{ClientID: clientID, Roles: []Role{RoleSuperAdmin}}, nil
		}
		a, p := api.accountActor(ctx, subject)
		a.ClientID = clientID
		return a, p
	}
	if api.BrowserUser == nil {
		return Actor{}, errUnauthenticated
	}
	s, err := api.BrowserUser(r)
	if err != nil || s == nil {
		return Actor{}, errUnauthenticated
	}
	if !safeMethod(r.Method) && !csrfOK(r) {
		return Actor{}, errCSRF
	}
	return api.accountActor(ctx, s.UserID)
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

func csrfOK(r *http.Request) bool {
	c, err := r.Cookie("sso_csrf")
	h := r.Header.Get("X-CSRF-Token")
	return err == nil && c.Value != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(h)) == 1
}

func hasScope(scopes []string, want string) bool {
	for _, s := range scopes {
		if s == want {
			return true
		}
	}
	return false
}

// accountActor gives an account its roles: IsAdmin makes a super admin;
// org memberships with role "admin", "auditor" or "client_manager" give the
// others, an org admin's scope being the subtree of each such unit.
func (api *API) accountActor(ctx context.Context, userID string) (Actor, *Problem) {
	u, err := api.Users.Get(ctx, userID)
	if errors.Is(err, db.ErrUnavailable) {
		return Actor{}, errTryAgain
	}
	if err != nil || u.Status != users.StatusActive {
		return Actor{}, errUnauthenticated
	}
	a := Actor{UserID: u.ID}
	if u.IsAdmin {
		a.Roles = append(a.Roles, RoleSuperAdmin)
	}
	roles, err := api.memberRoles(ctx, u.ID)
	if err != nil {
		return Actor{}, errTryAgain
	}
	for _, m := range roles {
		switch m.role {
		case "admin":
			a.OrgScopes = append(a.OrgScopes, m.path)
			if !a.Has(RoleOrgAdmin) {
				a.Roles = append(a.Roles, RoleOrgAdmin)
			}
		case string(RoleAuditor), string(RoleClientManager):
			if !a.Has(Role(m.role)) {
				a.Roles = append(a.Roles, Role(m.role))
			}
		}
	}
	if len(a.Roles) == 0 {
		// The actor is kept for the routes open to owners (see ownerRoutes).
		return a, errForbidden
	}
	return a, nil
}

// require answers 403 and returns false unless the actor may act.
func require(w http.ResponseWriter, a Actor, action Action, t Target) bool {
	if Allowed(a, action, t) {
		return true
	}
	writeProblem(w, errForbidden)
	return false
}

// record appends an admin event; it runs inside the change's transaction.
func (api *API) record(ctx context.Context, r *http.Request, a Actor, action, subject string, details map[string]string) error {
	_, err := api.Audit.Append(ctx, audit.Event{Actor: a.Name(), Subject: subject, ClientID: a.ClientID,
		IP: server.ClientIP(r), UserAgent: r.UserAgent(), Action: action, Result: audit.ResultSuccess, Details: details})
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

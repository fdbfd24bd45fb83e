package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/govsso/sso/users"
)

// The web console at /admin (package ui) runs the API's own operations in
// process, through the same route table, authentication and handlers: the
// rights, validation and audit records of a click in the console are
// exactly those of the same call to the JSON API, with no second copy of
// the rules to drift apart.

// actionUserReveal is recorded when an administrator looks at a person's
// unmasked phone number, e-mail address or ID number.
const actionUserReveal = "user.reveal"

// ActorFor returns the roles a signed-in account holds, for the console to
// decide which links and buttons to show; the operations check again. An
// account with no admin role gets a *Problem with status 403.
func (api *API) ActorFor(ctx context.Context, userID string) (Actor, error) {
	a, p := api.accountActor(ctx, userID)
	if p != nil {
		return a, p
	}
	return a, nil
}

// Result is the answer of an operation run by Invoke.
type Result struct {
	Status int
	Header http.Header
	Body   []byte
	// Problem is the error answer, nil when Status is below 400.
	Problem *Problem
}

// Decode reads a successful answer's JSON body into v.
func (r Result) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("admin: decode answer: %w", err)
	}
	return nil
}

// Invoke runs the operation method pathAndQuery (below Prefix, as in
// "/users/ID:disable" or "/users?org_unit=ID") for the browser request r
// the console received. r's cookies authenticate the caller as they do a
// browser's API call; its CSRF token must already have been checked
// against the console's form, so the cookie's value is sent as the
// header. r's context, client address and user agent reach the audit log.
// body, when not nil, is sent as JSON.
func (api *API) Invoke(r *http.Request, method, pathAndQuery string, body any) Result {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return Result{Status: http.StatusInternalServerError, Problem: problem(http.StatusInternalServerError, "internal", "Internal error", "")}
		}
	}
	in := r.Clone(r.Context())
	in.Method = method
	in.RequestURI = ""
	in.Header = r.Header.Clone()
	in.Header.Del("Authorization") // the console acts for the browser's session only
	in.Header.Set("Content-Type", "application/json")
	in.Header.Del("X-CSRF-Token")
	if c, err := r.Cookie("sso_csrf"); err == nil {
		in.Header.Set("X-CSRF-Token", c.Value)
	}
	u := *r.URL
	u.Path, u.RawQuery, _ = strings.Cut(Prefix+pathAndQuery, "?")
	u.RawPath = ""
	in.URL = &u
	in.Body, in.ContentLength = http.NoBody, 0
	if payload != nil {
		in.Body, in.ContentLength = readCloser{bytes.NewReader(payload)}, int64(len(payload))
	}
	api.consoleMuxOnce.Do(func() {
		api.consoleMux = http.NewServeMux()
		api.Register(api.consoleMux)
	})
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	api.consoleMux.ServeHTTP(rec, in)
	res := Result{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
	if res.Status >= 400 {
		p := &Problem{}
		if err := json.Unmarshal(res.Body, p); err != nil || p.Status == 0 {
			p = problem(res.Status, "not-found", http.StatusText(res.Status), "")
		}
		res.Problem = p
	}
	return res
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// recorder keeps an in-process answer.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = status, true
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.body.Write(b)
}

// RevealUser returns the account with its phone number, e-mail address and
// ID number in full, and records that a has seen them. Only who may change
// the account (user.write on it) may see them; the record is written
// before the data leaves.
func (api *API) RevealUser(r *http.Request, a Actor, id string) (*users.User, error) {
	ctx := r.Context()
	u, err := api.Users.Get(ctx, id)
	if err != nil {
		return nil, api.problemFor(r, err)
	}
	t, err := api.userTarget(ctx, u.ID)
	if err != nil {
		return nil, api.problemFor(r, err)
	}
	t.SuperAdmin = u.IsAdmin
	if !Allowed(a, ActionUserWrite, t) {
		return nil, errForbidden
	}
	err = api.DB.InTx(ctx, func(ctx context.Context) error {
		return api.record(ctx, r, a, actionUserReveal, u.ID, map[string]string{"fields": "phone,email,id_number"})
	})
	if err != nil {
		return nil, api.problemFor(r, err)
	}
	return u, nil
}

// VisibleOrgRoots returns the units whose subtrees a may see, top first:
// every root for a super admin, an org admin's own units (without those
// inside another of them), none for anyone else.
func (api *API) VisibleOrgRoots(ctx context.Context, a Actor) ([]string, error) {
	if a.Has(RoleSuperAdmin) {
		return api.rootUnits(ctx)
	}
	if !a.Has(RoleOrgAdmin) {
		return nil, nil
	}
	var out []string
	for _, s := range a.OrgScopes {
		inner := false
		for _, o := range a.OrgScopes {
			if o != s && strings.HasPrefix(s, o) {
				inner = true
			}
		}
		parts := strings.Split(strings.Trim(s, "/"), "/")
		if !inner && len(parts) > 0 && parts[len(parts)-1] != "" {
			out = append(out, parts[len(parts)-1])
		}
	}
	return out, nil
}

// MayChangeMember says whether a may change or remove the membership of
// the account userID in a unit whose members it manages: the API's
// memberTarget rule, for the console to show only the buttons that work.
func (api *API) MayChangeMember(ctx context.Context, a Actor, userID string) bool {
	if a.Has(RoleSuperAdmin) {
		return true
	}
	u, err := api.Users.Get(ctx, userID)
	return err == nil && u.Status != users.StatusDeleted && api.MayChangeUser(ctx, a, u)
}

// MayChangeUser reports whether a may change the account u (user.write),
// for the console to show or hide its buttons; the operations check again.
func (api *API) MayChangeUser(ctx context.Context, a Actor, u *users.User) bool {
	t, err := api.userTarget(ctx, u.ID)
	if err != nil {
		return false
	}
	t.SuperAdmin = u.IsAdmin
	return Allowed(a, ActionUserWrite, t)
}

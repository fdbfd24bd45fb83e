package admin

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// Audit actions the API writes besides those named in package audit.
const (
	actionUserUpdate         = "user.update"
	actionUserUnlock         = "user.unlock"
	actionUserRevokeSessions = "user.revoke_sessions"
	actionClientUpdate       = "client.update"
	actionClientRotateSecret = "client.rotate_secret"
	actionOrgCreate          = "org.create"
	actionOrgUpdate          = "org.update"
	actionOrgDelete          = "org.delete"
)

// orgRoles are the roles a membership can carry.
var orgRoles = map[string]bool{"member": true, "admin": true, string(RoleAuditor): true, string(RoleClientManager): true}

// createUserRequest is the body of POST /users. Passwords are never set
// here: the person sets one through password reset.
type createUserRequest struct {
	Username    string `json:"username"`
	Kind        string `json:"kind"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email"`
	Phone       string `json:"phone"`
	IDNumber    string `json:"id_number"`
	OrgUnitID   string `json:"org_unit_id"`
	OrgRole     string `json:"org_role"`
}

// patchUserRequest is the body of PATCH /users/{id}; absent fields stay.
type patchUserRequest struct {
	Username    *string `json:"username"`
	Kind        *string `json:"kind"`
	DisplayName *string `json:"display_name"`
	Email       *string `json:"email"`
	Phone       *string `json:"phone"`
	IDNumber    *string `json:"id_number"`
}

// setLevelRequest is the body of POST /users/{id}:set-level.
type setLevelRequest struct {
	Level  int    `json:"level"`
	Reason string `json:"reason"`
}

// userPage is a page of search results; Next is the cursor for ?after=.
type userPage struct {
	Items []*users.User `json:"items"`
	Next  string        `json:"next,omitempty"`
}

// view hides the full resident ID number: administrators see it masked.
func view(u *users.User) *users.User {
	c := *u
	if c.IDNumber != "" {
		c.IDNumber = users.MaskIDNumber(c.IDNumber)
	}
	return &c
}

// userTarget is where a person sits in the org tree.
func (api *API) userTarget(ctx context.Context, userID string) (Target, error) {
	ms, err := api.memberRoles(ctx, userID)
	if err != nil {
		return Target{}, err
	}
	t := Target{}
	for _, m := range ms {
		t.OrgPaths = append(t.OrgPaths, m.path)
		switch m.role {
		case "admin":
			t.AdminPaths = append(t.AdminPaths, m.path)
		case string(RoleAuditor), string(RoleClientManager):
			t.GlobalRole = true
		}
	}
	return t, nil
}

func (api *API) createUser(w http.ResponseWriter, r *http.Request, a Actor) {
	ctx := r.Context()
	var in createUserRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	var fields []FieldError
	target := Target{}
	if in.OrgUnitID != "" {
		if unit, err := api.OrgUnits.Get(ctx, in.OrgUnitID); err == nil {
			target.OrgPaths = []string{unit.Path}
		} else {
			fields = append(fields, FieldError{Field: "org_unit_id", Reason: "is not a known org unit"})
		}
	}
	if !require(w, a, ActionUserWrite, target) {
		return
	}
	if in.OrgRole != "" && (!orgRoles[in.OrgRole] || in.OrgUnitID == "") {
		fields = append(fields, FieldError{Field: "org_role", Reason: "must be " + orgRoleList + ", with org_unit_id"})
	} else if in.OrgRole != "" && len(target.OrgPaths) == 1 && !MayGrant(a, target.OrgPaths[0], in.OrgRole) {
		// The same rule as PUT /org-units/{id}/members/{user_id}: a new
		// account must not carry a role its creator could not grant.
		writeProblem(w, errForbidden)
		return
	}
	u := &users.User{Username: in.Username, Kind: users.Kind(in.Kind), DisplayName: in.DisplayName, Email: in.Email, Phone: in.Phone, IDNumber: in.IDNumber}
	var uv *users.ValidationError
	if err := u.Validate(); errors.As(err, &uv) {
		fields = append(fromUserFields(uv.Fields), fields...)
	}
	if len(fields) > 0 {
		writeProblem(w, validationProblem(fields))
		return
	}
	err := api.DB.InTx(ctx, func(ctx context.Context) error {
		if err := api.Users.Create(ctx, u); err != nil {
			return err
		}
		if in.OrgUnitID != "" {
			if err := api.OrgUnits.AddMember(ctx, in.OrgUnitID, u.ID, in.OrgRole); err != nil {
				return err
			}
			unit, err := api.OrgUnits.Get(ctx, in.OrgUnitID)
			if err != nil {
				return err
			}
			if err := api.emit(ctx, webhooks.MembershipEvent(u.ID, unit, in.OrgRole)); err != nil {
				return err
			}
		}
		details := map[string]string{"username": u.Username, "org_unit_id": in.OrgUnitID}
		if in.OrgUnitID != "" {
			// The role is a grant like PUT …/members/{id}, audited alike.
			details["role"] = cmp.Or(in.OrgRole, "member")
		}
		return api.record(ctx, r, a, audit.ActionUserCreate, u.ID, details)
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"/users/"+u.ID)
	writeJSON(w, http.StatusCreated, view(u))
}

// loadUser fetches the path's account and checks the actor may do action
// to it; on false the answer has been written.
func (api *API) loadUser(w http.ResponseWriter, r *http.Request, a Actor, action Action) (*users.User, bool) {
	ctx := r.Context()
	u, err := api.Users.Get(ctx, r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return nil, false
	}
	t, err := api.userTarget(ctx, u.ID)
	if err != nil {
		api.writeError(w, r, err)
		return nil, false
	}
	t.SuperAdmin = u.IsAdmin
	return u, require(w, a, action, t)
}

func (api *API) getUser(w http.ResponseWriter, r *http.Request, a Actor) {
	if u, ok := api.loadUser(w, r, a, ActionUserRead); ok {
		writeJSON(w, http.StatusOK, view(u))
	}
}

// searchQuery is the parsed query string of GET /users.
type searchQuery struct {
	username, phone, orgUnit, after string
	idNumber                        string // found through the blind index
	name                            string // part of the display name
	kind                            users.Kind
	status                          users.Status
	limit                           int
}

func parseSearch(r *http.Request) (searchQuery, error) {
	q := r.URL.Query()
	s := searchQuery{username: q.Get("username"), phone: q.Get("phone"), idNumber: q.Get("id_number"), name: strings.TrimSpace(q.Get("name")),
		orgUnit: q.Get("org_unit"), after: q.Get("after"), limit: 100}
	var fields []FieldError
	for key := range q {
		switch key {
		case "username", "phone", "id_number", "name", "org_unit", "after", "kind", "status", "limit":
		default:
			fields = append(fields, FieldError{Field: key, Reason: "is not a known query parameter"})
		}
	}
	if v := q.Get("kind"); v != "" {
		k, err := users.ParseKind(v)
		if err != nil {
			fields = append(fields, FieldError{Field: "kind", Reason: "must be citizen, enterprise or staff"})
		}
		s.kind = k
	}
	if v := users.Status(q.Get("status")); v != "" {
		if v != users.StatusActive && v != users.StatusDisabled && v != users.StatusDeleted {
			fields = append(fields, FieldError{Field: "status", Reason: "must be active, disabled or deleted"})
		}
		s.status = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fields = append(fields, FieldError{Field: "limit", Reason: "must be a whole number from 1 to 1000"})
		}
		s.limit = n
	}
	if len(s.name) > 4*users.MaxDisplayName || !utf8.ValidString(s.name) {
		fields = append(fields, FieldError{Field: "name", Reason: "must be text of at most 64 characters"})
	}
	if len(fields) > 0 {
		return s, validationProblem(fields)
	}
	return s, nil
}

// searchUsers finds accounts by exact username or phone number, by org
// subtree, or lists them by kind and status. Pages are in id order (ids
// are time-ordered UUIDs), so rows inserted while paging never shift a
// page: they appear at the end.
func (api *API) searchUsers(w http.ResponseWriter, r *http.Request, a Actor) {
	q, err := parseSearch(r)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	var page userPage
	switch {
	case q.username != "" || q.phone != "" || q.idNumber != "":
		page, err = api.findOne(r.Context(), a, q)
	case q.orgUnit != "": // within the unit, name narrows to names starting with it
		page, err = api.searchSubtree(r.Context(), a, q)
	case q.name != "":
		page, err = api.searchByName(r.Context(), a, q)
	default:
		if !require(w, a, ActionUserSearch, Target{}) {
			return
		}
		page, err = api.listAll(r.Context(), q)
	}
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if page.Items == nil {
		page.Items = []*users.User{}
	}
	writeJSON(w, http.StatusOK, page)
}

// findOne looks one account up. Whom the caller may not read is left out
// of the answer, so that the search tells no one else's accounts apart
// from missing ones.
func (api *API) findOne(ctx context.Context, a Actor, q searchQuery) (userPage, error) {
	if !Allowed(a, ActionUserSearch, Target{}) && !a.Has(RoleOrgAdmin) {
		return userPage{}, errForbidden
	}
	var u *users.User
	var err error
	switch {
	case q.username != "":
		u, err = api.Users.GetByUsername(ctx, q.username)
	case q.phone != "":
		u, err = api.Users.GetByPhone(ctx, q.phone)
	default: // through the blind index: the number itself is never searched for
		u, err = api.Users.GetByIDNumber(ctx, q.idNumber)
	}
	if err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return userPage{}, nil
		}
		return userPage{}, err
	}
	t, err := api.userTarget(ctx, u.ID)
	if err != nil {
		return userPage{}, err
	}
	if !Allowed(a, ActionUserSearch, t) && !Allowed(a, ActionUserRead, t) {
		return userPage{}, nil
	}
	if (q.kind != "" && u.Kind != q.kind) || !statusMatches(q.status, u.Status) || !strings.HasPrefix(u.DisplayName, q.name) {
		return userPage{}, nil
	}
	return userPage{Items: []*users.User{view(u)}}, nil
}

// searchByName lists accounts whose name starts with q.name, in name
// order, across all accounts: like listing them all, for those who may
// search everyone (an org admin names its unit with org_unit). The cursor
// holds the last name and id of the page.
func (api *API) searchByName(ctx context.Context, a Actor, q searchQuery) (userPage, error) {
	if !Allowed(a, ActionUserSearch, Target{}) {
		return userPage{}, errForbidden
	}
	afterName, afterID, err := decodeNameCursor(q.after)
	if err != nil {
		return userPage{}, validationProblem([]FieldError{{Field: "after", Reason: "is not a cursor from a previous page"}})
	}
	list, err := api.Users.SearchByName(ctx, q.name, afterName, afterID, q.limit)
	if err != nil {
		return userPage{}, err
	}
	var page userPage
	for _, u := range list {
		if (q.kind == "" || u.Kind == q.kind) && statusMatches(q.status, u.Status) {
			page.Items = append(page.Items, view(u))
		}
	}
	if len(list) == q.limit {
		last := list[len(list)-1]
		page.Next = base64.RawURLEncoding.EncodeToString([]byte(last.DisplayName + "\x00" + last.ID))
	}
	return page, nil
}

// decodeNameCursor reads a cursor of searchByName ("" is the first page).
func decodeNameCursor(after string) (name, id string, err error) {
	if after == "" {
		return "", "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(after)
	if err != nil {
		return "", "", err
	}
	name, id, ok := strings.Cut(string(b), "\x00")
	if !ok || !utf8.ValidString(name) {
		return "", "", errors.New("malformed cursor")
	}
	return name, id, nil
}

func (api *API) searchSubtree(ctx context.Context, a Actor, q searchQuery) (userPage, error) {
	unit, err := api.OrgUnits.Get(ctx, q.orgUnit)
	if err != nil {
		return userPage{}, validationProblem([]FieldError{{Field: "org_unit", Reason: "is not a known org unit"}})
	}
	if !Allowed(a, ActionUserRead, Target{OrgPaths: []string{unit.Path}}) {
		return userPage{}, errForbidden
	}
	ids, err := api.membersOf(ctx, unit.Path, q.after, q.limit)
	if err != nil {
		return userPage{}, err
	}
	var page userPage
	for _, id := range ids {
		u, err := api.Users.Get(ctx, id)
		if err != nil {
			return userPage{}, err
		}
		if (q.kind == "" || u.Kind == q.kind) && statusMatches(q.status, u.Status) && strings.HasPrefix(u.DisplayName, q.name) {
			page.Items = append(page.Items, view(u))
		}
	}
	if len(ids) == q.limit {
		page.Next = ids[len(ids)-1]
	}
	return page, nil
}

func (api *API) listAll(ctx context.Context, q searchQuery) (userPage, error) {
	list, err := api.Users.List(ctx, users.ListOptions{AfterID: q.after, Limit: q.limit, Kind: q.kind, Status: q.status})
	if err != nil {
		return userPage{}, err
	}
	var page userPage
	for _, u := range list {
		page.Items = append(page.Items, view(u))
	}
	if len(list) == q.limit {
		page.Next = list[len(list)-1].ID
	}
	return page, nil
}

func (api *API) patchUser(w http.ResponseWriter, r *http.Request, a Actor) {
	var in patchUserRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	if _, ok := api.loadUser(w, r, a, ActionUserWrite); !ok {
		return
	}
	var changed []string
	set := func(name string, dst *string, v *string) {
		if v != nil {
			*dst = *v
			changed = append(changed, name)
		}
	}
	api.changeUser(w, r, a, actionUserUpdate, func(u *users.User) {
		set("username", &u.Username, in.Username)
		set("display_name", &u.DisplayName, in.DisplayName)
		set("email", &u.Email, in.Email)
		set("phone", &u.Phone, in.Phone)
		set("id_number", &u.IDNumber, in.IDNumber)
		if in.Kind != nil {
			u.Kind = users.Kind(*in.Kind)
			changed = append(changed, "kind")
		}
	}, func() map[string]string { return map[string]string{"fields": strings.Join(changed, ",")} })
}

// changeUser applies fn to the account and records action, in one
// transaction, and answers with the account.
func (api *API) changeUser(w http.ResponseWriter, r *http.Request, a Actor, action string, fn func(*users.User), details func() map[string]string) {
	ctx := r.Context()
	var out *users.User
	err := api.DB.InTx(ctx, func(ctx context.Context) error {
		u, err := api.Users.Update(ctx, r.PathValue("id"), func(u *users.User) error { fn(u); return nil })
		if err != nil {
			return err
		}
		out = u
		if action == audit.ActionUserDisable {
			if _, err := api.Sessions.RevokeAllForUser(ctx, u.ID); err != nil {
				return err
			}
			if api.OnDisable != nil {
				if err := api.OnDisable(ctx, u.ID); err != nil {
					return err
				}
			}
		}
		return api.record(ctx, r, a, action, u.ID, details())
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(out))
}

func noDetails() map[string]string { return nil }

func (api *API) disableUser(w http.ResponseWriter, r *http.Request, a Actor) {
	if _, ok := api.loadUser(w, r, a, ActionUserWrite); ok {
		api.changeUser(w, r, a, audit.ActionUserDisable, func(u *users.User) { u.Status = users.StatusDisabled }, noDetails)
	}
}

func (api *API) enableUser(w http.ResponseWriter, r *http.Request, a Actor) {
	if _, ok := api.loadUser(w, r, a, ActionUserWrite); ok {
		api.changeUser(w, r, a, audit.ActionUserEnable, func(u *users.User) { u.Status = users.StatusActive }, noDetails)
	}
}

// unlockUser clears the password and second-factor lockouts.
func (api *API) unlockUser(w http.ResponseWriter, r *http.Request, a Actor) {
	u, ok := api.loadUser(w, r, a, ActionUserWrite)
	if !ok {
		return
	}
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		for _, key := range []string{users.AccountKey(u.ID), users.MFAKey(u.ID)} {
			if err := api.Lockout.Reset(ctx, key); err != nil {
				return err
			}
		}
		return api.record(ctx, r, a, actionUserUnlock, u.ID, nil)
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(u))
}

func (api *API) revokeSessions(w http.ResponseWriter, r *http.Request, a Actor) {
	u, ok := api.loadUser(w, r, a, ActionUserWrite)
	if !ok {
		return
	}
	var n int64
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		var err error
		if n, err = api.Sessions.RevokeAllForUser(ctx, u.ID); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionUserRevokeSessions, u.ID, map[string]string{"revoked": strconv.FormatInt(n, 10)})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"revoked": n})
}

// setLevel raises or lowers the assurance level; Assurance records the
// change and its reason.
func (api *API) setLevel(w http.ResponseWriter, r *http.Request, a Actor) {
	var in setLevelRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	var fields []FieldError
	if in.Level < users.LevelSelfRegistered || in.Level > users.LevelInPerson {
		fields = append(fields, FieldError{Field: "level", Reason: "must be 1, 2 or 3"})
	}
	if strings.TrimSpace(in.Reason) == "" {
		fields = append(fields, FieldError{Field: "reason", Reason: "is required"})
	}
	if len(fields) > 0 {
		writeProblem(w, validationProblem(fields))
		return
	}
	u, ok := api.loadUser(w, r, a, ActionUserWrite)
	if !ok {
		return
	}
	u, err := api.Assurance.SetLevel(r.Context(), a.Name(), u.ID, in.Level, users.MethodAdmin, in.Reason)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(u))
}

// statusMatches is the status filter of a search: deleted accounts are
// found only when asked for.
func statusMatches(want, got users.Status) bool {
	if want == "" {
		return got != users.StatusDeleted
	}
	return want == got
}

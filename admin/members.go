package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// Who belongs to which unit, with which role. Moving a person to another
// department is a DELETE from one unit and a PUT into the other.

// Audit actions of memberships; the subject is the person.
const (
	actionOrgMemberAdd    = "org.member_add"
	actionOrgMemberUpdate = "org.member_update"
	actionOrgMemberRemove = "org.member_remove"
)

// orgRoleList names the roles a membership can carry, for error messages.
const orgRoleList = "member, admin, auditor or client_manager"

// memberRequest is the body of PUT /org-units/{id}/members/{user_id}.
type memberRequest struct {
	Role string `json:"role"`
}

// memberPage is a page of a unit's members; Next is the cursor for ?after=.
type memberPage struct {
	Items []users.Member `json:"items"`
	Next  string         `json:"next,omitempty"`
}

var errNotMember = problem(http.StatusNotFound, "not-found", "Not a member", "the person is not a member of this org unit")

// MayGrant reports whether a may give or take away role in the unit at
// unitPath. Every role needs org.members there; "admin" makes an org
// admin, so it also needs org.admins (an org admin appoints the admins of
// the units below its own, never of its own unit: no peer, no last admin
// of its unit can be made or unmade by it); "auditor" and
// "client_manager" give rights over the whole city, so only super admins
// grant or take them away.
func MayGrant(a Actor, unitPath, role string) bool {
	t := Target{OrgPaths: []string{unitPath}}
	switch role {
	case "admin":
		return Allowed(a, ActionOrgAdmins, t)
	case string(RoleAuditor), string(RoleClientManager):
		return Allowed(a, ActionGlobalRoles, t)
	}
	return Allowed(a, ActionOrgMembers, t)
}

// listMembers answers a page of the unit's members (?subtree=true: of
// every unit of its subtree, one item per person and unit), in user id
// order. Reading them is reading the people of the unit.
func (api *API) listMembers(w http.ResponseWriter, r *http.Request, a Actor) {
	ctx := r.Context()
	q := r.URL.Query()
	var fields []FieldError
	for key := range q {
		if key != "subtree" && key != "after" && key != "limit" {
			fields = append(fields, FieldError{Field: key, Reason: "is not a known query parameter"})
		}
	}
	subtree := false
	if v := q.Get("subtree"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fields = append(fields, FieldError{Field: "subtree", Reason: "must be true or false"})
		}
		subtree = b
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fields = append(fields, FieldError{Field: "limit", Reason: "must be a whole number from 1 to 1000"})
		}
		limit = n
	}
	afterUser, afterUnit, err := decodeMemberCursor(q.Get("after"))
	if err != nil {
		fields = append(fields, FieldError{Field: "after", Reason: "is not a cursor from a previous page"})
	}
	if len(fields) > 0 {
		writeProblem(w, validationProblem(fields))
		return
	}
	unit, t, err := api.unitTarget(ctx, r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if !require(w, a, ActionUserRead, t) {
		return
	}
	list, err := api.OrgUnits.Members(ctx, unit, subtree, afterUser, afterUnit, limit)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	page := memberPage{Items: list}
	if page.Items == nil {
		page.Items = []users.Member{}
	}
	if len(list) == limit {
		last := list[len(list)-1]
		page.Next = base64.RawURLEncoding.EncodeToString([]byte(last.UserID + "\x00" + last.OrgUnitID))
	}
	writeJSON(w, http.StatusOK, page)
}

// decodeMemberCursor reads a cursor of listMembers ("" is the first page).
func decodeMemberCursor(after string) (userID, unitID string, err error) {
	if after == "" {
		return "", "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(after)
	if err != nil {
		return "", "", err
	}
	userID, unitID, ok := strings.Cut(string(b), "\x00")
	if !ok {
		return "", "", errors.New("malformed cursor")
	}
	return userID, unitID, nil
}

// memberTarget loads the unit and the person of a membership route and
// checks that a may manage the unit's members and the person (user.write:
// an org admin, only people already in its subtree, never a super
// admin). A deleted account is refused with 409 after the rights check, so
// that the answer tells no one else's accounts apart. On false the answer
// has been written.
func (api *API) memberTarget(w http.ResponseWriter, r *http.Request, a Actor) (*users.OrgUnit, *users.User, bool) {
	ctx := r.Context()
	unit, t, err := api.unitTarget(ctx, r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return nil, nil, false
	}
	if !require(w, a, ActionOrgMembers, t) {
		return nil, nil, false
	}
	u, err := api.Users.Get(ctx, r.PathValue("user_id"))
	if err != nil {
		api.writeError(w, r, err)
		return nil, nil, false
	}
	pt, err := api.userTarget(ctx, u.ID)
	if err != nil {
		api.writeError(w, r, err)
		return nil, nil, false
	}
	pt.SuperAdmin = u.IsAdmin
	if !require(w, a, ActionUserWrite, pt) {
		return nil, nil, false
	}
	if u.Status == users.StatusDeleted {
		api.writeError(w, r, fmt.Errorf("account %s: %w", u.ID, users.ErrDeleted))
		return nil, nil, false
	}
	return unit, u, true
}

// putMember puts the person in the unit with the role (201, with
// membership.added) or changes the role held there (200, with
// membership.updated); the same role again changes nothing (200, no
// record, no event).
func (api *API) putMember(w http.ResponseWriter, r *http.Request, a Actor) {
	var in memberRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	if !orgRoles[in.Role] {
		writeProblem(w, validationProblem([]FieldError{{Field: "role", Reason: "must be " + orgRoleList}}))
		return
	}
	unit, u, ok := api.memberTarget(w, r, a)
	if !ok {
		return
	}
	if !MayGrant(a, unit.Path, in.Role) {
		writeProblem(w, errForbidden)
		return
	}
	var previous string
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		var err error
		if previous, err = api.OrgUnits.SetMember(ctx, unit.ID, u.ID, in.Role); err != nil || previous == in.Role {
			return err
		}
		details := map[string]string{"org_unit_id": unit.ID, "org_unit_code": unit.Code, "role": in.Role}
		event, action := webhooks.MembershipEvent(u.ID, unit, in.Role), actionOrgMemberAdd
		if previous != "" {
			// Taking a role away needs the same right as giving it.
			if !MayGrant(a, unit.Path, previous) {
				return errForbidden
			}
			details["previous_role"] = previous
			event, action = webhooks.MembershipChange(webhooks.MembershipUpdated, u.ID, unit, in.Role, previous), actionOrgMemberUpdate
		}
		if err := api.emit(ctx, event); err != nil {
			return err
		}
		return api.record(ctx, r, a, action, u.ID, details)
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	m, err := api.OrgUnits.Member(r.Context(), unit.ID, u.ID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if previous == "" {
		status = http.StatusCreated
		w.Header().Set("Location", Prefix+"/org-units/"+unit.ID+"/members/"+u.ID)
	}
	writeJSON(w, status, m)
}

// removeMember takes the person out of the unit (204, with
// membership.removed); 404 when the person is not a member there.
func (api *API) removeMember(w http.ResponseWriter, r *http.Request, a Actor) {
	unit, u, ok := api.memberTarget(w, r, a)
	if !ok {
		return
	}
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		role, err := api.OrgUnits.MemberRole(ctx, unit.ID, u.ID)
		if errors.Is(err, db.ErrNotFound) {
			return errNotMember
		}
		if err != nil {
			return err
		}
		if !MayGrant(a, unit.Path, role) {
			return errForbidden
		}
		if err := api.OrgUnits.RemoveMember(ctx, unit.ID, u.ID); err != nil {
			return err
		}
		if err := api.emit(ctx, webhooks.MembershipChange(webhooks.MembershipRemoved, u.ID, unit, role, "")); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionOrgMemberRemove, u.ID, map[string]string{"org_unit_id": unit.ID, "org_unit_code": unit.Code, "role": role})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

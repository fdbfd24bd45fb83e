package admin

import "strings"

// Role is a built-in administrative role.
type Role string

// The built-in roles.
const (
	// RoleSuperAdmin may do everything.
	RoleSuperAdmin Role = "super_admin"
	// RoleOrgAdmin manages the people and units of its org subtrees only.
	RoleOrgAdmin Role = "org_admin"
	// RoleAuditor reads the audit log and changes nothing.
	RoleAuditor Role = "auditor"
	// RoleClientManager registers and maintains OAuth clients.
	RoleClientManager Role = "client_manager"
)

// Action is what a caller wants to do.
type Action string

// The actions the API checks.
const (
	ActionUserRead    Action = "user.read"
	ActionUserWrite   Action = "user.write"
	ActionUserSearch  Action = "user.search" // across all accounts
	ActionClientRead  Action = "client.read"
	ActionClientWrite Action = "client.write"
	ActionOrgRead     Action = "org.read"
	ActionOrgCreate   Action = "org.create" // target: the parent unit
	ActionOrgWrite    Action = "org.write"  // rename, move, delete
	ActionAuditRead   Action = "audit.read"
	// ActionUserResetPassword starts a password reset for a person.
	ActionUserResetPassword Action = "user.reset_password"
	// ActionUserDelete soft-deletes an account (erased after the retention).
	ActionUserDelete Action = "user.delete"
	// ActionEnterpriseCreate registers an enterprise (super admins only).
	ActionEnterpriseCreate Action = "enterprise.create"
	// ActionEnterpriseRead reads an enterprise and its agents.
	ActionEnterpriseRead Action = "enterprise.read"
	// ActionEnterpriseAgents adds and removes agents and transfers the
	// legal representative: an admin's or the legal representative's call.
	ActionEnterpriseAgents Action = "enterprise.agents"
	// ActionOrgMembers puts people in a unit, changes their role there and
	// takes them out; target: the unit.
	ActionOrgMembers Action = "org.members"
	// ActionOrgAdmins grants or takes away the role "admin" in a unit (an
	// org admin's scope); target: the unit.
	ActionOrgAdmins Action = "org.admins"
	// ActionGlobalRoles grants, changes or takes away the roles "auditor"
	// and "client_manager", whose rights reach beyond any subtree: super
	// admins only.
	ActionGlobalRoles Action = "org.global_roles"
)

// Actor is an authenticated caller and the rights it holds.
type Actor struct {
	// UserID is the signed-in or token-owning account; "" for a client
	// acting on its own (client_credentials).
	UserID string
	// ClientID is the OAuth client whose token was presented; "" in the browser.
	ClientID string
	Roles    []Role
	// OrgScopes are the org-unit paths ("/city/…/town/") an org_admin
	// manages, each with everything below it.
	OrgScopes []string
}

// Has reports whether the actor holds role.
func (a Actor) Has(role Role) bool {
	for _, r := range a.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Name identifies the actor in the audit log.
func (a Actor) Name() string {
	if a.UserID != "" {
		return a.UserID
	}
	return "client:" + a.ClientID
}

// Target is what an action touches. OrgPaths are the org-unit paths the
// target lies in: a person's units, a unit's own path, or the parent's path
// for a unit being created. A target in no unit can only be handled by a
// super admin (or, for clients and audit, the matching role).
type Target struct {
	OrgPaths []string
	// SuperAdmin is set when the target account is itself a super admin:
	// only another super admin may change it, wherever it sits.
	SuperAdmin bool
	// AdminPaths are the units the target person is admin of, and
	// GlobalRole says it holds auditor or client_manager: rights an org
	// admin must not be able to take over by resetting the person's
	// password.
	AdminPaths []string
	GlobalRole bool
	// Owner is the account that answers for the target without an admin
	// role: an enterprise's legal representative.
	Owner string
}

// Allowed is the one decision of who may do what.
func Allowed(a Actor, action Action, t Target) bool {
	if a.Has(RoleSuperAdmin) {
		return true
	}
	switch action {
	case ActionAuditRead:
		return a.Has(RoleAuditor)
	case ActionClientRead, ActionClientWrite:
		// A department's admin looks after the department's own systems.
		return a.Has(RoleClientManager) || (a.Has(RoleOrgAdmin) && withinScope(a.OrgScopes, t.OrgPaths, false))
	case ActionUserWrite, ActionUserResetPassword, ActionUserDelete:
		// Changing, resetting or deleting an account is taking it over, so
		// everything the person holds must lie in the actor's scope: every
		// unit they belong to, and every unit they administer strictly
		// below the actor's own (never a peer); no global role.
		return a.Has(RoleOrgAdmin) && !t.SuperAdmin && !t.GlobalRole && len(t.OrgPaths) > 0 &&
			withinScopeAll(a.OrgScopes, t.OrgPaths, false) && withinScopeAll(a.OrgScopes, t.AdminPaths, true)
	case ActionUserRead, ActionOrgRead, ActionOrgCreate, ActionOrgMembers:
		return a.Has(RoleOrgAdmin) && withinScope(a.OrgScopes, t.OrgPaths, false)
	case ActionOrgWrite, ActionOrgAdmins:
		// An org admin reshapes the units below its own, never the unit
		// that defines its scope; so it appoints and removes the admins of
		// those units, never its peers' (nor its own) scope.
		return a.Has(RoleOrgAdmin) && withinScope(a.OrgScopes, t.OrgPaths, true)
	case ActionEnterpriseRead, ActionEnterpriseAgents:
		return a.UserID != "" && a.UserID == t.Owner
	}
	return false // ActionUserSearch, ActionEnterpriseCreate, ActionGlobalRoles and anything unknown: super admins only
}

// withinScopeAll reports whether every path lies in one of the scopes
// (strictly below it when strict is set); true for no paths.
func withinScopeAll(scopes, paths []string, strict bool) bool {
	for _, p := range paths {
		if !withinScope(scopes, []string{p}, strict) {
			return false
		}
	}
	return true
}

// withinScope reports whether at least one of the target's paths lies in
// one of the scopes (strictly below it when strict is set).
func withinScope(scopes, paths []string, strict bool) bool {
	for _, p := range paths {
		for _, s := range scopes {
			if s != "" && strings.HasPrefix(p, s) && (!strict || p != s) {
				return true
			}
		}
	}
	return false
}

package admin

import "testing"

func TestAllowed(t *testing.T) {
	const (
		city    = "/city/"
		townA   = "/city/townA/"
		villA   = "/city/townA/villA/"
		townB   = "/city/townB/"
		villB   = "/city/townB/villB/"
		nowhere = ""
	)
	super := Actor{UserID: "root", Roles: []Role{RoleSuperAdmin}}
	townAdmin := Actor{UserID: "ta", Roles: []Role{RoleOrgAdmin}, OrgScopes: []string{townA}}
	auditor := Actor{UserID: "au", Roles: []Role{RoleAuditor}}
	clients := Actor{UserID: "cm", Roles: []Role{RoleClientManager}}
	nobody := Actor{UserID: "x"}
	in := func(paths ...string) Target {
		if len(paths) == 1 && paths[0] == nowhere {
			return Target{}
		}
		return Target{OrgPaths: paths}
	}
	tests := []struct {
		name   string
		actor  Actor
		action Action
		target Target
		want   bool
	}{
		{"super admin changes anyone", super, ActionUserWrite, in(villB), true},
		{"super admin searches everyone", super, ActionUserSearch, in(nowhere), true},
		{"super admin reads audit", super, ActionAuditRead, in(nowhere), true},
		{"town admin reads staff of its village", townAdmin, ActionUserRead, in(villA), true},
		{"town admin manages staff of its village", townAdmin, ActionUserWrite, in(villA), true},
		{"town admin manages staff of the town itself", townAdmin, ActionUserWrite, in(townA), true},
		{"town admin cannot read another town's staff", townAdmin, ActionUserRead, in(villB), false},
		{"town admin cannot manage another town's staff", townAdmin, ActionUserWrite, in(townB), false},
		{"town admin cannot manage the city level", townAdmin, ActionUserWrite, in(city), false},
		{"town admin reads a person one of whose units is its own", townAdmin, ActionUserRead, in(townB, villA), true},
		{"town admin cannot take over a person who also belongs to another town", townAdmin, ActionUserWrite, in(townB, villA), false},
		{"nor reset their password", townAdmin, ActionUserResetPassword, in(townB, villA), false},
		{"town admin manages a village admin below it", townAdmin, ActionUserResetPassword, Target{OrgPaths: []string{villA}, AdminPaths: []string{villA}}, true},
		{"town admin cannot reset a fellow admin of its own town", townAdmin, ActionUserResetPassword, Target{OrgPaths: []string{townA}, AdminPaths: []string{townA}}, false},
		{"town admin cannot reset an auditor placed in its village", townAdmin, ActionUserResetPassword, Target{OrgPaths: []string{villA}, GlobalRole: true}, false},
		{"town admin cannot delete a client manager placed in its village", townAdmin, ActionUserDelete, Target{OrgPaths: []string{villA}, GlobalRole: true}, false},
		{"town admin cannot change a person in no unit", townAdmin, ActionUserWrite, Target{}, false},
		{"town admin cannot change a super admin in its town", townAdmin, ActionUserWrite, Target{OrgPaths: []string{villA}, SuperAdmin: true}, false},
		{"town admin reads a super admin in its town", townAdmin, ActionUserRead, Target{OrgPaths: []string{villA}, SuperAdmin: true}, true},
		{"super admin changes another super admin", super, ActionUserWrite, Target{SuperAdmin: true}, true},
		{"town admin cannot touch people in no unit", townAdmin, ActionUserRead, in(nowhere), false},
		{"town admin cannot search everyone", townAdmin, ActionUserSearch, in(nowhere), false},
		{"town admin creates a village in its town", townAdmin, ActionOrgCreate, in(townA), true},
		{"town admin renames its village", townAdmin, ActionOrgWrite, in(villA), true},
		{"town admin cannot delete or move its own town", townAdmin, ActionOrgWrite, in(townA), false},
		{"town admin cannot create in another town", townAdmin, ActionOrgCreate, in(townB), false},
		{"town admin cannot read audit", townAdmin, ActionAuditRead, in(nowhere), false},
		{"town admin cannot manage clients", townAdmin, ActionClientWrite, in(nowhere), false},
		{"auditor reads audit", auditor, ActionAuditRead, in(nowhere), true},
		{"auditor cannot change users", auditor, ActionUserWrite, in(villA), false},
		{"auditor cannot read users", auditor, ActionUserRead, in(villA), false},
		{"auditor cannot change clients", auditor, ActionClientWrite, in(nowhere), false},
		{"client manager registers clients", clients, ActionClientWrite, in(nowhere), true},
		{"client manager reads clients", clients, ActionClientRead, in(nowhere), true},
		{"client manager cannot change users", clients, ActionUserWrite, in(villA), false},
		{"client manager cannot read audit", clients, ActionAuditRead, in(nowhere), false},
		{"no role, no right", nobody, ActionUserRead, in(villA), false},
		{"town admin resets a password in its village", townAdmin, ActionUserResetPassword, in(villA), true},
		{"town admin cannot reset a password in another town", townAdmin, ActionUserResetPassword, in(villB), false},
		{"town admin cannot reset a super admin's password", townAdmin, ActionUserResetPassword, Target{OrgPaths: []string{villA}, SuperAdmin: true}, false},
		{"auditor cannot reset passwords", auditor, ActionUserResetPassword, in(villA), false},
		{"client manager cannot reset passwords", clients, ActionUserResetPassword, in(villA), false},
		{"super admin resets any password", super, ActionUserResetPassword, in(nowhere), true},
		{"town admin deletes staff of its village", townAdmin, ActionUserDelete, in(villA), true},
		{"town admin cannot delete another town's staff", townAdmin, ActionUserDelete, in(townB), false},
		{"town admin cannot delete a super admin", townAdmin, ActionUserDelete, Target{OrgPaths: []string{villA}, SuperAdmin: true}, false},
		{"auditor cannot delete", auditor, ActionUserDelete, in(villA), false},
		{"client manager cannot delete", clients, ActionUserDelete, in(villA), false},
		{"town admin manages a client of its village", townAdmin, ActionClientWrite, in(villA), true},
		{"town admin reads a client of its town", townAdmin, ActionClientRead, in(townA), true},
		{"town admin cannot manage another town's client", townAdmin, ActionClientWrite, in(townB), false},
		{"town admin cannot read a city-level client", townAdmin, ActionClientRead, in(city), false},
		{"client manager manages any department's client", clients, ActionClientWrite, in(villB), true},
		{"auditor cannot read a department's client", auditor, ActionClientRead, in(villA), false},
		{"super admin registers an enterprise", super, ActionEnterpriseCreate, in(nowhere), true},
		{"town admin cannot register an enterprise", townAdmin, ActionEnterpriseCreate, in(nowhere), false},
		{"the legal representative manages agents", nobody, ActionEnterpriseAgents, Target{Owner: "x"}, true},
		{"the legal representative reads the enterprise", nobody, ActionEnterpriseRead, Target{Owner: "x"}, true},
		{"another person cannot manage agents", nobody, ActionEnterpriseAgents, Target{Owner: "someone-else"}, false},
		{"a client acting alone owns nothing", Actor{ClientID: "c"}, ActionEnterpriseAgents, Target{Owner: ""}, false},
		{"owning an enterprise gives no right over accounts", nobody, ActionUserRead, Target{OrgPaths: []string{villA}, Owner: "x"}, false},
		{"town admin cannot manage an enterprise's agents", townAdmin, ActionEnterpriseAgents, Target{Owner: "someone-else"}, false},
		{"town admin puts people in its town", townAdmin, ActionOrgMembers, in(townA), true},
		{"town admin puts people in its village", townAdmin, ActionOrgMembers, in(villA), true},
		{"town admin cannot put people in another town", townAdmin, ActionOrgMembers, in(townB), false},
		{"town admin appoints a village admin", townAdmin, ActionOrgAdmins, in(villA), true},
		{"town admin cannot appoint or remove admins of its own town", townAdmin, ActionOrgAdmins, in(townA), false},
		{"town admin cannot appoint admins elsewhere", townAdmin, ActionOrgAdmins, in(villB), false},
		{"town admin cannot grant auditor or client_manager", townAdmin, ActionGlobalRoles, in(villA), false},
		{"auditor cannot manage members", auditor, ActionOrgMembers, in(villA), false},
		{"client manager cannot grant its own role", clients, ActionGlobalRoles, in(villA), false},
		{"super admin grants global roles", super, ActionGlobalRoles, in(villA), true},
		{"unknown action is refused", townAdmin, Action("user.erase"), in(villA), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Allowed(tt.actor, tt.action, tt.target); got != tt.want {
				t.Fatalf("Allowed(%v, %s, %v) = %v, want %v", tt.actor.Roles, tt.action, tt.target.OrgPaths, got, tt.want)
			}
		})
	}
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"=SUM(A1)": "'=SUM(A1)", "+1": "'+1", "-2": "'-2", "@x": "'@x", "alice": "alice", "": ""} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

package webhooks

import (
	"context"
	"time"

	"github.com/govsso/sso/users"
)

// The events of account changes, built in one place: Listener for the
// accounts (every path that changes one goes through users.SQLStore), and
// MembershipEvent and MembershipChange for the admin API and the import,
// the paths that put people in org units, change their role there and take
// them out.

// UserData is what a department system learns of an account: enough to
// keep its copy in step, never a phone or ID number.
type UserData struct {
	ID             string    `json:"id"`
	Username       string    `json:"username,omitempty"`
	Kind           string    `json:"kind,omitempty"`
	DisplayName    string    `json:"display_name,omitempty"`
	Email          string    `json:"email,omitempty"`
	Status         string    `json:"status"`
	AssuranceLevel int       `json:"assurance_level,omitempty"`
	DeletedAt      time.Time `json:"deleted_at,omitzero"`
}

// MembershipData is a person's place in an org unit.
type MembershipData struct {
	UserID      string `json:"user_id"`
	OrgUnitID   string `json:"org_unit_id"`
	OrgUnitCode string `json:"org_unit_code,omitempty"`
	Role        string `json:"role"`
	// PreviousRole is the role held before a membership.updated (Role is
	// then the new one; in membership.removed, the one given up).
	PreviousRole string `json:"previous_role,omitempty"`
}

// UserEvent is a user.* event about u. A deleted account's event carries
// only its id and deletion time: its personal data is on its way out.
func UserEvent(typ string, u *users.User) Event {
	d := UserData{ID: u.ID, Status: string(u.Status)}
	if typ == UserDeleted {
		d.DeletedAt = u.DeletedAt
	} else {
		d.Username, d.Kind, d.DisplayName, d.Email, d.AssuranceLevel = u.Username, string(u.Kind), u.DisplayName, u.Email, u.AssuranceLevel
	}
	return Event{Type: typ, Data: map[string]any{"user": d}}
}

// MembershipEvent is a membership.added event.
func MembershipEvent(userID string, unit *users.OrgUnit, role string) Event {
	return MembershipChange(MembershipAdded, userID, unit, role, "")
}

// MembershipChange is a membership.* event of type typ: added and removed
// carry the role held, updated the new role and previousRole.
func MembershipChange(typ, userID string, unit *users.OrgUnit, role, previousRole string) Event {
	if role == "" {
		role = "member"
	}
	return Event{Type: typ, Data: map[string]any{"membership": MembershipData{UserID: userID, OrgUnitID: unit.ID, OrgUnitCode: unit.Code,
		Role: role, PreviousRole: previousRole}}}
}

// Listener turns the account changes users.SQLStore makes into events,
// in the change's transaction: the one place account events come from.
type Listener struct{ Hub *Hub }

var _ users.ChangeListener = Listener{}

// changeTypes maps a store change to its event type.
var changeTypes = map[users.Change]string{users.ChangeCreated: UserCreated, users.ChangeUpdated: UserUpdated,
	users.ChangeDisabled: UserDisabled, users.ChangeDeleted: UserDeleted}

// AccountsChanged writes one event per account.
func (l Listener) AccountsChanged(ctx context.Context, change users.Change, accounts ...*users.User) error {
	typ, ok := changeTypes[change]
	if !ok {
		return nil
	}
	events := make([]Event, len(accounts))
	for i, u := range accounts {
		events[i] = UserEvent(typ, u)
	}
	return l.Hub.Emit(ctx, events...)
}

// ImportHook is users.ImportOptions.OnCreated for h: the memberships of
// imported accounts become events in the batch's transaction (the accounts'
// own events come from Listener). A nil hub gives nil.
func ImportHook(h *Hub) func(context.Context, []users.ImportedUser) error {
	if h == nil {
		return nil
	}
	return func(ctx context.Context, rows []users.ImportedUser) error {
		var events []Event
		for _, r := range rows {
			if r.Unit != nil {
				events = append(events, MembershipEvent(r.User.ID, r.Unit, r.Role))
			}
		}
		return h.Emit(ctx, events...)
	}
}

package webhooks

import (
	"context"
	"time"

	"github.com/govsso/sso/users"
)

// The events of account changes, built in one place for every path that
// makes them (admin API, import, CLI).

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
	if role == "" {
		role = "member"
	}
	return Event{Type: MembershipAdded, Data: map[string]any{"membership": MembershipData{UserID: userID, OrgUnitID: unit.ID, OrgUnitCode: unit.Code, Role: role}}}
}

// ImportHook is users.ImportOptions.OnCreated for h: every created account
// and its unit become events in the batch's transaction. A nil hub gives nil.
func ImportHook(h *Hub) func(context.Context, []users.ImportedUser) error {
	if h == nil {
		return nil
	}
	return func(ctx context.Context, rows []users.ImportedUser) error {
		events := make([]Event, 0, 2*len(rows))
		for _, r := range rows {
			events = append(events, UserEvent(UserCreated, r.User))
			if r.Unit != nil {
				events = append(events, MembershipEvent(r.User.ID, r.Unit, r.Role))
			}
		}
		return h.Emit(ctx, events...)
	}
}

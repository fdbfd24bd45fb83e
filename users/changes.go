package users

import "context"

// Change is what happened to accounts, for the listener of SQLStore.
type Change string

// The changes a ChangeListener hears of.
const (
	ChangeCreated  Change = "created"
	ChangeUpdated  Change = "updated" // also an account enabled again
	ChangeDisabled Change = "disabled"
	ChangeDeleted  Change = "deleted"
)

// ChangeListener hears of every account created, changed, disabled or
// deleted, inside the transaction that makes the change, so that what it
// writes (change events for department systems) is committed exactly when
// the change is. An error undoes the change.
type ChangeListener interface {
	AccountsChanged(ctx context.Context, change Change, accounts ...*User) error
}

// SetChangeListener makes l hear of every change the store makes; nil
// stops it. Call it before the store is shared.
func (s *SQLStore) SetChangeListener(l ChangeListener) { s.changes = l }

func (s *SQLStore) changed(ctx context.Context, change Change, accounts ...*User) error {
	if s.changes == nil || len(accounts) == 0 {
		return nil
	}
	return s.changes.AccountsChanged(ctx, change, accounts...)
}

// updateChange is the change an update made, "" when nothing a listener
// cares about changed (a new password hash, say).
func updateChange(before, after *User) Change {
	switch {
	case before.Status != StatusDisabled && after.Status == StatusDisabled:
		return ChangeDisabled
	case before.Username != after.Username, before.Kind != after.Kind, before.DisplayName != after.DisplayName,
		before.Email != after.Email, before.Phone != after.Phone, before.IDNumber != after.IDNumber,
		before.Status != after.Status, before.AssuranceLevel != after.AssuranceLevel:
		return ChangeUpdated
	}
	return ""
}

package users

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// OrgUnit is one node of the organisation tree: the city, a department, a
// town or street, a village or community.
type OrgUnit struct {
	ID        string    `json:"id"`
	ParentID  string    `json:"parent_id,omitempty"`
	Code      string    `json:"code"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Path      string    `json:"path"` // "/root-id/…/id/": a subtree is a prefix
	CreatedAt time.Time `json:"created_at"`
}

// Kinds of org unit.
var orgKinds = map[string]bool{"city": true, "department": true, "town": true, "street": true, "village": true, "community": true, "office": true}

var orgCodePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ErrOrgUnitNotEmpty means a unit still has members or children.
var ErrOrgUnitNotEmpty = errors.New("org unit still has members or sub-units")

// OrgUnits keeps the organisation tree and who belongs where.
type OrgUnits struct{ d *db.DB }

// NewOrgUnits returns the org-unit store.
func NewOrgUnits(d *db.DB) *OrgUnits { return &OrgUnits{d: d} }

const orgColumns = `id, COALESCE(parent_id, ''), code, name, kind, path, created_at`

// Create adds a unit under parentID ("" for a root).
func (o *OrgUnits) Create(ctx context.Context, parentID, code, name, kind string) (*OrgUnit, error) {
	v := &ValidationError{}
	if !orgCodePattern.MatchString(code) {
		v.add("code", errors.New("must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'"))
	}
	name = strings.TrimSpace(name)
	if err := checkDisplayName(name); err != nil || name == "" {
		v.add("name", errors.New("must be 1 to 64 characters of text"))
	}
	if !orgKinds[kind] {
		v.add("kind", errors.New("must be city, department, town, street, village, community or office"))
	}
	if len(v.Fields) > 0 {
		return nil, v
	}
	u := &OrgUnit{ID: uuid.Must(uuid.NewV7()).String(), ParentID: parentID, Code: code, Name: name, Kind: kind,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	err := o.d.InTx(ctx, func(ctx context.Context) error {
		u.Path = "/" + u.ID + "/"
		if parentID != "" {
			parent, err := o.Get(ctx, parentID)
			if err != nil {
				return fmt.Errorf("parent: %w", err)
			}
			u.Path = parent.Path + u.ID + "/"
		}
		_, err := o.d.Exec(ctx, `INSERT INTO org_units (id, parent_id, code, name, kind, path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			u.ID, nullIfEmpty(parentID), code, name, kind, u.Path, u.CreatedAt)
		if errors.Is(err, db.ErrConflict) {
			return fmt.Errorf("org unit code %q %w", code, db.ErrConflict)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Get returns one unit.
func (o *OrgUnits) Get(ctx context.Context, id string) (*OrgUnit, error) {
	list, err := o.query(ctx, `SELECT `+orgColumns+` FROM org_units WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("org unit %s %w", id, db.ErrNotFound)
	}
	return list[0], nil
}

// Subtree returns the unit and everything below it, in tree order.
func (o *OrgUnits) Subtree(ctx context.Context, id string) ([]*OrgUnit, error) {
	root, err := o.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return o.query(ctx, `SELECT `+orgColumns+` FROM org_units WHERE path LIKE ? ORDER BY path`, likePrefix(root.Path))
}

// Contains reports whether unit inner lies in the subtree of outer; rights
// scoped to a subtree are checked with it.
func (o *OrgUnits) Contains(ctx context.Context, outer, inner string) (bool, error) {
	a, err := o.Get(ctx, outer)
	if err != nil {
		return false, err
	}
	b, err := o.Get(ctx, inner)
	if err != nil {
		return false, err
	}
	return strings.HasPrefix(b.Path, a.Path), nil
}

// Rename changes a unit's name.
func (o *OrgUnits) Rename(ctx context.Context, id, name string) error {
	name = strings.TrimSpace(name)
	if err := checkDisplayName(name); err != nil || name == "" {
		return &ValidationError{Fields: []FieldError{{Field: "name", Reason: "must be 1 to 64 characters of text"}}}
	}
	return o.d.ExecOne(ctx, `UPDATE org_units SET name = ? WHERE id = ?`, name, id)
}

// Move puts a unit (and its subtree) under newParentID; a unit cannot move
// into its own subtree.
func (o *OrgUnits) Move(ctx context.Context, id, newParentID string) error {
	return o.d.InTx(ctx, func(ctx context.Context) error {
		u, err := o.Get(ctx, id)
		if err != nil {
			return err
		}
		newPath := "/" + id + "/"
		if newParentID != "" {
			p, err := o.Get(ctx, newParentID)
			if err != nil {
				return fmt.Errorf("new parent: %w", err)
			}
			if strings.HasPrefix(p.Path, u.Path) {
				return &ValidationError{Fields: []FieldError{{Field: "parent_id", Reason: "a unit cannot move under itself"}}}
			}
			newPath = p.Path + id + "/"
		}
		if _, err := o.d.Exec(ctx, `UPDATE org_units SET parent_id = ? WHERE id = ?`, nullIfEmpty(newParentID), id); err != nil {
			return err
		}
		_, err = o.d.Exec(ctx, `UPDATE org_units SET path = CAST(? AS TEXT) || substr(path, CAST(? AS INTEGER)) WHERE path LIKE ?`, newPath, len(u.Path)+1, likePrefix(u.Path))
		return err
	})
}

// Delete removes a unit that has no members and no sub-units. Deleted
// accounts keep their memberships until they are erased, but they do not
// hold a unit up: their memberships go with it.
func (o *OrgUnits) Delete(ctx context.Context, id string) error {
	return o.d.InTx(ctx, func(ctx context.Context) error {
		var n int
		if err := o.d.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM org_memberships m WHERE m.org_unit_id = ?
				AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id AND u.deleted_at IS NOT NULL))
			+ (SELECT count(*) FROM org_units WHERE parent_id = ?)`, id, id).Scan(&n); err != nil {
			return o.d.Err(err)
		}
		if n > 0 {
			return ErrOrgUnitNotEmpty
		}
		// Only the deleted accounts' memberships: one added by a concurrent
		// request after the count above must not vanish without a trace.
		if _, err := o.d.Exec(ctx, `DELETE FROM org_memberships WHERE org_unit_id = ?
			AND user_id IN (SELECT id FROM users WHERE deleted_at IS NOT NULL)`, id); err != nil {
			return err
		}
		return o.d.ExecOne(ctx, `DELETE FROM org_units WHERE id = ?`, id)
	})
}

// AddMember puts a staff member in a unit with a role.
func (o *OrgUnits) AddMember(ctx context.Context, unitID, userID, role string) error {
	if role == "" {
		role = "member"
	}
	if _, err := o.Get(ctx, unitID); err != nil {
		return err
	}
	_, err := o.d.Exec(ctx, `INSERT INTO org_memberships (org_unit_id, user_id, role, added_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (org_unit_id, user_id) DO UPDATE SET role = excluded.role`, unitID, userID, role, time.Now().UTC().Truncate(time.Microsecond))
	return err
}

// RemoveMember takes a person out of a unit.
func (o *OrgUnits) RemoveMember(ctx context.Context, unitID, userID string) error {
	return o.d.ExecOne(ctx, `DELETE FROM org_memberships WHERE org_unit_id = ? AND user_id = ?`, unitID, userID)
}

// Member is one person's place in a unit, as the unit's member list shows
// it: enough to recognise the person, never a phone or ID number.
type Member struct {
	UserID      string    `json:"user_id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	Status      Status    `json:"status"`
	OrgUnitID   string    `json:"org_unit_id"`
	Role        string    `json:"role"`
	AddedAt     time.Time `json:"added_at"`
}

// MemberRole returns the role userID holds in unitID, or an error wrapping
// db.ErrNotFound when the person is not a member there.
func (o *OrgUnits) MemberRole(ctx context.Context, unitID, userID string) (string, error) {
	var role string
	err := o.d.QueryRow(ctx, `SELECT role FROM org_memberships WHERE org_unit_id = ? AND user_id = ?`+o.d.ForUpdate(), unitID, userID).Scan(&role)
	if err != nil {
		return "", fmt.Errorf("membership of %s in %s: %w", userID, unitID, o.d.Err(err))
	}
	return role, nil
}

// SetMember puts userID in unitID with role, or changes the role held
// there. previous is the role held before, "" when the person was not a
// member: the caller tells an addition from a change with it, even when two
// requests race (the row is inserted or locked before it is read).
func (o *OrgUnits) SetMember(ctx context.Context, unitID, userID, role string) (previous string, err error) {
	err = o.d.InTx(ctx, func(ctx context.Context) error {
		res, err := o.d.Exec(ctx, `INSERT INTO org_memberships (org_unit_id, user_id, role, added_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (org_unit_id, user_id) DO NOTHING`, unitID, userID, role, time.Now().UTC().Truncate(time.Microsecond))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		if previous, err = o.MemberRole(ctx, unitID, userID); err != nil || previous == role {
			return err
		}
		return o.d.ExecOne(ctx, `UPDATE org_memberships SET role = ? WHERE org_unit_id = ? AND user_id = ?`, role, unitID, userID)
	})
	return previous, err
}

// Members lists the people of a unit (with subtree, of every unit whose
// path starts with the unit's), one entry per person and unit, ordered by
// user id then unit id and starting after (afterUser, afterUnit).
// Deleted accounts are listed, with their status, until they are erased.
func (o *OrgUnits) Members(ctx context.Context, unit *OrgUnit, subtree bool, afterUser, afterUnit string, limit int) ([]Member, error) {
	where, arg := `m.org_unit_id = ?`, any(unit.ID)
	if subtree {
		where, arg = `m.org_unit_id IN (SELECT id FROM org_units WHERE path LIKE ?)`, likePrefix(unit.Path)
	}
	return o.members(ctx, where+` AND (m.user_id > ? OR (m.user_id = ? AND m.org_unit_id > ?))
		ORDER BY m.user_id, m.org_unit_id LIMIT ?`, arg, afterUser, afterUser, afterUnit, limit)
}

// Member returns userID's membership of unitID, or an error wrapping
// db.ErrNotFound.
func (o *OrgUnits) Member(ctx context.Context, unitID, userID string) (*Member, error) {
	list, err := o.members(ctx, `m.org_unit_id = ? AND m.user_id = ?`, unitID, userID)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("membership of %s in %s %w", userID, unitID, db.ErrNotFound)
	}
	return &list[0], nil
}

func (o *OrgUnits) members(ctx context.Context, where string, args ...any) ([]Member, error) {
	rows, err := o.d.Query(ctx, `SELECT m.user_id, u.username, u.display_name, u.status, u.deleted_at IS NOT NULL, m.org_unit_id, m.role, m.added_at
		FROM org_memberships m JOIN users u ON u.id = m.user_id WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var deleted bool
		if err := rows.Scan(&m.UserID, &m.Username, &m.DisplayName, &m.Status, &deleted, &m.OrgUnitID, &m.Role, &m.AddedAt); err != nil {
			return nil, o.d.Err(err)
		}
		if deleted {
			m.Status = StatusDeleted
		}
		m.AddedAt = m.AddedAt.UTC()
		out = append(out, m)
	}
	return out, o.d.Err(rows.Err())
}

// UnitsOf lists the units a person belongs to.
func (o *OrgUnits) UnitsOf(ctx context.Context, userID string) ([]*OrgUnit, error) {
	return o.query(ctx, `SELECT `+orgColumns+` FROM org_units WHERE id IN (SELECT org_unit_id FROM org_memberships WHERE user_id = ?) ORDER BY path`, userID)
}

func (o *OrgUnits) query(ctx context.Context, q string, args ...any) ([]*OrgUnit, error) {
	rows, err := o.d.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*OrgUnit
	for rows.Next() {
		u := &OrgUnit{}
		if err := rows.Scan(&u.ID, &u.ParentID, &u.Code, &u.Name, &u.Kind, &u.Path, &u.CreatedAt); err != nil {
			return nil, o.d.Err(err)
		}
		u.CreatedAt = u.CreatedAt.UTC()
		out = append(out, u)
	}
	return out, o.d.Err(rows.Err())
}

// likePrefix is a LIKE pattern matching strings that start with p. Paths
// hold only UUIDs and slashes, so no LIKE wildcard can occur in them.
func likePrefix(p string) string { return p + "%" }

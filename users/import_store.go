package users

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// The batched SQL of Importer: one statement per batch instead of one per
// row, which is what makes an import of 100,000 rows take seconds.

// GetByCode returns the unit with a code (codes are unique).
func (o *OrgUnits) GetByCode(ctx context.Context, code string) (*OrgUnit, error) {
	list, err := o.query(ctx, `SELECT `+orgColumns+` FROM org_units WHERE code = ?`, code)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("org unit code %q %w", code, db.ErrNotFound)
	}
	return list[0], nil
}

// placeholders is "(?, ?, …), (?, ?, …)…" for rows of n values.
func placeholders(rows, n int) string {
	one := "(" + marks(n) + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}

// marks is "?, ?, …" with n marks.
func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// takenBatch returns which of the rows' usernames ("username:x"), phone
// indexes ("phone:i") and ID-number indexes ("id:i") an account holds.
func (s *SQLStore) takenBatch(ctx context.Context, rows []*importRow) (map[string]bool, error) {
	var names, phones, ids []any
	for _, r := range rows {
		names = append(names, r.user.Username)
		if r.phone != nil {
			phones = append(phones, r.phone)
		}
		if r.idNum != nil {
			ids = append(ids, r.idNum)
		}
	}
	// One indexed lookup per column: an OR across columns can make the
	// planner scan the whole table.
	const sel = `SELECT username, phone_index, id_number_index FROM users WHERE `
	q := sel + `username IN (` + marks(len(names)) + `)`
	args := names
	if len(phones) > 0 {
		q += ` UNION ALL ` + sel + `phone_index IN (` + marks(len(phones)) + `)`
		args = append(args, phones...)
	}
	if len(ids) > 0 {
		q += ` UNION ALL ` + sel + `id_number_index IN (` + marks(len(ids)) + `)`
		args = append(args, ids...)
	}
	res, err := s.d.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	taken := map[string]bool{}
	for res.Next() {
		var username string
		var phone, idNumber sql.NullString
		if err := res.Scan(&username, &phone, &idNumber); err != nil {
			return nil, s.d.Err(err)
		}
		taken["username:"+username] = true
		if phone.Valid {
			taken["phone:"+phone.String] = true
		}
		if idNumber.Valid {
			taken["id:"+idNumber.String] = true
		}
	}
	return taken, s.d.Err(res.Err())
}

// insertBatch writes validated, sealed rows and their memberships, giving
// each account its id and times. It must run in a transaction.
func (s *SQLStore) insertBatch(ctx context.Context, rows []*importRow) error {
	if len(rows) == 0 {
		return nil
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	args := make([]any, 0, len(rows)*15)
	var members []any
	nMembers := 0
	for _, r := range rows {
		u := r.user
		u.ID = uuid.Must(uuid.NewV7()).String()
		u.CreatedAt, u.UpdatedAt = now, now
		args = append(args, u.ID, u.Username, string(u.Kind), u.DisplayName, nullIfEmpty(u.Email), r.phEnc, r.idEnc, nil,
			u.IsAdmin, string(u.Status), u.AssuranceLevel, u.CreatedAt, u.UpdatedAt, r.phone, r.idNum)
		if r.unit != nil {
			role := r.role
			if role == "" {
				role = "member"
			}
			members = append(members, r.unit.ID, u.ID, role, now)
			nMembers++
		}
	}
	if _, err := s.d.Exec(ctx, `INSERT INTO users (`+userColumns+`, phone_index, id_number_index) VALUES `+placeholders(len(rows), 15), args...); err != nil {
		return fmt.Errorf("import %d accounts: %w", len(rows), raceConflict(err))
	}
	created := make([]*User, len(rows))
	for i, r := range rows {
		created[i] = r.user
	}
	if err := s.changed(ctx, ChangeCreated, created...); err != nil {
		return err
	}
	if nMembers > 0 {
		if _, err := s.d.Exec(ctx, `INSERT INTO org_memberships (org_unit_id, user_id, role, added_at) VALUES `+placeholders(nMembers, 4), members...); err != nil {
			return fmt.Errorf("import %d memberships: %w", nMembers, err)
		}
	}
	return nil
}

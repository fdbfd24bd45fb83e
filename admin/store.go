package admin

import (
	"context"
)

// The API's own reads of the org tables, kept here until users.OrgUnits
// offers them: the roles a person holds, and the people of a subtree.

// membership is one unit a person belongs to, with the role held there.
type membership struct{ path, role string }

func (api *API) memberRoles(ctx context.Context, userID string) ([]membership, error) {
	rows, err := api.DB.Query(ctx, `SELECT u.path, m.role FROM org_memberships m JOIN org_units u ON u.id = m.org_unit_id
		WHERE m.user_id = ? ORDER BY u.path`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []membership
	for rows.Next() {
		var m membership
		if err := rows.Scan(&m.path, &m.role); err != nil {
			return nil, api.DB.Err(err)
		}
		out = append(out, m)
	}
	return out, api.DB.Err(rows.Err())
}

// membersOf lists, in id order after afterID, the people belonging to a
// unit whose path starts with path.
func (api *API) membersOf(ctx context.Context, path, afterID string, limit int) ([]string, error) {
	rows, err := api.DB.Query(ctx, `SELECT DISTINCT m.user_id FROM org_memberships m JOIN org_units u ON u.id = m.org_unit_id
		WHERE u.path LIKE ? AND m.user_id > ? ORDER BY m.user_id LIMIT ?`, path+"%", afterID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, api.DB.Err(err)
		}
		out = append(out, id)
	}
	return out, api.DB.Err(rows.Err())
}

// rootUnits lists the ids of the units at the top of the tree.
func (api *API) rootUnits(ctx context.Context) ([]string, error) {
	rows, err := api.DB.Query(ctx, `SELECT id FROM org_units WHERE parent_id IS NULL ORDER BY path`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, api.DB.Err(err)
		}
		out = append(out, id)
	}
	return out, api.DB.Err(rows.Err())
}

package admin

import (
	"context"
	"net/http"

	"github.com/govsso/sso/users"
)

// createOrgUnitRequest is the body of POST /org-units.
type createOrgUnitRequest struct {
	ParentID string `json:"parent_id"`
	Code     string `json:"code"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
}

// patchOrgUnitRequest renames and/or moves a unit; a null or absent field
// stays. parent_id "" makes the unit a root.
type patchOrgUnitRequest struct {
	Name     *string `json:"name"`
	ParentID *string `json:"parent_id"`
}

// unitTarget is the org path of unit id, for the rights check; a missing
// unit is answered 404.
func (api *API) unitTarget(ctx context.Context, id string) (*users.OrgUnit, Target, error) {
	u, err := api.OrgUnits.Get(ctx, id)
	if err != nil {
		return nil, Target{}, err
	}
	return u, Target{OrgPaths: []string{u.Path}}, nil
}

func (api *API) createOrgUnit(w http.ResponseWriter, r *http.Request, a Actor) {
	ctx := r.Context()
	var in createOrgUnitRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	target := Target{}
	if in.ParentID != "" {
		_, t, err := api.unitTarget(ctx, in.ParentID)
		if err != nil {
			writeProblem(w, validationProblem([]FieldError{{Field: "parent_id", Reason: "is not a known org unit"}}))
			return
		}
		target = t
	}
	if !require(w, a, ActionOrgCreate, target) {
		return
	}
	var unit *users.OrgUnit
	err := api.DB.InTx(ctx, func(ctx context.Context) error {
		var err error
		if unit, err = api.OrgUnits.Create(ctx, in.ParentID, in.Code, in.Name, in.Kind); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionOrgCreate, unit.ID, map[string]string{"code": unit.Code, "parent_id": unit.ParentID})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"/org-units/"+unit.ID)
	writeJSON(w, http.StatusCreated, unit)
}

// getOrgUnit answers with the unit and everything below it, in tree order.
func (api *API) getOrgUnit(w http.ResponseWriter, r *http.Request, a Actor) {
	ctx := r.Context()
	_, t, err := api.unitTarget(ctx, r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if !require(w, a, ActionOrgRead, t) {
		return
	}
	list, err := api.OrgUnits.Subtree(ctx, r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

func (api *API) patchOrgUnit(w http.ResponseWriter, r *http.Request, a Actor) {
	ctx := r.Context()
	var in patchOrgUnitRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	_, t, err := api.unitTarget(ctx, id)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if !require(w, a, ActionOrgWrite, t) {
		return
	}
	if in.ParentID != nil {
		// Moving needs the right over the new place too; a root is a super
		// admin's decision.
		dest := Target{}
		if *in.ParentID != "" {
			if _, dest, err = api.unitTarget(ctx, *in.ParentID); err != nil {
				writeProblem(w, validationProblem([]FieldError{{Field: "parent_id", Reason: "is not a known org unit"}}))
				return
			}
		}
		if !require(w, a, ActionOrgCreate, dest) {
			return
		}
	}
	var unit *users.OrgUnit
	err = api.DB.InTx(ctx, func(ctx context.Context) error {
		details := map[string]string{}
		if in.Name != nil {
			if err := api.OrgUnits.Rename(ctx, id, *in.Name); err != nil {
				return err
			}
			details["name"] = *in.Name
		}
		if in.ParentID != nil {
			if err := api.OrgUnits.Move(ctx, id, *in.ParentID); err != nil {
				return err
			}
			details["parent_id"] = *in.ParentID
		}
		var err error
		if unit, err = api.OrgUnits.Get(ctx, id); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionOrgUpdate, id, details)
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, unit)
}

// deleteOrgUnit removes an empty unit; one with members or sub-units is
// refused with 409.
func (api *API) deleteOrgUnit(w http.ResponseWriter, r *http.Request, a Actor) {
	ctx := r.Context()
	id := r.PathValue("id")
	_, t, err := api.unitTarget(ctx, id)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if !require(w, a, ActionOrgWrite, t) {
		return
	}
	err = api.DB.InTx(ctx, func(ctx context.Context) error {
		if err := api.OrgUnits.Delete(ctx, id); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionOrgDelete, id, nil)
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

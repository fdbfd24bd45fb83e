package admin

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/govsso/sso/users"
)

// Audit actions of enterprises.
const (
	actionEnterpriseCreate      = "enterprise.create"
	actionEnterpriseAgentAdd    = "enterprise.agent_add"
	actionEnterpriseAgentRemove = "enterprise.agent_remove"
	actionEnterpriseTransferRep = "enterprise.transfer_legal_representative"
)

// ownerRoutes are open to a signed-in person without an admin role; their
// handlers let through only the target's owner (Target.Owner).
var ownerRoutes = map[string]bool{
	"GET /enterprises/{id}":                                true,
	"POST /enterprises/{id}/agents":                        true,
	"DELETE /enterprises/{id}/agents/{user_id}":            true,
	"POST /enterprises/{id}:transfer-legal-representative": true,
}

// createEnterpriseRequest is the body of POST /enterprises.
type createEnterpriseRequest struct {
	CreditCode string `json:"credit_code"`
	Name       string `json:"name"`
	LegalRepID string `json:"legal_representative_id"`
}

// enterpriseView is an enterprise with who may act for it.
type enterpriseView struct {
	*users.Enterprise
	Agents []users.Agent `json:"agents"`
}

var errNoEnterprises = problem(http.StatusServiceUnavailable, "unavailable", "Enterprises are off", "the server keeps no enterprises")

func (api *API) createEnterprise(w http.ResponseWriter, r *http.Request, a Actor) {
	var in createEnterpriseRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	if !require(w, a, ActionEnterpriseCreate, Target{}) {
		return
	}
	if api.Enterprises == nil {
		writeProblem(w, errNoEnterprises)
		return
	}
	// Name every invalid field at once; the store checks them one by one.
	var fields []FieldError
	if _, err := users.NormalizeCreditCode(in.CreditCode); err != nil {
		fields = append(fields, FieldError{Field: "credit_code", Reason: err.Error()})
	}
	if name := strings.TrimSpace(in.Name); name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > users.MaxDisplayName {
		fields = append(fields, FieldError{Field: "name", Reason: "must be 1 to 64 characters of text"})
	}
	if in.LegalRepID == "" {
		fields = append(fields, FieldError{Field: "legal_representative_id", Reason: "is required"})
	} else if u, err := api.Users.Get(r.Context(), in.LegalRepID); err != nil || u.Status == users.StatusDeleted {
		fields = append(fields, FieldError{Field: "legal_representative_id", Reason: "is not a known account"})
	}
	if len(fields) > 0 {
		writeProblem(w, validationProblem(fields))
		return
	}
	var ent *users.Enterprise
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		var err error
		if ent, err = api.Enterprises.Create(ctx, in.CreditCode, in.Name, in.LegalRepID); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionEnterpriseCreate, ent.ID, map[string]string{"credit_code": ent.CreditCode, "legal_representative_id": ent.LegalRepID})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"/enterprises/"+ent.ID)
	api.writeEnterprise(w, r, http.StatusCreated, ent)
}

// loadEnterprise fetches the path's enterprise and checks the actor may do
// action to it; on false the answer has been written.
func (api *API) loadEnterprise(w http.ResponseWriter, r *http.Request, a Actor, action Action) (*users.Enterprise, bool) {
	if api.Enterprises == nil {
		writeProblem(w, errNoEnterprises)
		return nil, false
	}
	ent, err := api.Enterprises.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return nil, false
	}
	return ent, require(w, a, action, Target{Owner: ent.LegalRepID})
}

func (api *API) writeEnterprise(w http.ResponseWriter, r *http.Request, status int, ent *users.Enterprise) {
	agents, err := api.Enterprises.Agents(r.Context(), ent.ID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if agents == nil {
		agents = []users.Agent{}
	}
	writeJSON(w, status, enterpriseView{Enterprise: ent, Agents: agents})
}

func (api *API) getEnterprise(w http.ResponseWriter, r *http.Request, a Actor) {
	if ent, ok := api.loadEnterprise(w, r, a, ActionEnterpriseRead); ok {
		api.writeEnterprise(w, r, http.StatusOK, ent)
	}
}

// agentRequest is the body of POST /enterprises/{id}/agents.
type agentRequest struct {
	UserID string `json:"user_id"`
}

func (api *API) addAgent(w http.ResponseWriter, r *http.Request, a Actor) {
	var in agentRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	ent, ok := api.loadEnterprise(w, r, a, ActionEnterpriseAgents)
	if !ok {
		return
	}
	if !api.knownPerson(w, r, "user_id", in.UserID) {
		return
	}
	api.changeEnterprise(w, r, a, ent.ID, actionEnterpriseAgentAdd, in.UserID, func(ctx context.Context) error {
		return api.Enterprises.AddAgent(ctx, ent.ID, in.UserID)
	})
}

func (api *API) removeAgent(w http.ResponseWriter, r *http.Request, a Actor) {
	ent, ok := api.loadEnterprise(w, r, a, ActionEnterpriseAgents)
	if !ok {
		return
	}
	userID := r.PathValue("user_id")
	if userID == ent.LegalRepID {
		writeProblem(w, problem(http.StatusConflict, "legal-representative", "Cannot remove the legal representative",
			"transfer the legal representative to another person first"))
		return
	}
	api.changeEnterprise(w, r, a, ent.ID, actionEnterpriseAgentRemove, userID, func(ctx context.Context) error {
		return api.Enterprises.RemoveAgent(ctx, ent.ID, userID)
	})
}

// transferRequest is the body of POST /enterprises/{id}:transfer-legal-representative.
type transferRequest struct {
	LegalRepID string `json:"legal_representative_id"`
}

func (api *API) transferLegalRep(w http.ResponseWriter, r *http.Request, a Actor) {
	var in transferRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	ent, ok := api.loadEnterprise(w, r, a, ActionEnterpriseAgents)
	if !ok {
		return
	}
	if !api.knownPerson(w, r, "legal_representative_id", in.LegalRepID) {
		return
	}
	api.changeEnterprise(w, r, a, ent.ID, actionEnterpriseTransferRep, in.LegalRepID, func(ctx context.Context) error {
		return api.Enterprises.TransferLegalRepresentative(ctx, ent.ID, in.LegalRepID)
	})
}

// knownPerson answers a validation problem naming field unless id is an
// account that is not deleted.
func (api *API) knownPerson(w http.ResponseWriter, r *http.Request, field, id string) bool {
	if id == "" {
		writeProblem(w, validationProblem([]FieldError{{Field: field, Reason: "is required"}}))
		return false
	}
	u, err := api.Users.Get(r.Context(), id)
	if err != nil || u.Status == users.StatusDeleted {
		writeProblem(w, validationProblem([]FieldError{{Field: field, Reason: "is not a known account"}}))
		return false
	}
	return true
}

// changeEnterprise runs change and audits it in one transaction, and
// answers with the enterprise as it now is.
func (api *API) changeEnterprise(w http.ResponseWriter, r *http.Request, a Actor, id, action, userID string, change func(context.Context) error) {
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		if err := change(ctx); err != nil {
			return err
		}
		return api.record(ctx, r, a, action, id, map[string]string{"user_id": userID})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	ent, err := api.Enterprises.Get(r.Context(), id)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	api.writeEnterprise(w, r, http.StatusOK, ent)
}

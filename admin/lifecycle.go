package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/users"
)

// Grants withdraws what clients hold for people (oauth.Provider).
type Grants interface {
	RevokeUserGrants(ctx context.Context, userID string) (oauth.GrantsRevoked, error)
	RevokeUserClientGrant(ctx context.Context, userID, clientID string) (oauth.GrantsRevoked, error)
	RevokeClientGrants(ctx context.Context, clientID string) (oauth.GrantsRevoked, error)
}

// Audit actions of account deletion, sessions and consents.
const (
	actionUserDelete          = "user.delete"
	actionUserRevokeConsents  = "user.revoke_consents"
	actionClientRevokeConsent = "client.revoke_consents"
)

var errSelfDelete = problem(http.StatusConflict, "self-delete", "Cannot delete yourself", "ask another administrator to delete your account")

// deleteUser soft-deletes an account: it can no longer sign in, its
// sessions, consents and tokens end now, and its personal data is erased
// after the retention (users.Eraser).
func (api *API) deleteUser(w http.ResponseWriter, r *http.Request, a Actor) {
	u, ok := api.loadUser(w, r, a, ActionUserDelete)
	if !ok {
		return
	}
	if u.ID == a.UserID {
		writeProblem(w, errSelfDelete)
		return
	}
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		if _, err := api.Users.SoftDelete(ctx, u.ID, time.Now()); err != nil {
			return err
		}
		sessions, err := api.Sessions.RevokeAllForUser(ctx, u.ID)
		if err != nil {
			return err
		}
		details := map[string]string{"sessions": strconv.FormatInt(sessions, 10)}
		if api.OnDelete != nil {
			if err := api.OnDelete(ctx, u.ID); err != nil {
				return err
			}
		}
		if api.Grants != nil {
			n, err := api.Grants.RevokeUserGrants(ctx, u.ID)
			if err != nil {
				return err
			}
			details["consents"], details["tokens"] = strconv.FormatInt(n.Consents, 10), strconv.FormatInt(n.Tokens, 10)
		}
		return api.record(ctx, r, a, actionUserDelete, u.ID, details)
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sessionView is a browser session as administrators see it: never its
// cookie token, which is not stored anyway.
type sessionView struct {
	ID         string    `json:"id"`
	AuthTime   time.Time `json:"auth_time"`
	AMR        []string  `json:"amr"`
	ACR        int       `json:"acr"`
	ActingFor  string    `json:"acting_for,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

func (api *API) listUserSessions(w http.ResponseWriter, r *http.Request, a Actor) {
	u, ok := api.loadUser(w, r, a, ActionUserRead)
	if !ok {
		return
	}
	list, err := api.Sessions.ListForUser(r.Context(), u.ID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	items := make([]sessionView, 0, len(list))
	for _, s := range list {
		items = append(items, sessionView{ID: s.ID, AuthTime: s.AuthTime, AMR: s.AMR, ACR: s.ACR, ActingFor: s.ActingFor,
			CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt, IP: s.IP, UserAgent: s.UserAgent})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// revokeUserSession ends one session, which must be the account's.
func (api *API) revokeUserSession(w http.ResponseWriter, r *http.Request, a Actor) {
	u, ok := api.loadUser(w, r, a, ActionUserWrite)
	if !ok {
		return
	}
	sid := r.PathValue("session_id")
	list, err := api.Sessions.ListForUser(r.Context(), u.ID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if !slices.ContainsFunc(list, func(s *users.Session) bool { return s.ID == sid }) {
		writeProblem(w, problem(http.StatusNotFound, "not-found", "Not found", "the account has no such live session"))
		return
	}
	err = api.DB.InTx(r.Context(), func(ctx context.Context) error {
		if err := api.Sessions.Revoke(ctx, sid); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionUserRevokeSessions, u.ID, map[string]string{"session_id": sid, "revoked": "1"})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"revoked": 1})
}

func (api *API) listUserConsents(w http.ResponseWriter, r *http.Request, a Actor) {
	u, ok := api.loadUser(w, r, a, ActionUserRead)
	if !ok {
		return
	}
	list, err := api.Clients.ListConsents(r.Context(), u.ID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []oauth.Consent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

// revokeUserConsents withdraws the person's consents and the tokens that
// came with them: of every client, or of the one named by ?client_id=.
func (api *API) revokeUserConsents(w http.ResponseWriter, r *http.Request, a Actor) {
	q := r.URL.Query()
	var fields []FieldError
	for key := range q {
		if key != "client_id" {
			fields = append(fields, FieldError{Field: key, Reason: "is not a known query parameter"})
		}
	}
	if len(fields) > 0 {
		writeProblem(w, validationProblem(fields))
		return
	}
	u, ok := api.loadUser(w, r, a, ActionUserWrite)
	if !ok {
		return
	}
	if api.Grants == nil {
		writeProblem(w, problem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", "grants cannot be revoked here"))
		return
	}
	clientID := q.Get("client_id")
	var n oauth.GrantsRevoked
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		var err error
		if clientID != "" {
			n, err = api.Grants.RevokeUserClientGrant(ctx, u.ID, clientID)
		} else {
			n, err = api.Grants.RevokeUserGrants(ctx, u.ID)
		}
		if err != nil {
			return err
		}
		return api.record(ctx, r, a, actionUserRevokeConsents, u.ID, map[string]string{"client_id": clientID,
			"consents": strconv.FormatInt(n.Consents, 10), "tokens": strconv.FormatInt(n.Tokens, 10)})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (api *API) listClientConsents(w http.ResponseWriter, r *http.Request, a Actor) {
	c, ok := api.loadClient(w, r, a, ActionClientRead)
	if !ok {
		return
	}
	list, err := api.Clients.ListClientConsents(r.Context(), c.ID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

// revokeClientConsents withdraws every person's consent to the client and
// the tokens it holds for people, so everyone must consent again.
func (api *API) revokeClientConsents(w http.ResponseWriter, r *http.Request, a Actor) {
	c, ok := api.loadClient(w, r, a, ActionClientWrite)
	if !ok {
		return
	}
	if api.Grants == nil {
		writeProblem(w, problem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", "grants cannot be revoked here"))
		return
	}
	var n oauth.GrantsRevoked
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		var err error
		if n, err = api.Grants.RevokeClientGrants(ctx, c.ID); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionClientRevokeConsent, c.ID, map[string]string{"client_id": c.ID,
			"consents": strconv.FormatInt(n.Consents, 10), "tokens": strconv.FormatInt(n.Tokens, 10)})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// loadClient fetches the path's client and checks the actor may do action
// to it; on false the answer has been written.
func (api *API) loadClient(w http.ResponseWriter, r *http.Request, a Actor, action Action) (*oauth.Client, bool) {
	c, err := api.Clients.GetClient(r.Context(), r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return nil, false
	}
	t, err := api.clientTarget(r.Context(), c)
	if err != nil {
		api.writeError(w, r, err)
		return nil, false
	}
	return c, require(w, a, action, t)
}

// clientTarget is where a client sits in the org tree: its department's
// unit. A client in no unit (or in one since deleted) is for client
// managers and super admins only.
func (api *API) clientTarget(ctx context.Context, c *oauth.Client) (Target, error) {
	if c.OrgUnitID == "" {
		return Target{}, nil
	}
	unit, err := api.OrgUnits.Get(ctx, c.OrgUnitID)
	if errors.Is(err, db.ErrNotFound) {
		return Target{}, nil
	}
	if err != nil {
		return Target{}, err
	}
	return Target{OrgPaths: []string{unit.Path}}, nil
}

// unitTargetField is the target of an org_unit_id given in a request: a
// validation problem when the unit does not exist.
func (api *API) unitTargetField(ctx context.Context, unitID string) (Target, error) {
	if unitID == "" {
		return Target{}, nil
	}
	unit, err := api.OrgUnits.Get(ctx, unitID)
	if errors.Is(err, db.ErrNotFound) {
		return Target{}, validationProblem([]FieldError{{Field: "org_unit_id", Reason: "is not a known org unit"}})
	}
	if err != nil {
		return Target{}, err
	}
	return Target{OrgPaths: []string{unit.Path}}, nil
}

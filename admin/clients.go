package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/oauth"
)

// clientWithSecret is a client as created or re-keyed: the only answers
// that carry the secret, which is stored hashed and never shown again.
type clientWithSecret struct {
	*oauth.Client
	ClientSecret string `json:"client_secret,omitempty"`
}

// usesSecret reports whether the client authenticates with a shared secret.
func usesSecret(c *oauth.Client) bool {
	return !c.Public && (c.TokenEndpointAuthMethod == oauth.AuthMethodSecretBasic || c.TokenEndpointAuthMethod == oauth.AuthMethodSecretPost)
}

func (api *API) createClient(w http.ResponseWriter, r *http.Request, a Actor) {
	var c oauth.Client
	if err := decode(w, r, &c); err != nil {
		api.writeError(w, r, err)
		return
	}
	target, err := api.unitTargetField(r.Context(), c.OrgUnitID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if !require(w, a, ActionClientWrite, target) {
		return
	}
	c.ApplyDefaults()
	var secret string
	if usesSecret(&c) {
		if secret, err = oauth.GenerateSecret(); err != nil {
			api.writeError(w, r, err)
			return
		}
		c.SecretHash = api.Secrets.Hash(secret)
	}
	err = api.DB.InTx(r.Context(), func(ctx context.Context) error {
		if err := api.Clients.CreateClient(ctx, &c); err != nil {
			return err
		}
		return api.record(ctx, r, a, audit.ActionClientCreate, c.ID, map[string]string{"client_id": c.ID})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"/clients/"+c.ID)
	writeJSON(w, http.StatusCreated, clientWithSecret{Client: &c, ClientSecret: secret})
}

// listClients answers with every client to client managers, and with the
// clients of their subtrees to org admins.
func (api *API) listClients(w http.ResponseWriter, r *http.Request, a Actor) {
	all := Allowed(a, ActionClientRead, Target{})
	if !all && !a.Has(RoleOrgAdmin) {
		writeProblem(w, errForbidden)
		return
	}
	list, err := api.Clients.ListClients(r.Context())
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	items := []*oauth.Client{}
	for _, c := range list {
		if !all {
			t, err := api.clientTarget(r.Context(), c)
			if err != nil {
				api.writeError(w, r, err)
				return
			}
			if !Allowed(a, ActionClientRead, t) {
				continue
			}
		}
		items = append(items, c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (api *API) getClient(w http.ResponseWriter, r *http.Request, a Actor) {
	if c, ok := api.loadClient(w, r, a, ActionClientRead); ok {
		writeJSON(w, http.StatusOK, c)
	}
}

// patchClient applies the fields present in the body onto the stored
// client (a JSON merge of one level) and validates the result as a whole.
func (api *API) patchClient(w http.ResponseWriter, r *http.Request, a Actor) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var fields struct {
		OrgUnitID *string `json:"org_unit_id"`
	}
	if err == nil {
		err = decodeBytes(body, &oauth.Client{}) // refuse bad bodies before locking the row
	}
	if err == nil {
		err = json.Unmarshal(body, &fields)
	}
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if _, ok := api.loadClient(w, r, a, ActionClientWrite); !ok {
		return
	}
	if fields.OrgUnitID != nil {
		// Moving a client needs the right over its new department too.
		dest, err := api.unitTargetField(r.Context(), *fields.OrgUnitID)
		if err != nil {
			api.writeError(w, r, err)
			return
		}
		if !require(w, a, ActionClientWrite, dest) {
			return
		}
	}
	id := r.PathValue("id")
	var out *oauth.Client
	err = api.DB.InTx(r.Context(), func(ctx context.Context) error {
		c, err := api.Clients.UpdateClient(ctx, id, func(c *oauth.Client) error { return decodeBytes(body, c) })
		if err != nil {
			return err
		}
		out = c
		return api.record(ctx, r, a, actionClientUpdate, id, map[string]string{"client_id": id})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// rotateSecretRequest is the optional body of POST
// /clients/{id}:rotate-secret: an overlap shorter than the configured one
// ("0s" ends the old secret at once).
type rotateSecretRequest struct {
	Overlap string `json:"overlap"`
}

// rotatedClient is the answer of a rotation: the new secret, shown once,
// and until when the old one still works.
type rotatedClient struct {
	clientWithSecret
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
}

// rotateSecret replaces the client's secret and shows the new one; the old
// one keeps working for the overlap, so the department can deploy the new
// one without an outage.
func (api *API) rotateSecret(w http.ResponseWriter, r *http.Request, a Actor) {
	var in rotateSecretRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &in); err != nil {
			api.writeError(w, r, err)
			return
		}
	}
	overlap := max(api.SecretOverlap, 0)
	if in.Overlap != "" {
		d, err := time.ParseDuration(in.Overlap)
		if err != nil || d < 0 || d > overlap {
			writeProblem(w, validationProblem([]FieldError{{Field: "overlap",
				Reason: "must be a duration such as 30m or 2h, from 0s to " + overlap.String()}}))
			return
		}
		overlap = d
	}
	if _, ok := api.loadClient(w, r, a, ActionClientWrite); !ok {
		return
	}
	secret, err := oauth.GenerateSecret()
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	var out *oauth.Client
	err = api.DB.InTx(r.Context(), func(ctx context.Context) error {
		c, err := api.Clients.UpdateClient(ctx, id, func(c *oauth.Client) error {
			if !usesSecret(c) {
				return validationProblem([]FieldError{{Field: "token_endpoint_auth_method", Reason: "the client does not authenticate with a secret"}})
			}
			c.RotateSecret(api.Secrets.Hash(secret), time.Now(), overlap)
			return nil
		})
		if err != nil {
			return err
		}
		out = c
		return api.record(ctx, r, a, actionClientRotateSecret, id, map[string]string{"client_id": id, "overlap": overlap.String()})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rotatedClient{clientWithSecret: clientWithSecret{Client: out, ClientSecret: secret},
		PreviousSecretExpiresAt: out.PreviousSecretExpiresAt})
}

func (api *API) deleteClient(w http.ResponseWriter, r *http.Request, a Actor) {
	if _, ok := api.loadClient(w, r, a, ActionClientWrite); !ok {
		return
	}
	id := r.PathValue("id")
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		if err := api.Clients.DeleteClient(ctx, id); err != nil {
			return err
		}
		if api.Webhooks != nil {
			if err := api.Webhooks.UnsubscribeClient(ctx, id); err != nil {
				return err
			}
		}
		return api.record(ctx, r, a, audit.ActionClientDelete, id, map[string]string{"client_id": id})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

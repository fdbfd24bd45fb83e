package admin

import (
	"context"
	"io"
	"net/http"

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
	if !require(w, a, ActionClientWrite, Target{}) {
		return
	}
	var c oauth.Client
	if err := decode(w, r, &c); err != nil {
		api.writeError(w, r, err)
		return
	}
	c.ApplyDefaults()
	var secret string
	if usesSecret(&c) {
		var err error
		if secret, err = oauth.GenerateSecret(); err != nil {
			api.writeError(w, r, err)
			return
		}
		c.SecretHash = api.Secrets.Hash(secret)
	}
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
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

func (api *API) listClients(w http.ResponseWriter, r *http.Request, a Actor) {
	if !require(w, a, ActionClientRead, Target{}) {
		return
	}
	list, err := api.Clients.ListClients(r.Context())
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []*oauth.Client{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

func (api *API) getClient(w http.ResponseWriter, r *http.Request, a Actor) {
	if !require(w, a, ActionClientRead, Target{}) {
		return
	}
	c, err := api.Clients.GetClient(r.Context(), r.PathValue("id"))
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// patchClient applies the fields present in the body onto the stored
// client (a JSON merge of one level) and validates the result as a whole.
func (api *API) patchClient(w http.ResponseWriter, r *http.Request, a Actor) {
	if !require(w, a, ActionClientWrite, Target{}) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = decodeBytes(body, &oauth.Client{}) // refuse bad bodies before locking the row
	}
	if err != nil {
		api.writeError(w, r, err)
		return
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

// rotateSecret replaces the client's secret at once and shows the new one.
func (api *API) rotateSecret(w http.ResponseWriter, r *http.Request, a Actor) {
	if !require(w, a, ActionClientWrite, Target{}) {
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
			c.SecretHash = api.Secrets.Hash(secret)
			return nil
		})
		if err != nil {
			return err
		}
		out = c
		return api.record(ctx, r, a, actionClientRotateSecret, id, map[string]string{"client_id": id})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, clientWithSecret{Client: out, ClientSecret: secret})
}

func (api *API) deleteClient(w http.ResponseWriter, r *http.Request, a Actor) {
	if !require(w, a, ActionClientWrite, Target{}) {
		return
	}
	id := r.PathValue("id")
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		if err := api.Clients.DeleteClient(ctx, id); err != nil {
			return err
		}
		return api.record(ctx, r, a, audit.ActionClientDelete, id, map[string]string{"client_id": id})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

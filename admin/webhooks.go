package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// Change events: the accounts' own come from users.SQLStore's listener
// (webhooks.Listener); the API adds those of memberships here, in the
// transaction of the change, and manages the subscriptions.

// Audit actions of subscriptions.
const (
	actionWebhookSubscribe   = "webhook.subscribe"
	actionWebhookUnsubscribe = "webhook.unsubscribe"
)

// emit writes events to the outbox in ctx's transaction; without Webhooks
// it does nothing.
func (api *API) emit(ctx context.Context, events ...webhooks.Event) error {
	if api.Webhooks == nil {
		return nil
	}
	return api.Webhooks.Emit(ctx, events...)
}

// WebhookScope is webhooks.Dispatcher.InScope: a client that belongs to
// an org unit hears of membership changes in that unit's subtree, and of
// accounts that belong to a unit there or to none (citizens, enterprise
// people); a client of no unit, registered for the whole city, hears of
// everything. So the admin of a town, who may register the town's systems
// and subscribe them, learns through events no more of another town's
// staff than the API would show it.
func (api *API) WebhookScope(ctx context.Context, clientID string, s webhooks.Subject) (bool, error) {
	c, err := api.Clients.GetClient(ctx, clientID)
	if errors.Is(err, db.ErrNotFound) {
		return false, nil // deleted since: its subscriptions go with it
	}
	if err != nil || c.OrgUnitID == "" {
		return err == nil, err
	}
	scope, err := api.OrgUnits.Get(ctx, c.OrgUnitID)
	if errors.Is(err, db.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var units []*users.OrgUnit
	if s.OrgUnitID != "" {
		unit, err := api.OrgUnits.Get(ctx, s.OrgUnitID)
		if errors.Is(err, db.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		units = []*users.OrgUnit{unit}
	} else if units, err = api.OrgUnits.UnitsOf(ctx, s.UserID); err != nil {
		return false, err
	} else if len(units) == 0 {
		return true, nil
	}
	paths := make([]string, len(units))
	for i, u := range units {
		paths[i] = u.Path
	}
	return withinScope([]string{scope.Path}, paths, false), nil
}

// subscribeRequest is the body of POST /clients/{id}/webhooks.
type subscribeRequest struct {
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
}

func (api *API) webhooksOff(w http.ResponseWriter) bool {
	if api.Webhooks == nil {
		writeProblem(w, problem(http.StatusServiceUnavailable, "unavailable", "Webhooks off", "change events are not configured on this server"))
		return true
	}
	return false
}

func (api *API) createWebhook(w http.ResponseWriter, r *http.Request, a Actor) {
	var in subscribeRequest
	if err := decode(w, r, &in); err != nil {
		api.writeError(w, r, err)
		return
	}
	c, ok := api.loadClient(w, r, a, ActionClientWrite)
	if !ok || api.webhooksOff(w) {
		return
	}
	var s *webhooks.Subscription
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		var err error
		if s, err = api.Webhooks.Subscribe(ctx, c.ID, in.URL, in.EventTypes); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionWebhookSubscribe, c.ID, map[string]string{"subscription": s.ID, "url": s.URL})
	})
	var v *webhooks.ValidationError
	if errors.As(err, &v) {
		fields := make([]FieldError, len(v.Fields))
		for i, f := range v.Fields {
			fields[i] = FieldError{Field: f.Field, Reason: f.Reason}
		}
		writeProblem(w, validationProblem(fields))
		return
	}
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"/clients/"+c.ID+"/webhooks/"+s.ID)
	writeJSON(w, http.StatusCreated, s)
}

func (api *API) listWebhooks(w http.ResponseWriter, r *http.Request, a Actor) {
	c, ok := api.loadClient(w, r, a, ActionClientRead)
	if !ok || api.webhooksOff(w) {
		return
	}
	list, err := api.Webhooks.Subscriptions(r.Context(), c.ID)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []*webhooks.Subscription{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

func (api *API) deleteWebhook(w http.ResponseWriter, r *http.Request, a Actor) {
	c, ok := api.loadClient(w, r, a, ActionClientWrite)
	if !ok || api.webhooksOff(w) {
		return
	}
	id := r.PathValue("webhook_id")
	err := api.DB.InTx(r.Context(), func(ctx context.Context) error {
		if err := api.Webhooks.Unsubscribe(ctx, c.ID, id); err != nil {
			return err
		}
		return api.record(ctx, r, a, actionWebhookUnsubscribe, c.ID, map[string]string{"subscription": id})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listWebhookDeliveries is the delivery log: every attempt, newest first.
func (api *API) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, a Actor) {
	c, ok := api.loadClient(w, r, a, ActionClientRead)
	if !ok || api.webhooksOff(w) {
		return
	}
	q := r.URL.Query()
	limit := 100
	var fields []FieldError
	for key := range q {
		if key != "before" && key != "limit" {
			fields = append(fields, FieldError{Field: key, Reason: "is not a known query parameter"})
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fields = append(fields, FieldError{Field: "limit", Reason: "must be a whole number from 1 to 1000"})
		}
		limit = n
	}
	if len(fields) > 0 {
		writeProblem(w, validationProblem(fields))
		return
	}
	s, err := api.Webhooks.Get(r.Context(), c.ID, r.PathValue("webhook_id"))
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	items, next, err := api.Webhooks.Attempts(r.Context(), s.ID, q.Get("before"), limit)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next": next})
}

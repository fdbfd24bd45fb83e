package webhooks_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/webhooks"
)

func newHub(t *testing.T, d *db.DB) *webhooks.Hub {
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return webhooks.NewHub(d, k)
}

// receiver is a department system that fails its first failures requests,
// checks every signature and counts what it accepted per event id.
type receiver struct {
	mu       sync.Mutex
	secret   string
	failures int
	calls    int
	accepted map[string]int
	badSig   int
	types    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if !webhooks.Verify(rc.secret, r.Header.Get(webhooks.HeaderTimestamp), r.Header.Get(webhooks.HeaderSignature), body, time.Now(), 5*time.Minute) {
		rc.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rc.calls <= rc.failures {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var e webhooks.Event
	json.Unmarshal(body, &e)
	if e.ID != r.Header.Get(webhooks.HeaderEventID) {
		http.Error(w, "id mismatch", http.StatusBadRequest)
		return
	}
	rc.accepted[e.ID]++
	rc.types = append(rc.types, e.Type)
}

func TestDeliveredOnceAfterTwoFailures(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		hub := newHub(t, d)
		rc := &receiver{failures: 2, accepted: map[string]int{}}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		sub, err := hub.Subscribe(ctx, "hr-system", srv.URL+"/hook", []string{webhooks.UserCreated, webhooks.UserDisabled})
		if err != nil {
			t.Fatal(err)
		}
		rc.secret = sub.Secret
		// An event of a rolled-back change is never sent.
		err = d.InTx(ctx, func(ctx context.Context) error {
			if err := hub.Emit(ctx, webhooks.Event{Type: webhooks.UserCreated, Data: map[string]string{"id": "ghost"}}); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		if err == nil {
			t.Fatal("no error")
		}
		if err := hub.Emit(ctx, webhooks.Event{ID: "ev-1", Type: webhooks.UserCreated, Data: map[string]string{"id": "u1"}},
			webhooks.Event{ID: "ev-2", Type: webhooks.UserUpdated, Data: map[string]string{"id": "u1"}}); err != nil { // not subscribed
			t.Fatal(err)
		}
		now := time.Now()
		clock := func() time.Time { return now }
		disp := &webhooks.Dispatcher{Hub: hub, Now: clock}
		for i := 0; i < 6; i++ {
			if i == 3 {
				// A node restarting: a new dispatcher finds the outbox as it was.
				disp = &webhooks.Dispatcher{Hub: hub, Now: clock}
			}
			disp.DeliverDue(ctx)
			now = now.Add(10 * time.Second) // past every backoff so far
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.calls != 3 || rc.badSig != 0 || len(rc.accepted) != 1 || rc.accepted["ev-1"] != 1 {
			t.Fatalf("calls %d, bad signatures %d, accepted %v; want 3 calls and ev-1 once", rc.calls, rc.badSig, rc.accepted)
		}
		log, _, err := hub.Attempts(ctx, sub.ID, "", 10)
		if err != nil || len(log) != 3 {
			t.Fatalf("log %+v %v", log, err)
		}
		if log[0].StatusCode != 200 || log[0].Attempt != 3 || log[1].StatusCode != 503 || log[2].Error == "" {
			t.Fatalf("log %+v", log)
		}
	})
}

func TestBackoffWaitsBetweenAttempts(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		hub := newHub(t, d)
		rc := &receiver{failures: 100, accepted: map[string]int{}}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		sub, _ := hub.Subscribe(ctx, "c", srv.URL, []string{webhooks.UserDeleted})
		rc.secret = sub.Secret
		hub.Emit(ctx, webhooks.Event{Type: webhooks.UserDeleted})
		now := time.Now()
		disp := &webhooks.Dispatcher{Hub: hub, Now: func() time.Time { return now }}
		// Failures at t=0, then due after 1 s, then 2 s, then 4 s.
		for _, step := range []struct {
			advance time.Duration
			want    int
		}{{0, 1}, {500 * time.Millisecond, 0}, {600 * time.Millisecond, 1}, {1900 * time.Millisecond, 0}, {200 * time.Millisecond, 1}, {3 * time.Second, 0}, {1100 * time.Millisecond, 1}} {
			now = now.Add(step.advance)
			n, _ := disp.DeliverDue(ctx)
			if n != step.want {
				t.Fatalf("after +%v: %d sent, want %d", step.advance, n, step.want)
			}
		}
	})
}

func TestTwoNodesSendEachEventOnce(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		hub := newHub(t, d)
		rc := &receiver{accepted: map[string]int{}}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		sub, _ := hub.Subscribe(ctx, "c", srv.URL, []string{webhooks.MembershipAdded})
		rc.secret = sub.Secret
		var events []webhooks.Event
		for i := 0; i < 120; i++ {
			events = append(events, webhooks.Event{Type: webhooks.MembershipAdded})
		}
		if err := hub.Emit(ctx, events...); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				disp := &webhooks.Dispatcher{Hub: hub}
				for {
					n, err := disp.DeliverDue(ctx)
					if err != nil && !errors.Is(err, db.ErrSerialization) && !errors.Is(err, db.ErrUnavailable) {
						t.Error(err)
						return
					}
					if n == 0 && err == nil {
						return
					}
				}
			})
		}
		wg.Wait()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.accepted) != 120 || rc.calls != 120 {
			t.Fatalf("%d events accepted in %d calls, want 120 in 120", len(rc.accepted), rc.calls)
		}
	})
}

func TestSubscribeValidates(t *testing.T) {
	tests := []struct {
		url   string
		types []string
		ok    bool
	}{
		{"https://hr.example.org/hook", []string{webhooks.UserCreated}, true},
		{"http://localhost:9000/hook", []string{webhooks.UserCreated}, true},
		{"http://127.0.0.1:9000/hook", []string{webhooks.UserCreated}, true},
		{"http://hr.example.org/hook", []string{webhooks.UserCreated}, false},
		{"https://user:pw@hr.example.org/hook", []string{webhooks.UserCreated}, false},
		{"ftp://hr.example.org/", []string{webhooks.UserCreated}, false},
		{"/relative", []string{webhooks.UserCreated}, false},
		{"https://hr.example.org/hook", nil, false},
		{"https://hr.example.org/hook", []string{"user.exploded"}, false},
	}
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		hub := newHub(t, d)
		for _, tt := range tests {
			s, err := hub.Subscribe(context.Background(), "c", tt.url, tt.types)
			var v *webhooks.ValidationError
			if tt.ok != (err == nil) || (!tt.ok && !errors.As(err, &v)) {
				t.Errorf("%s %v: %v", tt.url, tt.types, err)
			}
			if tt.ok && len(s.Secret) < 40 {
				t.Errorf("secret %q too short", s.Secret)
			}
		}
		list, err := hub.Subscriptions(context.Background(), "c")
		if err != nil || len(list) != 3 || list[0].Secret != "" {
			t.Fatalf("list %+v %v (secrets are shown only once)", list, err)
		}
	})
}

func TestSignatureIsHMACOfTimestampAndBody(t *testing.T) {
	// Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
	const want = "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
	got := webhooks.Sign("secret", 1700000000, []byte(`{"a":1}`))
	if got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	now := time.Unix(1700000000, 0)
	if !webhooks.Verify("secret", "1700000000", got, []byte(`{"a":1}`), now, time.Minute) {
		t.Fatal("own signature refused")
	}
	for name, ok := range map[string]bool{
		"other body":   webhooks.Verify("secret", "1700000000", got, []byte(`{"a":2}`), now, time.Minute),
		"other secret": webhooks.Verify("other", "1700000000", got, []byte(`{"a":1}`), now, time.Minute),
		"stale":        webhooks.Verify("secret", "1700000000", got, []byte(`{"a":1}`), now.Add(time.Hour), time.Minute),
	} {
		if ok {
			t.Errorf("%s accepted", name)
		}
	}
}

// TestEventsOutsideTheScopeAreNotSent: the dispatcher asks InScope about
// each delivery's client and subject when it sends; what it refuses is
// settled unsent and stays out of the client's log, and an error from
// InScope leaves the delivery for a later pass.
func TestEventsOutsideTheScopeAreNotSent(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		hub := newHub(t, d)
		receivers := map[string]*receiver{}
		subs := map[string]*webhooks.Subscription{}
		for _, client := range []string{"city-app", "town-a-app"} {
			rc := &receiver{accepted: map[string]int{}}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			sub, err := hub.Subscribe(ctx, client, srv.URL+"/hook", []string{webhooks.UserCreated, webhooks.MembershipAdded})
			if err != nil {
				t.Fatal(err)
			}
			rc.secret, receivers[client], subs[client] = sub.Secret, rc, sub
		}
		if err := hub.Emit(ctx,
			webhooks.Event{ID: "ev-a", Type: webhooks.UserCreated, Data: map[string]any{"user": webhooks.UserData{ID: "u-a", Status: "active"}}},
			webhooks.Event{ID: "ev-b", Type: webhooks.MembershipAdded, Data: map[string]any{"membership": webhooks.MembershipData{UserID: "u-b", OrgUnitID: "town-b", Role: "member"}}},
			// Names no one the scope could place: sent to no one, not retried forever.
			webhooks.Event{ID: "ev-odd", Type: webhooks.UserCreated, Data: map[string]string{"id": "u-x"}},
		); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		asked := map[string]webhooks.Subject{}
		failing := true
		inScope := func(_ context.Context, clientID string, s webhooks.Subject) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				return false, errors.New("directory unavailable")
			}
			asked[clientID+"/"+s.UserID] = s
			return clientID == "city-app" || s.OrgUnitID == "", nil
		}
		now := time.Now()
		disp := &webhooks.Dispatcher{Hub: hub, Now: func() time.Time { return now }, InScope: inScope}
		if _, err := disp.DeliverDue(ctx); err == nil {
			t.Fatal("an InScope error was not reported")
		}
		failing = false
		now = now.Add(time.Minute) // past the lease
		for range 2 {
			disp.DeliverDue(ctx)
			now = now.Add(time.Minute)
		}
		if got := asked["town-a-app/u-b"]; got != (webhooks.Subject{UserID: "u-b", OrgUnitID: "town-b"}) {
			t.Errorf("InScope was asked about %+v for the membership event", got)
		}
		if got := asked["town-a-app/u-a"]; got != (webhooks.Subject{UserID: "u-a"}) {
			t.Errorf("InScope was asked about %+v for the user event", got)
		}
		city, town := receivers["city-app"], receivers["town-a-app"]
		if city.accepted["ev-a"] != 1 || city.accepted["ev-b"] != 1 || city.calls != 2 {
			t.Errorf("the city's system got %v in %d calls, want both events once", city.accepted, city.calls)
		}
		if town.accepted["ev-a"] != 1 || town.calls != 1 {
			t.Errorf("the town's system got %v in %d calls, want only ev-a", town.accepted, town.calls)
		}
		var pending int
		if err := d.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL AND gave_up_at IS NULL`).Scan(&pending); err != nil || pending != 0 {
			t.Errorf("%d deliveries still waiting (%v), want every one settled", pending, err)
		}
		if log, _, err := hub.Attempts(ctx, subs["town-a-app"].ID, "", 10); err != nil || len(log) != 1 || log[0].EventID != "ev-a" {
			t.Errorf("the town's delivery log: %+v, %v; want ev-a alone", log, err)
		}
	})
}

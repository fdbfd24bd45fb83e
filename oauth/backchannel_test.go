package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// verifyLogoutToken checks raw against the published JWKS, as a relying
// party would, and returns its header and claims.
func verifyLogoutToken(t *testing.T, e *logoutEnv, raw string) (jose.Header, map[string]any) {
	t.Helper()
	set, err := e.p.keys.JWKS(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(set, &jwks); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(raw)
	if err != nil {
		t.Fatal(err)
	}
	head := jws.Signatures[0].Header
	keys := jwks.Key(head.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the JWKS", head.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return head, claims
}

func TestLogoutTokenClaims(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	now := time.Now().Truncate(time.Second)
	raw, err := e.p.logoutToken(context.Background(), "tax", "sub-1", "sid-1", now)
	if err != nil {
		t.Fatal(err)
	}
	head, c := verifyLogoutToken(t, e, raw)
	if head.Algorithm != "RS256" || head.ExtraHeaders["typ"] != "logout+jwt" {
		t.Errorf("header alg %q typ %v, want RS256 logout+jwt", head.Algorithm, head.ExtraHeaders["typ"])
	}
	want := map[string]any{"iss": testIssuer, "aud": "tax", "sub": "sub-1", "sid": "sid-1",
		"iat": float64(now.Unix()), "exp": float64(now.Add(2 * time.Minute).Unix())}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
	if jti, _ := c["jti"].(string); len(jti) < 16 {
		t.Errorf("jti %q is not a random identifier", jti)
	}
	events, _ := c["events"].(map[string]any)
	if ev, ok := events[backchannelLogoutEvent].(map[string]any); !ok || len(ev) != 0 || len(events) != 1 {
		t.Errorf("events = %v, want only the back-channel logout event with {}", c["events"])
	}
	if _, ok := c["nonce"]; ok {
		t.Error("a logout token must not carry a nonce")
	}
	again, _ := e.p.logoutToken(context.Background(), "tax", "sub-1", "sid-1", now)
	if _, c2 := verifyLogoutToken(t, e, again); c2["jti"] == c["jti"] {
		t.Error("two logout tokens share a jti")
	}
}

// receiver is a relying party's back-channel endpoint that fails the first
// failures requests.
type receiver struct {
	mu       sync.Mutex
	failures int
	status   int // the failing answer
	tokens   []string
	accepted int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.tokens = append(rc.tokens, r.PostFormValue("logout_token"))
	if len(rc.tokens) <= rc.failures {
		w.WriteHeader(rc.status)
		return
	}
	rc.accepted++
	w.WriteHeader(http.StatusOK)
}

// steppedSender is a logout sender whose clock the test moves.
func steppedSender(e *logoutEnv, start time.Time) (*logoutSender, func(time.Duration)) {
	s := e.p.newLogoutSender()
	now := start
	s.now = func() time.Time { return now }
	return s, func(d time.Duration) { now = now.Add(d) }
}

func (e *logoutEnv) queue(clientID, uri, sid string, at time.Time) {
	e.t.Helper()
	if err := e.store.enqueueLogoutDelivery(context.Background(), &logoutDelivery{ClientID: clientID, URI: uri, Subject: "sub-1", SessionID: sid}, at); err != nil {
		e.t.Fatal(err)
	}
}

func (e *logoutEnv) deliveryEvents(result string) []audit.Event {
	e.t.Helper()
	list, err := e.audit.List(context.Background(), audit.Filter{Action: actionBackchannelLogout, Result: result})
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

func TestLogoutDeliveryRetriesUntilAccepted(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newLogoutEnv(t, d)
		ctx := context.Background()
		rc := &receiver{failures: 2, status: http.StatusServiceUnavailable}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		t0 := time.Now().UTC()
		e.queue("tax", srv.URL+"/bc", "sid-1", t0)
		s, advance := steppedSender(e, t0)

		// Each step: how far the clock moves first, and how many notifications are then due.
		for i, step := range []struct {
			advance time.Duration
			due     int
		}{{0, 1}, {0, 0}, {time.Second, 1}, {time.Second, 0}, {time.Second, 1}, {time.Hour, 0}} {
			advance(step.advance)
			n, err := s.deliverDue(ctx)
			if err != nil || n != step.due {
				t.Fatalf("step %d: %d due, %v; want %d", i, n, err, step.due)
			}
		}
		if len(rc.tokens) != 3 || rc.accepted != 1 {
			t.Fatalf("receiver got %d posts, accepted %d; want 3 and 1", len(rc.tokens), rc.accepted)
		}
		_, c := verifyLogoutToken(t, e, rc.tokens[2])
		if c["aud"] != "tax" || c["sid"] != "sid-1" {
			t.Errorf("delivered token claims %v", c)
		}
		list := e.deliveries("sid-1")
		if len(list) != 1 || list[0].DeliveredAt.IsZero() || list[0].Attempts != 3 || !list[0].GaveUpAt.IsZero() {
			t.Fatalf("outbox row: %+v", list[0])
		}
		if ok, failed := e.deliveryEvents(audit.ResultSuccess), e.deliveryEvents(audit.ResultFailure); len(ok) != 1 || len(failed) != 2 {
			t.Fatalf("audit: %d successes, %d failures; want 1 and 2", len(ok), len(failed))
		} else if !strings.Contains(failed[0].Reason, "503") || failed[0].ClientID != "tax" {
			t.Errorf("failure event %+v", failed[0])
		}
	})
}

func TestLogoutDeliveryGivesUp(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	ctx := context.Background()
	rc := &receiver{failures: 1 << 30, status: http.StatusInternalServerError}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	t0 := time.Now().UTC()
	e.queue("tax", srv.URL+"/bc", "sid-1", t0)
	s, advance := steppedSender(e, t0)
	for attempt := 1; attempt <= deliveryMaxAttempts+1; attempt++ {
		n, err := s.deliverDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[attempt <= deliveryMaxAttempts]; n != want {
			t.Fatalf("attempt %d: %d due, want %d", attempt, n, want)
		}
		advance(deliveryMaxBackoff)
	}
	if len(rc.tokens) != deliveryMaxAttempts {
		t.Fatalf("receiver got %d posts, want %d", len(rc.tokens), deliveryMaxAttempts)
	}
	row := e.deliveries("sid-1")[0]
	if row.GaveUpAt.IsZero() || !row.DeliveredAt.IsZero() || !strings.Contains(row.LastError, "500") {
		t.Fatalf("outbox row: %+v", row)
	}
	failed := e.deliveryEvents(audit.ResultFailure)
	if len(failed) != deliveryMaxAttempts || !strings.HasPrefix(failed[len(failed)-1].Reason, "gave up after 10 attempts") {
		t.Fatalf("%d failure events, last %+v", len(failed), failed[len(failed)-1])
	}
}

func TestLogoutDeliveryDoesNotFollowRedirects(t *testing.T) {
	e := newLogoutEnv(t, dbtest.Open(t, db.SQLite))
	elsewhere := &receiver{}
	target := httptest.NewServer(elsewhere)
	defer target.Close()
	redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/bc", http.StatusTemporaryRedirect))
	defer redirector.Close()
	e.queue("tax", redirector.URL+"/bc", "sid-1", time.Now())
	s, _ := steppedSender(e, time.Now().Add(time.Second))
	if _, err := s.deliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(elsewhere.tokens) != 0 {
		t.Fatal("the logout token followed a redirect")
	}
	if row := e.deliveries("sid-1")[0]; !row.DeliveredAt.IsZero() || !strings.Contains(row.LastError, "307") {
		t.Fatalf("a redirect counted as delivered: %+v", row)
	}
}

func TestDeliveryBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{
		1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 9: 256 * time.Second,
		10: 512 * time.Second, 11: 10 * time.Minute, 64: 10 * time.Minute,
	} {
		if got := deliveryBackoff(attempt); got != want {
			t.Errorf("deliveryBackoff(%d) = %v, want %v", attempt, got, want)
		}
	}
}

package certs

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// fakeUsers is the accounts a signature test knows.
type fakeUsers map[string]*users.User

func (f fakeUsers) Get(_ context.Context, id string) (*users.User, error) {
	if u, ok := f[id]; ok {
		return u, nil
	}
	return nil, db.ErrNotFound
}

// signFixture is a CA, a signature request service and two people: "alice"
// at level 2 and "bob" at level 1. Client "dept" knows alice as "sub-alice"
// and bob as "sub-bob"; other clients know nobody.
type signFixture struct {
	ca    *Service
	clock *testClock
	sr    *SignRequests
	log   *audit.Log
	users fakeUsers
}

func newSignFixture(t *testing.T, d *db.DB) *signFixture {
	t.Helper()
	ca, clock := newTestService(t, d)
	initCA(t, ca)
	key := make([]byte, kek.KeySize)
	rand.Read(key)
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	us := fakeUsers{
		"alice": {ID: "alice", Username: "alice", DisplayName: "王小明", Status: users.StatusActive, AssuranceLevel: 2},
		"bob":   {ID: "bob", Username: "bob", Status: users.StatusActive, AssuranceLevel: 1},
		"carol": {ID: "carol", Username: "carol", Status: users.StatusDisabled, AssuranceLevel: 2},
	}
	sr := NewSignRequests(ca, k, SignRequestConfig{
		ResolveSubject: func(_ context.Context, clientID, sub string) (string, error) {
			if clientID == "dept" && strings.HasPrefix(sub, "sub-") {
				return strings.TrimPrefix(sub, "sub-"), nil
			}
			return "", db.ErrNotFound
		},
		Users: us,
		SignJWT: func(_ context.Context, aud string, claims map[string]any) (string, error) {
			b, _ := json.Marshal(claims)
			return "signed-for-" + aud + "." + base64.RawURLEncoding.EncodeToString(b), nil
		},
	})
	return &signFixture{ca: ca, clock: clock, sr: sr, log: audit.NewLog(d), users: us}
}

func strp(s string) *string { return &s }

func (f *signFixture) create(t *testing.T, doc []byte, sub string) *SignRequest {
	t.Helper()
	r, err := f.sr.Create(context.Background(), "dept", CreateSignRequest{DataBase64: strp(base64.StdEncoding.EncodeToString(doc)),
		Title: "Planning permit application", Sub: sub, CallbackURL: "https://dept.example.test/cb"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r
}

// fresh is a session that signed in just now with a password.
func (f *signFixture) fresh() SignAuth { return SignAuth{AuthTime: f.clock.t, AMR: []string{"pwd"}} }

func (f *signFixture) actions(t *testing.T, subject string) []string {
	t.Helper()
	evs, err := f.log.List(context.Background(), audit.Filter{Subject: subject, Limit: audit.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Action)
	}
	return out
}

func TestSignRequestApproveSignsWithAnIssuedUserCertificate(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newSignFixture(t, d)
		doc := []byte("城市规划许可申请 — the document")
		r := f.create(t, doc, "sub-alice")
		if r.Status != SignPending || r.UserID != "alice" || !r.ExpiresAt.Equal(r.CreatedAt.Add(DefaultSignRequestTTL)) {
			t.Fatalf("created: %+v", r)
		}
		if list, err := f.sr.Pending(ctx, "alice"); err != nil || len(list) != 1 || list[0].ID != r.ID {
			t.Fatalf("pending: %v %v", list, err)
		}
		signed, err := f.sr.Approve(ctx, "alice", r.ID, f.fresh(), users.RequestMeta{IP: "192.0.2.1"})
		if err != nil {
			t.Fatalf("Approve: %v", err)
		}
		got, err := f.sr.ForClient(ctx, "dept", r.ID)
		if err != nil || got.Status != SignSigned || got.DecidedAt == nil || got.DigestOnly {
			t.Fatalf("after approve: %+v %v", got, err)
		}
		cert, err := f.sr.Certificate(ctx, got)
		if err != nil {
			t.Fatal(err)
		}
		pc := parsed(t, cert)
		if cert.OwnerUserID != "alice" || cert.Kind != KindUser || pc.Subject.CommonName != "王小明" ||
			!strings.HasPrefix(pc.Subject.SerialNumber, "P") || len(pc.Subject.SerialNumber) != 21 {
			t.Fatalf("certificate: owner %q kind %s subject %v", cert.OwnerUserID, cert.Kind, pc.Subject)
		}
		res, err := f.ca.Verify(ctx, RawSignature{Data: doc, Signature: got.Signature, Certificate: pc})
		if err != nil || !res.Valid {
			t.Fatalf("raw signature: %+v %v", res, err)
		}
		p7, err := pkcs7.Parse(got.CMS)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := f.ca.VerifyCMS(ctx, p7, doc, false); err != nil || !res.Valid {
			t.Fatalf("cms: %+v %v", res, err)
		}
		if !equalBytes(signed.Signature, got.Signature) {
			t.Fatal("Approve returned a different signature than is stored")
		}
		// A second request reuses the certificate.
		r2 := f.create(t, []byte("another"), "sub-alice")
		s2, err := f.sr.Approve(ctx, "alice", r2.ID, f.fresh(), users.RequestMeta{})
		if err != nil || s2.CertificateID != got.CertificateID {
			t.Fatalf("second approval: cert %q, want %q (%v)", s2.CertificateID, got.CertificateID, err)
		}
		acts := strings.Join(f.actions(t, "alice"), " ")
		for _, want := range []string{"certs.sign_request.create", "certs.issue", "certs.sign", "certs.sign_request.approve"} {
			if !strings.Contains(acts, want) {
				t.Errorf("audit lacks %s: %s", want, acts)
			}
		}
		if cbs, err := f.sr.Callbacks(ctx, r.ID); err != nil || len(cbs) != 1 || cbs[0].Delivered {
			t.Fatalf("callbacks: %+v %v", cbs, err)
		}
	})
}

func TestSignRequestDigestOnly(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newSignFixture(t, d)
		doc := []byte("a large document the client keeps")
		sum := sm3.Sum(doc)
		r, err := f.sr.Create(ctx, "dept", CreateSignRequest{SM3DigestHex: strp(hex.EncodeToString(sum[:])), Title: "Contract",
			Sub: "sub-alice", CallbackURL: "https://dept.example.test/cb"})
		if err != nil || !r.DigestOnly {
			t.Fatalf("Create: %+v %v", r, err)
		}
		got, err := f.sr.Approve(ctx, "alice", r.ID, f.fresh(), users.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := f.sr.Certificate(ctx, got)
		pc := parsed(t, cert)
		pub, _ := isSM2Key(pc.PublicKey)
		if !sm2.VerifyASN1WithSM2(pub, nil, sum[:], got.Signature) {
			t.Fatal("the raw signature does not sign the 32 digest bytes")
		}
		p7, err := pkcs7.Parse(got.CMS)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := f.ca.VerifyCMS(ctx, p7, doc, false); err != nil || !res.Valid {
			t.Fatalf("cms against the document: %+v %v", res, err)
		}
	})
}

func TestSignRequestStepUp(t *testing.T) {
	created := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		auth SignAuth
		now  time.Time
		want bool
	}{
		"password just now":              {SignAuth{AuthTime: created.Add(time.Minute), AMR: []string{"pwd"}}, created.Add(2 * time.Minute), true},
		"password 5 minutes ago":         {SignAuth{AuthTime: created, AMR: []string{"pwd"}}, created.Add(5 * time.Minute), true},
		"password 6 minutes ago":         {SignAuth{AuthTime: created, AMR: []string{"pwd"}}, created.Add(6 * time.Minute), false},
		"password long before request":   {SignAuth{AuthTime: created.Add(-time.Hour), AMR: []string{"pwd"}}, created.Add(time.Minute), false},
		"otp after the request":          {SignAuth{AuthTime: created.Add(time.Second), AMR: []string{"pwd", "otp", "mfa"}}, created.Add(9 * time.Minute), true},
		"passkey at the request":         {SignAuth{AuthTime: created, AMR: []string{"hwk"}}, created.Add(9 * time.Minute), true},
		"otp before the request":         {SignAuth{AuthTime: created.Add(-time.Hour), AMR: []string{"pwd", "otp"}}, created.Add(time.Minute), false},
		"no sign-in time":                {SignAuth{}, created, false},
		"sign-in time in the far future": {SignAuth{AuthTime: created.Add(time.Hour), AMR: []string{"pwd"}}, created, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := c.auth.Fresh(created, c.now); got != c.want {
				t.Fatalf("Fresh = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSignRequestRefusals(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newSignFixture(t, d)
		r := f.create(t, []byte("doc"), "sub-alice")
		stale := SignAuth{AuthTime: f.clock.t.Add(-time.Hour), AMR: []string{"pwd"}}
		if _, err := f.sr.Approve(ctx, "alice", r.ID, stale, users.RequestMeta{}); !errors.Is(err, ErrStepUpRequired) {
			t.Fatalf("stale session: %v", err)
		}
		if _, err := f.sr.Approve(ctx, "bob", r.ID, f.fresh(), users.RequestMeta{}); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("someone else's request: %v", err)
		}
		if _, err := f.sr.ForClient(ctx, "other-dept", r.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("another client's request: %v", err)
		}
		if _, err := f.sr.ForClient(ctx, "dept", "not-a-uuid"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("malformed id: %v", err)
		}
		rb := f.create(t, []byte("doc"), "sub-bob")
		if _, err := f.sr.Approve(ctx, "bob", rb.ID, f.fresh(), users.RequestMeta{}); !errors.Is(err, ErrSignLevel) {
			t.Fatalf("level 1: %v", err)
		}
		for _, id := range []string{r.ID, rb.ID} {
			if got, _ := f.sr.ForClient(ctx, "dept", id); got.Status != SignPending || got.Signature != nil {
				t.Fatalf("a refused approval changed the request: %+v", got)
			}
		}
		if cbs, _ := f.sr.Callbacks(ctx, r.ID); len(cbs) != 0 {
			t.Fatalf("a refused approval queued a callback: %+v", cbs)
		}
		if _, err := f.sr.Decline(ctx, "alice", r.ID, users.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.sr.ForClient(ctx, "dept", r.ID); got.Status != SignDeclined {
			t.Fatalf("after decline: %s", got.Status)
		}
		if _, err := f.sr.Approve(ctx, "alice", r.ID, f.fresh(), users.RequestMeta{}); !errors.Is(err, ErrSignSettled) {
			t.Fatalf("approve after decline: %v", err)
		}
		if !strings.Contains(strings.Join(f.actions(t, "alice"), " "), "certs.sign_request.decline") {
			t.Fatal("decline not audited")
		}
	})
}

func TestSignRequestExpiry(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newSignFixture(t, d)
		swept := f.create(t, []byte("one"), "sub-alice")
		lazy := f.create(t, []byte("two"), "sub-alice")
		f.clock.t = f.clock.t.Add(DefaultSignRequestTTL)
		if list, _ := f.sr.Pending(ctx, "alice"); len(list) != 0 {
			t.Fatalf("expired requests still listed: %d", len(list))
		}
		// Read lazily: the client sees it expired before any sweep.
		if got, err := f.sr.ForClient(ctx, "dept", lazy.ID); err != nil || got.Status != SignExpired {
			t.Fatalf("lazy expiry: %+v %v", got, err)
		}
		if n, err := f.sr.ExpireDue(ctx, 10); err != nil || n != 1 {
			t.Fatalf("ExpireDue = %d, %v; want 1", n, err)
		}
		if n, _ := f.sr.ExpireDue(ctx, 10); n != 0 {
			t.Fatalf("second sweep settled %d", n)
		}
		if _, err := f.sr.Approve(ctx, "alice", swept.ID, f.fresh(), users.RequestMeta{}); !errors.Is(err, ErrSignSettled) {
			t.Fatalf("approve after expiry: %v", err)
		}
		for _, id := range []string{swept.ID, lazy.ID} {
			if cbs, _ := f.sr.Callbacks(ctx, id); len(cbs) != 1 {
				t.Fatalf("callbacks of an expired request: %+v", cbs)
			}
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "certs.sign_request.expire"})
		if len(evs) != 2 {
			t.Fatalf("%d expiry records, want 2", len(evs))
		}
	})
}

func TestSignRequestCreateRefusesBadInput(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newSignFixture(t, d)
		doc := strp(base64.StdEncoding.EncodeToString([]byte("doc")))
		good := CreateSignRequest{DataBase64: doc, Title: "T", Sub: "sub-alice", CallbackURL: "https://dept.example.test/cb"}
		with := func(mod func(*CreateSignRequest)) CreateSignRequest { c := good; mod(&c); return c }
		cases := map[string]CreateSignRequest{
			"no content":         with(func(c *CreateSignRequest) { c.DataBase64 = nil }),
			"both contents":      with(func(c *CreateSignRequest) { c.SM3DigestHex = strp(strings.Repeat("ab", 32)) }),
			"bad base64":         with(func(c *CreateSignRequest) { c.DataBase64 = strp("***") }),
			"short digest":       with(func(c *CreateSignRequest) { c.DataBase64, c.SM3DigestHex = nil, strp("abcd") }),
			"non-hex digest":     with(func(c *CreateSignRequest) { c.DataBase64, c.SM3DigestHex = nil, strp(strings.Repeat("zz", 32)) }),
			"no title":           with(func(c *CreateSignRequest) { c.Title = "  " }),
			"long title":         with(func(c *CreateSignRequest) { c.Title = strings.Repeat("签", MaxSignTitle+1) }),
			"control in title":   with(func(c *CreateSignRequest) { c.Title = "a\x07b" }),
			"no sub":             with(func(c *CreateSignRequest) { c.Sub = "" }),
			"unknown sub":        with(func(c *CreateSignRequest) { c.Sub = "nobody" }),
			"sub of no account":  with(func(c *CreateSignRequest) { c.Sub = "sub-zed" }),
			"disabled person":    with(func(c *CreateSignRequest) { c.Sub = "sub-carol" }),
			"http callback":      with(func(c *CreateSignRequest) { c.CallbackURL = "http://dept.example.test/cb" }),
			"http localhost":     with(func(c *CreateSignRequest) { c.CallbackURL = "http://localhost:8080/cb" }),
			"relative callback":  with(func(c *CreateSignRequest) { c.CallbackURL = "/cb" }),
			"userinfo callback":  with(func(c *CreateSignRequest) { c.CallbackURL = "https://u:p@dept.example.test/cb" }),
			"negative expiry":    with(func(c *CreateSignRequest) { c.ExpiresIn = -1 }),
			"too long an expiry": with(func(c *CreateSignRequest) { c.ExpiresIn = 2 * 24 * 3600 }),
		}
		for name, in := range cases {
			if _, err := f.sr.Create(ctx, "dept", in); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		if list, _ := f.sr.Pending(ctx, "alice"); len(list) != 0 {
			t.Fatalf("refused requests were stored: %d", len(list))
		}
		// In development http://localhost is allowed.
		f.sr.cfg.AllowHTTPLocalhost = true
		if _, err := f.sr.Create(ctx, "dept", with(func(c *CreateSignRequest) { c.CallbackURL = "http://127.0.0.1:8080/cb" })); err != nil {
			t.Fatalf("loopback callback in development: %v", err)
		}
	})
}

func TestSignRequestCallbacksRetryUntilDelivered(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newSignFixture(t, d)
		var calls atomic.Int32
		var lastBody atomic.Value
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			lastBody.Store(string(b))
			if calls.Add(1) == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
			}
		}))
		defer srv.Close()
		f.sr.cfg.AllowHTTPLocalhost = true
		r, err := f.sr.Create(ctx, "dept", CreateSignRequest{DataBase64: strp("ZG9j"), Title: "T", Sub: "sub-alice", CallbackURL: srv.URL + "/cb"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.sr.Decline(ctx, "alice", r.ID, users.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
		if n, err := f.sr.DeliverCallbacks(ctx); n != 1 || err != nil {
			t.Fatalf("first attempt: %d %v", n, err)
		}
		if n, _ := f.sr.DeliverCallbacks(ctx); n != 0 {
			t.Fatal("a failed callback was retried before its backoff")
		}
		f.clock.t = f.clock.t.Add(callbackBackoff(1))
		if n, _ := f.sr.DeliverCallbacks(ctx); n != 1 {
			t.Fatal("the callback was not retried after its backoff")
		}
		cbs, _ := f.sr.Callbacks(ctx, r.ID)
		if len(cbs) != 1 || cbs[0].Attempts != 2 || !cbs[0].Delivered {
			t.Fatalf("outbox: %+v", cbs)
		}
		var body SignCallbackBody
		if err := json.Unmarshal([]byte(lastBody.Load().(string)), &body); err != nil || !strings.HasPrefix(body.SignedNotification, "signed-for-dept.") {
			t.Fatalf("callback body: %v %v", lastBody.Load(), err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(body.SignedNotification, "signed-for-dept."))
		var claims map[string]any
		json.Unmarshal(raw, &claims)
		if claims["sign_request_id"] != r.ID || claims["status"] != "declined" || claims["sub"] != "sub-alice" {
			t.Fatalf("claims: %v", claims)
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "certs.sign_request.callback"})
		if len(evs) != 2 || evs[0].Result != audit.ResultFailure || evs[1].Result != audit.ResultSuccess {
			t.Fatalf("callback attempts audited: %+v", evs)
		}
		if n, err := f.sr.PurgeCallbacks(ctx); n != 0 || err != nil {
			t.Fatalf("purged a fresh callback: %d %v", n, err)
		}
		f.clock.t = f.clock.t.Add(callbackRetention + time.Second)
		if n, err := f.sr.PurgeCallbacks(ctx); n != 1 || err != nil {
			t.Fatalf("purge after a week: %d %v", n, err)
		}
	})
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

package users

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// qrFixture is the QR sign-ins of one database, a test clock, and a
// signed-in phone session of a level-3 account.
type qrFixture struct {
	t     *testing.T
	d     *db.DB
	qr    *QRLogins
	clock *testClock
	store *SQLStore
	log   *audit.Log
	phone *Session
	meta  RequestMeta
}

func newQRFixture(t *testing.T, d *db.DB) *qrFixture {
	t.Helper()
	ctx := context.Background()
	store := newTestStore(t, d)
	u := &User{Username: "qr-user", Kind: KindCitizen, AssuranceLevel: LevelInPerson}
	if err := store.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	log := audit.NewLog(d)
	q := NewQRLogins(d, store, log)
	c := newTestClock()
	q.now = c.now
	phone := &Session{ID: "phone-session", UserID: u.ID, ACR: LevelInPerson, AMR: []string{"pwd", "otp"}}
	return &qrFixture{t: t, d: d, qr: q, clock: c, store: store, log: log, phone: phone,
		meta: RequestMeta{IP: "192.0.2.7", UserAgent: "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0"}}
}

func (f *qrFixture) start() (token, secret string) {
	f.t.Helper()
	token, secret, err := f.qr.Start(context.Background(), f.meta)
	if err != nil {
		f.t.Fatal(err)
	}
	return token, secret
}

// events returns the audit records of action, oldest first.
func (f *qrFixture) events(action string) []audit.Event {
	f.t.Helper()
	all, err := f.log.List(context.Background(), audit.Filter{Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestQRLoginApproveAndComplete(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newQRFixture(t, d)
		ctx := context.Background()
		token, secret := f.start()

		p, err := f.qr.Pending(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		if p.IP != f.meta.IP || p.UserAgent != f.meta.UserAgent || p.Status != QRPending || !p.ExpiresAt.Equal(f.clock.now().Add(QRLoginTTL)) {
			t.Fatalf("pending: %+v", p)
		}
		if st, err := f.qr.Status(ctx, secret); err != nil || st.Status != QRPending {
			t.Fatalf("status before approval: %+v %v", st, err)
		}
		if _, err := f.qr.Complete(ctx, secret, f.meta); !errors.Is(err, ErrQRLoginNotFound) {
			t.Fatalf("completed before approval: %v", err)
		}
		if err := f.qr.Decide(ctx, token, true, f.phone, RequestMeta{IP: "198.51.100.2"}); err != nil {
			t.Fatal(err)
		}
		if st, _ := f.qr.Status(ctx, secret); st.Status != QRApproved {
			t.Fatalf("status after approval: %+v", st)
		}
		l, err := f.qr.Complete(ctx, secret, f.meta)
		if err != nil {
			t.Fatal(err)
		}
		// The phone's level 3 is capped at 2 and its methods are not copied.
		if l.UserID != f.phone.UserID || l.ACR != QRMaxACR || !slices.Equal(l.AMR, []string{AMRQR}) || l.SessionID != f.phone.ID {
			t.Fatalf("completed: %+v", l)
		}
		if _, err := f.qr.Complete(ctx, secret, f.meta); !errors.Is(err, ErrQRLoginNotFound) {
			t.Fatalf("completed twice: %v", err)
		}
		if len(f.events(ActionQRApprove)) != 1 {
			t.Fatalf("approve audit: %+v", f.events(ActionQRApprove))
		}
		done := f.events(ActionQRComplete)
		if len(done) != 2 || done[0].Result != audit.ResultSuccess || done[0].Subject != f.phone.UserID ||
			done[1].Result != audit.ResultFailure || done[1].Reason != "already completed" {
			t.Fatalf("complete audit: %+v", done)
		}
	})
}

func TestQRLoginLevelIsCappedByTheAccount(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newQRFixture(t, d)
		ctx := context.Background()
		// The account was lowered to level 1 after the phone signed in at 3.
		if _, err := f.store.Update(ctx, f.phone.UserID, func(u *User) error { u.AssuranceLevel = LevelSelfRegistered; return nil }); err != nil {
			t.Fatal(err)
		}
		token, secret := f.start()
		if err := f.qr.Decide(ctx, token, true, f.phone, f.meta); err != nil {
			t.Fatal(err)
		}
		if l, err := f.qr.Complete(ctx, secret, f.meta); err != nil || l.ACR != LevelSelfRegistered {
			t.Fatalf("%+v %v", l, err)
		}
	})
}

func TestQRLoginRefusals(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		cases := []struct {
			name       string
			run        func(f *qrFixture) error
			wantErr    error
			auditAct   string // a failure record of this action is expected ("" none)
			wantReason string
		}{
			{"unknown token", func(f *qrFixture) error {
				return f.qr.Decide(ctx, strings.Repeat("A", 43), true, f.phone, f.meta)
			}, ErrQRLoginNotFound, "", ""},
			{"malformed token", func(f *qrFixture) error {
				_, err := f.qr.Pending(ctx, "short")
				return err
			}, ErrQRLoginNotFound, "", ""},
			{"approve after expiry", func(f *qrFixture) error {
				token, _ := f.start()
				f.clock.advance(QRLoginTTL)
				return f.qr.Decide(ctx, token, true, f.phone, f.meta)
			}, ErrQRLoginNotFound, ActionQRApprove, "expired"},
			{"approve twice", func(f *qrFixture) error {
				token, _ := f.start()
				if err := f.qr.Decide(ctx, token, true, f.phone, f.meta); err != nil {
					return err
				}
				return f.qr.Decide(ctx, token, true, f.phone, f.meta)
			}, ErrQRLoginNotFound, ActionQRApprove, "already approved"},
			{"declined cannot complete", func(f *qrFixture) error {
				token, secret := f.start()
				if err := f.qr.Decide(ctx, token, false, f.phone, f.meta); err != nil {
					return err
				}
				if st, _ := f.qr.Status(ctx, secret); st.Status != QRDeclined {
					f.t.Fatalf("status %q", st.Status)
				}
				if n := len(f.events(ActionQRDecline)); n != 1 {
					f.t.Fatalf("%d decline records", n)
				}
				_, err := f.qr.Complete(ctx, secret, f.meta)
				return err
			}, ErrQRLoginNotFound, "", ""},
			{"approval collected too late", func(f *qrFixture) error {
				token, secret := f.start()
				if err := f.qr.Decide(ctx, token, true, f.phone, f.meta); err != nil {
					return err
				}
				f.clock.advance(QRLoginTTL + time.Second)
				if st, _ := f.qr.Status(ctx, secret); st.Status != QRExpired {
					f.t.Fatalf("status %q", st.Status)
				}
				_, err := f.qr.Complete(ctx, secret, f.meta)
				return err
			}, ErrQRLoginNotFound, ActionQRComplete, "expired"},
			{"the QR token does not complete", func(f *qrFixture) error {
				token, _ := f.start()
				if err := f.qr.Decide(ctx, token, true, f.phone, f.meta); err != nil {
					return err
				}
				_, err := f.qr.Complete(ctx, token, f.meta)
				return err
			}, ErrQRLoginNotFound, "", ""},
			{"the browser secret does not approve", func(f *qrFixture) error {
				_, secret := f.start()
				return f.qr.Decide(ctx, secret, true, f.phone, f.meta)
			}, ErrQRLoginNotFound, "", ""},
			{"account disabled since approval", func(f *qrFixture) error {
				token, secret := f.start()
				if err := f.qr.Decide(ctx, token, true, f.phone, f.meta); err != nil {
					return err
				}
				if _, err := f.store.Update(ctx, f.phone.UserID, func(u *User) error { u.Status = StatusDisabled; return nil }); err != nil {
					f.t.Fatal(err)
				}
				_, err := f.qr.Complete(ctx, secret, f.meta)
				return err
			}, ErrAccountDisabled, ActionQRComplete, "account disabled"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := newQRFixture(t, dbtest.Open(t, d.Dialect()))
				if err := tc.run(f); !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if tc.auditAct == "" {
					return
				}
				var failures []audit.Event
				for _, e := range f.events(tc.auditAct) {
					if e.Result == audit.ResultFailure {
						failures = append(failures, e)
					}
				}
				if len(failures) != 1 || failures[0].Reason != tc.wantReason || failures[0].Subject != f.phone.UserID {
					t.Fatalf("failure records: %+v", failures)
				}
			})
		}
	})
}

func TestQRLoginStoresNoSecrets(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newQRFixture(t, d)
		token, secret := f.start()
		var tokenHash, browserHash string
		if err := d.QueryRow(context.Background(), `SELECT token_hash, browser_hash FROM qr_logins`).Scan(&tokenHash, &browserHash); err != nil {
			t.Fatal(err)
		}
		if tokenHash == token || browserHash == secret || strings.Contains(tokenHash+browserHash, token) ||
			tokenHash != hashSessionToken(token) || browserHash != hashSessionToken(secret) {
			t.Fatal("a secret is stored, or not its hash")
		}
	})
}

func TestQRLoginStartPurgesOldRows(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newQRFixture(t, d)
		f.start()
		f.clock.advance(QRLoginTTL + time.Hour)
		f.start()
		var n int
		if err := d.QueryRow(context.Background(), `SELECT count(*) FROM qr_logins`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d rows, want the old one purged", n)
		}
	})
}

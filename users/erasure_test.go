package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestSoftDeleteThenErasure(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		log := audit.NewLog(d)
		c := newTestClock()
		phone, idNumber := "13800138000", randomIDNumber()
		u := &User{Username: "wang.fang", Kind: KindCitizen, DisplayName: "王芳", Email: "wang@example.org", Phone: phone, IDNumber: idNumber, PasswordHash: "hash"}
		keep := &User{Username: "li.lei", Kind: KindCitizen, DisplayName: "李雷"}
		for _, x := range []*User{u, keep} {
			if err := s.Create(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		blob := []byte{1, 2}
		for _, q := range []string{
			`INSERT INTO totp_secrets (user_id, secret_enc, created_at) VALUES (?, ?, CURRENT_TIMESTAMP)`,
			`INSERT INTO totp_recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, CURRENT_TIMESTAMP)`,
			`INSERT INTO webauthn_users (user_id, handle, created_at) VALUES (?, ?, CURRENT_TIMESTAMP)`,
			`INSERT INTO webauthn_credentials (id, user_id, public_key, created_at) VALUES ('cred-1', ?, ?, CURRENT_TIMESTAMP)`,
			`INSERT INTO assurance_events (id, user_id, level, method, reason, at) VALUES ('ae-1', ?, 3, 'admin', ?, CURRENT_TIMESTAMP)`,
		} {
			if _, err := d.Exec(ctx, q, u.ID, blob); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if _, err := log.Append(ctx, audit.Event{Actor: "admin", Subject: u.ID, Action: "user.create", Result: audit.ResultSuccess}); err != nil {
			t.Fatal(err)
		}

		deleted, err := s.SoftDelete(ctx, u.ID, c.now())
		if err != nil || deleted.Status != StatusDeleted || !deleted.DeletedAt.Equal(c.t) {
			t.Fatalf("soft delete: %+v %v", deleted, err)
		}
		if _, err := s.SoftDelete(ctx, u.ID, c.now()); !errors.Is(err, ErrDeleted) {
			t.Fatalf("second delete: %v", err)
		}
		got, _ := s.Get(ctx, u.ID)
		if got.Status != StatusDeleted || got.Phone != phone {
			t.Fatalf("within the retention the account keeps its data and reads deleted: %+v", got)
		}
		if _, err := s.Update(ctx, u.ID, func(u *User) error { u.Status = StatusActive; return nil }); !errors.Is(err, ErrDeleted) {
			t.Fatalf("a deleted account was changed: %v", err)
		}
		for _, o := range []ListOptions{{}, {Status: StatusDisabled}, {Kind: KindCitizen}} {
			list, _ := s.List(ctx, o)
			for _, x := range list {
				if x.ID == u.ID {
					t.Fatalf("list %+v shows the deleted account", o)
				}
			}
		}
		if list, _ := s.List(ctx, ListOptions{Status: StatusDeleted}); len(list) != 1 || list[0].ID != u.ID {
			t.Fatalf("asking for deleted accounts: %v", list)
		}

		links := NewResetLinks(d, time.Hour)
		links.now = c.now
		if _, _, err := links.Create(ctx, keep.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		e := NewEraser(s, links, log, 30*24*time.Hour, nil)
		e.now = c.now
		c.advance(30*24*time.Hour - time.Second)
		if n, err := e.Pass(ctx); n != 0 || err != nil {
			t.Fatalf("erased before the retention ran out: %d %v", n, err)
		}
		c.advance(time.Second)
		if n, err := e.Pass(ctx); n != 1 || err != nil {
			t.Fatalf("erasure: %d %v", n, err)
		}
		var liveLinks int
		d.QueryRow(ctx, `SELECT count(*) FROM password_reset_links`).Scan(&liveLinks)
		if liveLinks != 0 {
			t.Fatalf("%d dead reset links kept", liveLinks)
		}
		tomb, err := s.Get(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if tomb.Kind != KindCitizen || tomb.DisplayName != "" || tomb.Email != "" || tomb.Phone != "" || tomb.IDNumber != "" ||
			tomb.PasswordHash != "" || tomb.Status != StatusDeleted || !tomb.ErasedAt.Equal(c.t) || strings.Contains(tomb.Username, "wang") {
			t.Fatalf("tombstone keeps personal data: %+v", tomb)
		}
		var enc, idx, idEnc, idIdx any
		d.QueryRow(ctx, `SELECT phone_enc, phone_index, id_number_enc, id_number_index FROM users WHERE id = ?`, u.ID).Scan(&enc, &idx, &idEnc, &idIdx)
		if enc != nil || idx != nil || idEnc != nil || idIdx != nil {
			t.Fatal("ciphertexts or blind indexes survive the erasure")
		}
		for _, table := range []string{"totp_secrets", "totp_recovery_codes", "webauthn_users", "webauthn_credentials", "assurance_events"} {
			var n int
			d.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE user_id = ?`, u.ID).Scan(&n)
			if n != 0 {
				t.Fatalf("%s keeps %d rows of the erased account", table, n)
			}
		}
		if _, err := s.GetByPhone(ctx, phone); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("found by phone after erasure: %v", err)
		}
		if _, err := s.GetByIDNumber(ctx, idNumber); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("found by ID number after erasure: %v", err)
		}
		if other, _ := s.Get(ctx, keep.ID); other.DisplayName != "李雷" {
			t.Fatalf("another account was touched: %+v", other)
		}
		// The phone number and username are free again.
		if err := s.Create(ctx, &User{Username: "wang.fang", Kind: KindCitizen, Phone: phone}); err != nil {
			t.Fatalf("re-register after erasure: %v", err)
		}
		if n, _ := e.Pass(ctx); n != 0 {
			t.Fatalf("erased twice: %d", n)
		}
		// The audit log still names the account and its chain holds.
		if _, err := log.Seal(ctx); err != nil {
			t.Fatal(err)
		}
		if res, err := log.Verify(ctx); err != nil || !res.OK {
			t.Fatalf("audit chain after erasure: %+v %v", res, err)
		}
		events, _ := log.List(ctx, audit.Filter{Subject: u.ID})
		if len(events) != 2 || events[0].Action != "user.create" || events[1].Action != ActionUserErase {
			t.Fatalf("audit of the erased account: %+v", events)
		}
	})
}

// OnErase runs in the transaction of each erasure: when it fails, even
// with a not-found error, the pass reports it, the account keeps its data
// and the next pass tries again.
func TestEraserRunsOnEraseInItsTransaction(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		c := newTestClock()
		u := &User{Username: "zhao.lei", Kind: KindCitizen, DisplayName: "赵磊"}
		if err := s.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SoftDelete(ctx, u.ID, c.now()); err != nil {
			t.Fatal(err)
		}
		e := NewEraser(s, nil, audit.NewLog(d), time.Hour, nil)
		c.t = c.t.Add(2 * time.Hour)
		e.now = c.now
		var calls []string
		e.OnErase = func(ctx context.Context, id string) error {
			calls = append(calls, id)
			if !db.InTransaction(ctx) {
				t.Error("OnErase ran outside the erasure's transaction")
			}
			if len(calls) == 1 {
				// A not-found from another domain is a failure to
				// report, not a sign that another node erased it.
				return fmt.Errorf("keys not destroyed: %w", db.ErrNotFound)
			}
			return nil
		}
		if n, err := e.Pass(ctx); n != 0 || err == nil {
			t.Fatalf("failing hook: erased %d, %v", n, err)
		}
		if got, _ := s.Get(ctx, u.ID); got.DisplayName != u.DisplayName {
			t.Fatalf("a failed hook left the account erased: %+v", got)
		}
		if n, err := e.Pass(ctx); n != 1 || err != nil || len(calls) != 2 || calls[1] != u.ID {
			t.Fatalf("second pass: erased %d, %v; hook calls %v", n, err, calls)
		}
	})
}

// An account whose erasure keeps failing does not hold up the others: they
// are erased in the same pass, and the failure is reported.
func TestEraserGoesPastAFailingAccount(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		c := newTestClock()
		var stuck, next *User
		for i, name := range []string{"stuck.one", "next.one"} {
			u := &User{Username: name, Kind: KindCitizen, DisplayName: name}
			if err := s.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SoftDelete(ctx, u.ID, c.now().Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				stuck = u
			} else {
				next = u
			}
		}
		e := NewEraser(s, nil, audit.NewLog(d), time.Hour, nil)
		c.t = c.t.Add(2 * time.Hour)
		e.now = c.now
		e.OnErase = func(ctx context.Context, id string) error {
			if id == stuck.ID {
				return errors.New("keys not destroyed")
			}
			return nil
		}
		if n, err := e.Pass(ctx); n != 1 || err == nil {
			t.Fatalf("erased %d, %v; want the other account erased and the failure reported", n, err)
		}
		if got, _ := s.Get(ctx, next.ID); got.ErasedAt.IsZero() {
			t.Error("the account after the failing one was not erased")
		}
		if got, _ := s.Get(ctx, stuck.ID); !got.ErasedAt.IsZero() || got.DisplayName != stuck.DisplayName {
			t.Errorf("the failing account lost its data: %+v", got)
		}
	})
}

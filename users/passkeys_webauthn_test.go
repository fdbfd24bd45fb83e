package users

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users/passkeytest"
)

const (
	testRPID   = "sso.example.test"
	testOrigin = "https://sso.example.test"
)

type passkeyFixture struct {
	d        *db.DB
	accounts *SQLStore
	store    *PasskeyStore
	clock    *testClock
	log      *audit.Log
	svc      *Passkeys
}

func newPasskeyFixture(t *testing.T, d *db.DB) *passkeyFixture {
	t.Helper()
	f := &passkeyFixture{d: d, accounts: newTestStore(t, d), log: audit.NewLog(d)}
	f.store, f.clock = newTestPasskeyStore(d)
	f.clock.t = time.Now().UTC().Truncate(time.Microsecond) // the library checks expiry against the real clock
	lockout, _ := newTestLockout(d, LockoutPolicy{})
	svc, err := NewPasskeys(PasskeyConfig{RPID: testRPID, RPDisplayName: "Test SSO", Origins: []string{testOrigin}}, f.store, f.accounts, lockout, f.log)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *passkeyFixture) addUser(t *testing.T, username string, level int) *User {
	t.Helper()
	u := &User{Username: username, Kind: KindCitizen, AssuranceLevel: level}
	if err := f.accounts.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// register runs a whole registration with a.
func (f *passkeyFixture) register(t *testing.T, u *User, a *passkeytest.Authenticator) *Passkey {
	t.Helper()
	ctx := context.Background()
	ch, err := f.svc.BeginRegistration(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Create(ch.Options)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.FinishRegistration(ctx, u.ID, ch.Token, resp, "My phone", meta)
	if err != nil {
		t.Fatalf("finish registration: %v", err)
	}
	return p
}

// assertion begins a sign-in and has a answer it.
func (f *passkeyFixture) assertion(t *testing.T, a *passkeytest.Authenticator) (token string, resp []byte) {
	t.Helper()
	ch, err := f.svc.BeginLogin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = a.Get(ch.Options)
	if err != nil {
		t.Fatal(err)
	}
	return ch.Token, resp
}

func TestPasskeyRegisterThenSignIn(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "alice", 1)
		a := passkeytest.New(testOrigin)
		a.BackupEligible, a.BackupState, a.Counter = true, true, 5
		p := f.register(t, u, a)
		if p.ID != a.CredentialID() || p.Name != "My phone" || !p.UserVerified || !p.BackupEligible || !p.BackupState ||
			p.SignCount != 5 || p.AttestationFormat != "none" || p.Attachment != "platform" || !slices.Contains(p.Transports, "internal") {
			t.Fatalf("registered %+v", p)
		}
		handle, err := f.store.UserHandle(ctx, u.ID)
		if err != nil || string(a.UserHandle()) != string(handle) {
			t.Fatalf("the authenticator holds handle %x, the account %x (%v)", a.UserHandle(), handle, err)
		}

		f.clock.advance(time.Second)
		a.BackupState = false // synced passkeys may change BS, never BE
		token, resp := f.assertion(t, a)
		in, err := f.svc.FinishLogin(ctx, token, resp, meta)
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		if in.User.ID != u.ID || !slices.Equal(in.AMR, []string{"swk", "user", "mfa"}) || in.ACR != 1 {
			t.Fatalf("signed in %s with amr %v acr %d", in.User.ID, in.AMR, in.ACR)
		}
		stored, err := f.store.Get(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.SignCount != 6 || stored.BackupState || !stored.BackupEligible || stored.CloneWarning || !stored.LastUsedAt.Equal(f.clock.t) {
			t.Fatalf("after sign-in the passkey is %+v", stored)
		}
		events, err := f.log.List(ctx, audit.Filter{Action: audit.ActionLogin})
		if err != nil || len(events) != 1 || events[0].Result != audit.ResultSuccess || events[0].Details["method"] != "passkey" {
			t.Fatalf("audit: %+v, %v", events, err)
		}
	})
}

func TestPasskeyOfVerifiedAccountReachesLevel3(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "bob", 2)
		a := passkeytest.New(testOrigin)
		a.Attachment = "cross-platform"
		f.register(t, u, a)
		token, resp := f.assertion(t, a)
		in, err := f.svc.FinishLogin(context.Background(), token, resp, meta)
		if err != nil {
			t.Fatal(err)
		}
		if in.ACR != 3 || !slices.Equal(in.AMR, []string{"hwk", "user", "mfa"}) {
			t.Fatalf("acr %d amr %v", in.ACR, in.AMR)
		}
	})
}

func TestPasskeySignInRefusals(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "carol", 1)
		a := passkeytest.New(testOrigin)
		a.BackupEligible, a.Counter = true, 10
		p := f.register(t, u, a)

		// A used assertion, replayed with its own cookie and with a new one.
		token, resp := f.assertion(t, a)
		if _, err := f.svc.FinishLogin(ctx, token, resp, meta); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.FinishLogin(ctx, token, resp, meta); !errors.Is(err, ErrPasskeyCeremony) {
			t.Errorf("replayed with its cookie: %v", err)
		}
		fresh, _ := f.assertion(t, a)
		if _, err := f.svc.FinishLogin(ctx, fresh, resp, meta); !errors.Is(err, ErrPasskeyRejected) {
			t.Errorf("replayed under a new challenge: %v", err)
		}

		cases := []struct {
			name  string
			spoil func(a *passkeytest.Authenticator)
		}{
			{"wrong origin", func(a *passkeytest.Authenticator) { a.Origin = "https://evil.example.test" }},
			{"no user verification", func(a *passkeytest.Authenticator) { a.UserVerified = false }},
			{"backup eligibility changed", func(a *passkeytest.Authenticator) { a.BackupEligible = false }},
		}
		for _, tc := range cases {
			bad := *a
			tc.spoil(&bad)
			token, resp := f.assertion(t, &bad)
			if _, err := f.svc.FinishLogin(ctx, token, resp, meta); !errors.Is(err, ErrPasskeyRejected) {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		forged, _ := json.Marshal(map[string]any{"id": p.ID, "rawId": p.ID, "type": "public-key"})
		token, _ = f.assertion(t, a)
		if _, err := f.svc.FinishLogin(ctx, token, forged, meta); !errors.Is(err, ErrPasskeyRejected) {
			t.Errorf("forged response: %v", err)
		}
		stored, err := f.store.Get(ctx, p.ID)
		if err != nil || stored.SignCount != 11 {
			t.Fatalf("refused sign-ins changed the passkey: %+v, %v", stored, err)
		}
	})
}

func TestPasskeyExpiredCeremonyIsRefused(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "dave", 1)
		a := passkeytest.New(testOrigin)
		f.register(t, u, a)
		token, resp := f.assertion(t, a)
		f.clock.advance(DefaultPasskeyCeremonyTimeout)
		if _, err := f.svc.FinishLogin(ctx, token, resp, meta); !errors.Is(err, ErrPasskeyCeremony) {
			t.Fatalf("expired: %v", err)
		}
		ch, err := f.svc.BeginRegistration(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		other := passkeytest.New(testOrigin)
		reg, err := other.Create(ch.Options)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.advance(DefaultPasskeyCeremonyTimeout + time.Second)
		if _, err := f.svc.FinishRegistration(ctx, u.ID, ch.Token, reg, "Late", meta); !errors.Is(err, ErrPasskeyCeremony) {
			t.Fatalf("expired registration: %v", err)
		}
		if n, _ := f.store.Count(ctx, u.ID); n != 1 {
			t.Fatalf("%d passkeys after an expired registration", n)
		}
	})
}

func TestPasskeyClonedKeyIsRefused(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "erin", 1)
		a := passkeytest.New(testOrigin)
		a.Counter = 20
		p := f.register(t, u, a)
		clone := *a
		clone.Counter = 3
		token, resp := f.assertion(t, &clone)
		if _, err := f.svc.FinishLogin(ctx, token, resp, meta); !errors.Is(err, ErrPasskeyRejected) {
			t.Fatalf("counter went backwards: %v", err)
		}
		stored, err := f.store.Get(ctx, p.ID)
		if err != nil || !stored.CloneWarning {
			t.Fatalf("clone warning not stored: %+v, %v", stored, err)
		}
		token, resp = f.assertion(t, a)
		if _, err := f.svc.FinishLogin(ctx, token, resp, meta); !errors.Is(err, ErrPasskeyRejected) {
			t.Fatalf("a passkey under clone warning still signs in: %v", err)
		}
	})
}

func TestPasskeyRegistrationRefusals(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "frank", 1)
		mallory := f.addUser(t, "mallory", 1)
		begin := func() *PasskeyChallenge {
			t.Helper()
			ch, err := f.svc.BeginRegistration(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			return ch
		}
		for _, tc := range []struct {
			name   string
			spoil  func(a *passkeytest.Authenticator)
			userID string
			want   error
		}{
			{"wrong origin", func(a *passkeytest.Authenticator) { a.Origin = "https://evil.example.test" }, u.ID, ErrPasskeyRejected},
			{"no user verification", func(a *passkeytest.Authenticator) { a.UserVerified = false }, u.ID, ErrPasskeyRejected},
			{"finished by another account", func(*passkeytest.Authenticator) {}, mallory.ID, ErrPasskeyCeremony},
		} {
			a := passkeytest.New(testOrigin)
			tc.spoil(a)
			ch := begin()
			resp, err := a.Create(ch.Options)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.FinishRegistration(ctx, tc.userID, ch.Token, resp, "Key", meta); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		login, err := f.svc.BeginLogin(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := passkeytest.New(testOrigin).Create(begin().Options)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.FinishRegistration(ctx, u.ID, login.Token, resp, "Key", meta); !errors.Is(err, ErrPasskeyCeremony) {
			t.Errorf("a sign-in cookie finished a registration: %v", err)
		}
		for _, id := range []string{u.ID, mallory.ID} {
			if n, _ := f.store.Count(ctx, id); n != 0 {
				t.Errorf("%d passkeys stored for %s after refusals", n, id)
			}
		}
	})
}

func TestPasskeyRegistrationExcludesExistingAndRequiresUV(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "grace", 1)
		p := f.register(t, u, passkeytest.New(testOrigin))
		ch, err := f.svc.BeginRegistration(context.Background(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			PublicKey struct {
				AuthenticatorSelection struct {
					ResidentKey      string `json:"residentKey"`
					UserVerification string `json:"userVerification"`
				} `json:"authenticatorSelection"`
				ExcludeCredentials []struct {
					ID string `json:"id"`
				} `json:"excludeCredentials"`
			} `json:"publicKey"`
		}
		if err := json.Unmarshal(ch.Options, &o); err != nil {
			t.Fatal(err)
		}
		sel := o.PublicKey.AuthenticatorSelection
		if sel.ResidentKey != "required" || sel.UserVerification != "required" ||
			len(o.PublicKey.ExcludeCredentials) != 1 || o.PublicKey.ExcludeCredentials[0].ID != p.ID {
			t.Fatalf("options %s", ch.Options)
		}
	})
}

func TestPasskeyDisabledAccountCannotSignIn(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "heidi", 1)
		a := passkeytest.New(testOrigin)
		f.register(t, u, a)
		if _, err := f.accounts.Update(ctx, u.ID, func(x *User) error { x.Status = StatusDisabled; return nil }); err != nil {
			t.Fatal(err)
		}
		token, resp := f.assertion(t, a)
		if _, err := f.svc.FinishLogin(ctx, token, resp, meta); !errors.Is(err, ErrAccountDisabled) {
			t.Fatalf("disabled account: %v", err)
		}
	})
}

func TestPasskeyAsSecondFactor(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newPasskeyFixture(t, d)
		u := f.addUser(t, "erin", 1)
		other := f.addUser(t, "frank", 1)
		a := passkeytest.New(testOrigin)
		a.Attachment = "cross-platform"
		p := f.register(t, u, a)
		b := passkeytest.New(testOrigin)
		f.register(t, other, b)

		if _, err := f.svc.BeginSecondFactor(ctx, f.addUser(t, "no-keys", 1).ID); !errors.Is(err, ErrNoPasskeys) {
			t.Fatalf("account without passkeys: %v, want ErrNoPasskeys", err)
		}
		ch, err := f.svc.BeginSecondFactor(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var opts struct {
			PublicKey struct {
				AllowCredentials []struct{ ID string } `json:"allowCredentials"`
			} `json:"publicKey"`
		}
		if err := json.Unmarshal(ch.Options, &opts); err != nil || len(opts.PublicKey.AllowCredentials) != 1 || opts.PublicKey.AllowCredentials[0].ID != p.ID {
			t.Fatalf("offered credentials %+v (%v), want only %s", opts.PublicKey.AllowCredentials, err, p.ID)
		}
		resp, err := a.Get(ch.Options)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.FinishSecondFactor(ctx, other.ID, ch.Token, resp, meta); !errors.Is(err, ErrPasskeyCeremony) {
			t.Fatalf("finished for another account: %v, want ErrPasskeyCeremony", err)
		}

		// Another account's passkey answering this account's challenge.
		ch, _ = f.svc.BeginSecondFactor(ctx, u.ID)
		foreign, _ := b.Get(ch.Options)
		if _, err := f.svc.FinishSecondFactor(ctx, u.ID, ch.Token, foreign, meta); !errors.Is(err, ErrPasskeyRejected) {
			t.Fatalf("another account's passkey: %v, want ErrPasskeyRejected", err)
		}

		ch, _ = f.svc.BeginSecondFactor(ctx, u.ID)
		resp, _ = a.Get(ch.Options)
		in, err := f.svc.FinishSecondFactor(ctx, u.ID, ch.Token, resp, meta)
		if err != nil {
			t.Fatalf("second factor: %v", err)
		}
		if in.User.ID != u.ID || !slices.Contains(in.AMR, "hwk") {
			t.Fatalf("signed in %s with amr %v", in.User.ID, in.AMR)
		}
		if _, err := f.svc.FinishSecondFactor(ctx, u.ID, ch.Token, resp, meta); !errors.Is(err, ErrPasskeyCeremony) {
			t.Fatalf("replayed: %v, want ErrPasskeyCeremony", err)
		}
		events, err := f.log.List(ctx, audit.Filter{Action: audit.ActionLogin, Result: audit.ResultSuccess})
		if err != nil {
			t.Fatal(err)
		}
		last := events[len(events)-1]
		if last.Subject != u.ID || last.Details["step"] != "second_factor" || last.Details["method"] != "passkey" {
			t.Fatalf("audit: %+v", last)
		}
	})
}

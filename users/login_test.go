package users

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// cheapArgon2 keeps tests fast; the benchmark measures the real parameters.
var cheapArgon2 = Argon2Params{MemoryKiB: 8192, Iterations: 1, Parallelism: 1}

type loginFixture struct {
	d       *db.DB
	store   *SQLStore
	hasher  *PasswordHasher
	lockout *Lockout
	clock   *testClock
	log     *audit.Log
	auth    *Authenticator
}

func newLoginFixture(t *testing.T, d *db.DB, p LockoutPolicy) *loginFixture {
	f := &loginFixture{d: d, store: newTestStore(t, d), hasher: NewPasswordHasher(cheapArgon2), log: audit.NewLog(d)}
	f.lockout, f.clock = newTestLockout(d, p)
	f.auth = NewAuthenticator(f.store, f.hasher, f.lockout, f.log)
	return f
}

// addUser creates an active citizen with a random phone, ID number and password.
func (f *loginFixture) addUser(t *testing.T, username string) (*User, string) {
	t.Helper()
	password := randomPassword()
	hash, err := f.hasher.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	u := &User{Username: username, Kind: KindCitizen, Phone: randomPhone(), IDNumber: randomIDNumberEndingInX(), PasswordHash: hash}
	if err := f.store.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u, password
}

// events returns the auth.login records, oldest first.
func (f *loginFixture) events(t *testing.T) []audit.Event {
	t.Helper()
	list, err := f.log.List(context.Background(), audit.Filter{Action: audit.ActionLogin})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

var meta = RequestMeta{IP: "192.0.2.10", UserAgent: "TestBrowser/1.0", ClientID: "portal"}

func TestPasswordLoginByAnyIdentifier(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		p := u.Phone
		identifiers := map[string]string{
			"username":             "alice",
			"username any case":    " Alice ",
			"phone":                p,
			"phone formatted":      "+86 " + p[:3] + "-" + p[3:7] + "-" + p[7:],
			"phone 0086":           "0086" + p,
			"ID number":            u.IDNumber,
			"ID number lower x":    strings.ToLower(u.IDNumber),
			"ID number surrounded": "  " + u.IDNumber + "\t",
		}
		for name, id := range identifiers {
			got, err := f.auth.PasswordLogin(ctx, id, password, meta)
			if err != nil || got.ID != u.ID {
				t.Errorf("by %s (%q): %+v, %v", name, id, got, err)
			}
		}
	})
}

func TestUnknownAccountAndWrongPasswordLookAlike(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		badCheck := u.IDNumber[:17] + "0"
		if badCheck == u.IDNumber { // '0' is the right check character one time in 11
			badCheck = u.IDNumber[:17] + "1"
		}
		tests := []struct{ name, identifier, password string }{
			{"wrong password", "alice", password + "x"},
			{"empty password", "alice", ""},
			{"unknown username", "bob", password},
			{"unknown phone", randomPhone(), password},
			{"unknown ID number", randomIDNumber(), password},
			{"ID number with a wrong check character", badCheck, password},
			{"empty identifier", "", password},
			{"identifier too long", strings.Repeat("a", maxIdentifierBytes+1), password},
			{"password too long", "alice", strings.Repeat("p", maxPasswordBytes+1)},
		}
		for _, tc := range tests {
			got, err := f.auth.PasswordLogin(ctx, tc.identifier, tc.password, meta)
			if got != nil || !errors.Is(err, ErrInvalidCredentials) || err.Error() != ErrInvalidCredentials.Error() {
				t.Errorf("%s: %+v, %v", tc.name, got, err)
			}
		}
	})
}

func TestFifthWrongPasswordLocksTheAccount(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		for i := 1; i < DefaultMaxFailures; i++ {
			if _, err := f.auth.PasswordLogin(ctx, "alice", "wrong password", meta); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("failure %d: %v", i, err)
			}
			f.clock.advance(DefaultMaxDelay) // past the growing delay
		}
		_, err := f.auth.PasswordLogin(ctx, u.Phone, "wrong password", meta)
		var locked *LockedError
		if !errors.Is(err, ErrLocked) || !errors.As(err, &locked) || !locked.Until.Equal(f.clock.t.Add(DefaultLockFor)) {
			t.Fatalf("fifth failure: %v", err)
		}
		if _, err := f.auth.PasswordLogin(ctx, "alice", password, meta); !errors.Is(err, ErrLocked) {
			t.Fatalf("right password while locked: %v", err)
		}
		if _, err := f.auth.PasswordLogin(ctx, "alice", password, RequestMeta{IP: "198.51.100.1"}); !errors.Is(err, ErrLocked) {
			t.Fatalf("right password while locked, from elsewhere: %v", err)
		}

		f.clock.advance(DefaultLockFor)
		if got, err := f.auth.PasswordLogin(ctx, "alice", password, meta); err != nil || got.ID != u.ID {
			t.Fatalf("after the lock ended: %+v, %v", got, err)
		}
		for i := 1; i < DefaultMaxFailures; i++ { // the success reset the count
			if _, err := f.auth.PasswordLogin(ctx, "alice", "wrong password", meta); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("failure %d after a success: %v", i, err)
			}
			f.clock.advance(DefaultMaxDelay)
		}
	})
}

// An attacker must not learn which names exist from when the answers
// change: an unknown name is delayed and locked exactly like an account.
func TestUnknownNamesAreDelayedAndLockedLikeAccounts(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		f.addUser(t, "alice")
		outcome := func(name string) string {
			_, err := f.auth.PasswordLogin(ctx, name, "wrong password", meta)
			var locked *LockedError
			switch {
			case errors.As(err, &locked) && locked.Delay:
				return "wait " + locked.Until.Sub(f.clock.t).String()
			case errors.As(err, &locked):
				return "locked " + locked.Until.Sub(f.clock.t).String()
			case errors.Is(err, ErrInvalidCredentials):
				return "invalid"
			}
			return "unexpected: " + err.Error()
		}
		// Attempts at once, then after each delay, for both names in step.
		for i := 0; i < 2*DefaultMaxFailures; i++ {
			known, unknown := outcome("alice"), outcome("nobody")
			if known != unknown {
				t.Fatalf("attempt %d: known account %q, unknown name %q", i, known, unknown)
			}
			if i == 3 && known != "wait 1s" {
				t.Errorf("attempt %d right after the third failure: %q, want a one-second wait", i, known)
			}
			if i%2 == 1 {
				f.clock.advance(DefaultMaxDelay)
			}
		}
		if got := outcome("nobody"); !strings.HasPrefix(got, "locked") {
			t.Fatalf("unknown name after %d failures: %q, want locked", DefaultMaxFailures, got)
		}
	})
}

// A refused attempt is not checked: the right password during the delay
// fails, and works once the delay is over.
func TestGrowingDelayRefusesBeforeChecking(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		var waits []time.Duration
		for i := 0; i < DefaultMaxFailures-1; i++ {
			if _, err := f.auth.PasswordLogin(ctx, "alice", "wrong password", meta); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("failure %d: %v", i+1, err)
			}
			until, err := f.lockout.Check(ctx, AccountKey(u.ID))
			if err != nil {
				t.Fatal(err)
			}
			waits = append(waits, until.Sub(f.clock.t).Round(time.Second))
			if !until.IsZero() {
				_, err := f.auth.PasswordLogin(ctx, "alice", password, meta)
				var locked *LockedError
				if !errors.As(err, &locked) || !locked.Delay || !locked.Until.Equal(until) {
					t.Fatalf("right password during the delay after failure %d: %v", i+1, err)
				}
				f.clock.advance(until.Sub(f.clock.t))
			}
		}
		want := []time.Duration{-1, -1, time.Second, 2 * time.Second} // -1: no wait (zero time)
		for i, w := range want {
			if (w < 0) != (waits[i] < 0) || (w > 0 && waits[i] != w) {
				t.Fatalf("waits after each failure %v, want %v", waits, want)
			}
		}
		if got, err := f.auth.PasswordLogin(ctx, "alice", password, meta); err != nil || got.ID != u.ID {
			t.Fatalf("after the delay: %+v, %v", got, err)
		}
		events := f.events(t)
		var delayed int
		for _, e := range events {
			if e.Reason == "delayed" {
				delayed++
			}
		}
		if delayed != 2 {
			t.Errorf("%d delayed attempts audited, want 2", delayed)
		}
	})
}

func TestTooManyFailuresFromOneAddressLockIt(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{MaxFailuresPerIP: 3})
		u, password := f.addUser(t, "alice")
		for _, name := range []string{"bob", "carol"} {
			if _, err := f.auth.PasswordLogin(ctx, name, "guess", meta); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if _, err := f.auth.PasswordLogin(ctx, "dave", "guess", meta); !errors.Is(err, ErrLocked) {
			t.Fatalf("the failure that reaches the address limit: %v", err)
		}
		if _, err := f.auth.PasswordLogin(ctx, "alice", password, meta); !errors.Is(err, ErrLocked) {
			t.Fatalf("right password from a locked address: %v", err)
		}
		if got, err := f.auth.PasswordLogin(ctx, "alice", password, RequestMeta{IP: "198.51.100.1"}); err != nil || got.ID != u.ID {
			t.Fatalf("from another address: %+v, %v", got, err)
		}
	})
}

func TestDisabledAccount(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		if _, err := f.store.Update(ctx, u.ID, func(u *User) error { u.Status = StatusDisabled; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := f.auth.PasswordLogin(ctx, "alice", "wrong password", meta); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		if got, err := f.auth.PasswordLogin(ctx, "alice", password, meta); got != nil || !errors.Is(err, ErrAccountDisabled) {
			t.Fatalf("right password: %+v, %v", got, err)
		}
	})
}

func TestDeletedAccountCannotSignIn(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		if _, err := f.store.SoftDelete(ctx, u.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got, err := f.auth.PasswordLogin(ctx, "alice", password, meta); got != nil || !errors.Is(err, ErrAccountDisabled) {
			t.Fatalf("right password: %+v, %v", got, err)
		}
	})
}

func TestAccountWithoutPassword(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		if err := f.store.Create(ctx, &User{Username: "nopass", Kind: KindCitizen}); err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{"", "anything"} {
			if _, err := f.auth.PasswordLogin(ctx, "nopass", pw, meta); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("password %q: %v", pw, err)
			}
		}
	})
}

func TestPasswordLoginUpgradesOldHashes(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		oldParams := Argon2Params{MemoryKiB: 8192, Iterations: 2, Parallelism: 1}
		oldHash, _ := NewPasswordHasher(oldParams).Hash(password)
		if _, err := f.store.Update(ctx, u.ID, func(u *User) error { u.PasswordHash = oldHash; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := f.auth.PasswordLogin(ctx, "alice", password, meta); err != nil {
			t.Fatal(err)
		}
		stored, _ := f.store.Get(ctx, u.ID)
		if stored.PasswordHash == oldHash || !strings.Contains(stored.PasswordHash, "$m=8192,t=1,p=1$") {
			t.Fatalf("hash not upgraded to the current parameters")
		}
		if _, err := f.auth.PasswordLogin(ctx, "alice", password, meta); err != nil {
			t.Fatalf("sign-in with the upgraded hash: %v", err)
		}
		if again, _ := f.store.Get(ctx, u.ID); again.PasswordHash != stored.PasswordHash {
			t.Fatal("a current hash was replaced")
		}
	})
}

// failingUpdates is a store whose writes fail, to see that a correct
// sign-in does not hide the failure.
type failingUpdates struct{ *SQLStore }

var errStoreDown = errors.New("store down")

func (failingUpdates) Update(context.Context, string, func(*User) error) (*User, error) {
	return nil, errStoreDown
}

func TestPasswordLoginReportsWriteFailures(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		oldHash, _ := NewPasswordHasher(Argon2Params{MemoryKiB: 8192, Iterations: 2, Parallelism: 1}).Hash(password)
		if _, err := f.store.Update(ctx, u.ID, func(u *User) error { u.PasswordHash = oldHash; return nil }); err != nil {
			t.Fatal(err)
		}
		auth := NewAuthenticator(failingUpdates{f.store}, f.hasher, f.lockout, f.log)
		got, err := auth.PasswordLogin(ctx, "alice", password, meta)
		if got != nil || !errors.Is(err, errStoreDown) || errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("rehash write failed: %+v, %v", got, err)
		}

		if _, err := d.Exec(ctx, `DROP TABLE audit_events`); err != nil {
			t.Fatal(err)
		}
		for name, pw := range map[string]string{"right": password, "wrong": "wrong password"} {
			got, err := f.auth.PasswordLogin(ctx, "alice", pw, meta)
			if got != nil || err == nil || errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("%s password with the audit log down: %+v, %v", name, got, err)
			}
		}
	})
}

func TestPasswordLoginIsAudited(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		unknownPhone := randomPhone()
		type step struct {
			identifier, password string
			want                 audit.Event
			details              map[string]string
		}
		steps := []step{
			{"alice", password,
				audit.Event{Actor: u.ID, Subject: u.ID, Result: audit.ResultSuccess},
				map[string]string{"identifier_type": "username"}},
			{u.IDNumber, "wrong password",
				audit.Event{Subject: u.ID, Result: audit.ResultFailure, Reason: "bad_password"},
				map[string]string{"identifier_type": "id_number"}},
			{"mistyped-" + password, password,
				audit.Event{Result: audit.ResultFailure, Reason: "unknown_account"},
				map[string]string{"identifier_type": "username"}},
			{unknownPhone, password,
				audit.Event{Result: audit.ResultFailure, Reason: "unknown_account"},
				map[string]string{"identifier_type": "phone", "identifier": MaskPhone(unknownPhone)}},
		}
		for _, s := range steps {
			_, _ = f.auth.PasswordLogin(ctx, s.identifier, s.password, meta)
		}
		if _, err := f.store.Update(ctx, u.ID, func(u *User) error { u.Status = StatusDisabled; return nil }); err != nil {
			t.Fatal(err)
		}
		_, _ = f.auth.PasswordLogin(ctx, "alice", password, meta)
		steps = append(steps, step{want: audit.Event{Subject: u.ID, Result: audit.ResultFailure, Reason: "disabled"}, details: map[string]string{"identifier_type": "username"}})

		events := f.events(t)
		if len(events) != len(steps) {
			t.Fatalf("%d auth.login records, want %d", len(events), len(steps))
		}
		for i, e := range events {
			w := steps[i].want
			if e.Actor != w.Actor || e.Subject != w.Subject || e.Result != w.Result || e.Reason != w.Reason ||
				e.IP != meta.IP || e.UserAgent != meta.UserAgent || e.ClientID != meta.ClientID || !sameDetails(e.Details, steps[i].details) {
				t.Errorf("record %d: %+v\nwant %+v details %v", i, e, w, steps[i].details)
			}
			for _, v := range []string{e.Reason, e.Actor, e.Subject, e.UserAgent} {
				if strings.Contains(v, password) {
					t.Errorf("record %d holds the password", i)
				}
			}
			for _, v := range e.Details {
				if strings.Contains(v, password) || strings.Contains(v, unknownPhone) || strings.Contains(v, u.IDNumber) {
					t.Errorf("record %d details hold a secret or an unmasked identifier: %v", i, e.Details)
				}
			}
		}
	})
}

func sameDetails(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestLockedSignInIsAudited(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		u, password := f.addUser(t, "alice")
		for i := 0; i < DefaultMaxFailures; i++ {
			_, _ = f.auth.PasswordLogin(ctx, "alice", "wrong password", meta)
			f.clock.advance(DefaultMaxDelay)
		}
		_, _ = f.auth.PasswordLogin(ctx, "alice", password, meta)
		events := f.events(t)
		last := events[len(events)-1]
		if last.Subject != u.ID || last.Result != audit.ResultFailure || last.Reason != "locked" || last.Details["lock"] != "account" {
			t.Fatalf("last record: %+v", last)
		}
	})
}

func TestChangePassword(t *testing.T) {
	tests := []struct {
		name        string
		noPassword  bool   // the account was registered with a passkey
		current     string // "" with a password: the right one
		next        string
		wantErr     error
		wantChanged bool
	}{
		{name: "right current password", next: "a new passphrase 1", wantChanged: true},
		{name: "wrong current password", current: "wrong password", next: "a new passphrase 1", wantErr: ErrInvalidCredentials},
		{name: "too short", next: "short", wantErr: ErrPasswordTooShort},
		{name: "common", next: "password123", wantErr: ErrPasswordCommon},
		{name: "the username", next: "alice-the-user", wantErr: ErrPasswordIdentifier},
		{name: "first password of a passkey account", noPassword: true, current: "anything", next: "a new passphrase 1", wantChanged: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Backends(t, func(t *testing.T, d *db.DB) {
				ctx := context.Background()
				f := newLoginFixture(t, d, LockoutPolicy{})
				u, password := f.addUser(t, "alice-the-user")
				if tc.noPassword {
					if _, err := f.store.Update(ctx, u.ID, func(x *User) error { x.PasswordHash = ""; return nil }); err != nil {
						t.Fatal(err)
					}
				}
				current := tc.current
				if current == "" {
					current = password
				}
				err := f.auth.ChangePassword(ctx, u.ID, current, tc.next, meta)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("ChangePassword = %v, want %v", err, tc.wantErr)
				}
				_, newErr := f.auth.PasswordLogin(ctx, "alice-the-user", tc.next, RequestMeta{IP: "198.51.100.2"})
				if changed := newErr == nil; changed != tc.wantChanged {
					t.Fatalf("sign-in with the new password: %v, want changed=%v", newErr, tc.wantChanged)
				}
				changes, err := f.log.List(ctx, audit.Filter{Action: ActionPasswordChange})
				if err != nil {
					t.Fatal(err)
				}
				if got := len(changes) == 1 && changes[0].Subject == u.ID; got != tc.wantChanged {
					t.Fatalf("audit records of the change: %+v", changes)
				}
				if !tc.wantChanged && !tc.noPassword {
					if _, err := f.auth.PasswordLogin(ctx, "alice-the-user", password, RequestMeta{IP: "198.51.100.3"}); err != nil {
						t.Fatalf("the old password stopped working after a refused change: %v", err)
					}
				}
			})
		})
	}
}

package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
)

func randomTOTPSecret(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, totpSecretBytes)
	rand.Read(b)
	return b
}

// totpFixture is the TOTP service on one database with a shared test clock.
type totpFixture struct {
	t       *testing.T
	d       *db.DB
	totp    *TOTP
	lockout *Lockout
	clock   *testClock
	meta    RequestMeta
	store   *SQLStore
}

func newTOTPFixture(t *testing.T, d *db.DB) *totpFixture {
	t.Helper()
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	l, c := newTestLockout(d, LockoutPolicy{})
	store := newTestStore(t, d)
	tp := NewTOTP(d, k, store, l, audit.NewLog(d))
	tp.now = c.now
	return &totpFixture{t: t, d: d, totp: tp, lockout: l, clock: c, store: store, meta: RequestMeta{IP: "192.0.2.9", UserAgent: "test"}}
}

// account creates the account userID, named like its ID, if it is new.
func (f *totpFixture) account(userID string) string {
	f.t.Helper()
	err := f.store.Create(context.Background(), &User{ID: userID, Username: userID, Kind: KindCitizen})
	if err != nil && !errors.Is(err, db.ErrConflict) {
		f.t.Fatal(err)
	}
	return userID
}

// enrol turns TOTP on for userID and returns the secret and recovery codes.
func (f *totpFixture) enrol(userID string) ([]byte, []string) {
	f.t.Helper()
	ctx := context.Background()
	e, err := f.totp.BeginEnrolment(ctx, f.account(userID), f.meta)
	if err != nil {
		f.t.Fatal(err)
	}
	secret, err := DecodeTOTPSecret(e.Secret)
	if err != nil {
		f.t.Fatal(err)
	}
	codes, err := f.totp.ConfirmEnrolment(ctx, userID, f.code(secret), f.meta)
	if err != nil {
		f.t.Fatal(err)
	}
	// The confirming code's step is used up; sign-ins start at the next.
	f.clock.advance(TOTPPeriod)
	return secret, codes
}

// code is the current TOTP code of secret.
func (f *totpFixture) code(secret []byte) string {
	return TOTPCode(secret, f.clock.now(), TOTPDigits)
}

// wrongCode is a six-digit code that is not valid within the window.
func (f *totpFixture) wrongCode(secret []byte) string {
	valid := []string{
		TOTPCode(secret, f.clock.now().Add(-TOTPPeriod), TOTPDigits),
		f.code(secret),
		TOTPCode(secret, f.clock.now().Add(TOTPPeriod), TOTPDigits),
	}
	for {
		c := HOTP(randomTOTPSecret(f.t), 0, TOTPDigits)
		if !slices.Contains(valid, c) {
			return c
		}
	}
}

func (f *totpFixture) hasTOTP(userID string) bool {
	f.t.Helper()
	on, err := f.totp.HasTOTP(context.Background(), userID)
	if err != nil {
		f.t.Fatal(err)
	}
	return on
}

func TestTOTPEnrolment(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		first, err := f.totp.BeginEnrolment(ctx, f.account("user-1"), f.meta)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(first.URI, "otpauth://totp/sso:user-1?") || !strings.Contains(first.URI, "secret="+first.Secret) {
			t.Fatalf("URI %q", first.URI)
		}
		if f.hasTOTP("user-1") {
			t.Fatal("TOTP is on before confirmation")
		}
		again, err := f.totp.BeginEnrolment(ctx, f.account("user-1"), f.meta)
		if err != nil || again.Secret != first.Secret {
			t.Fatalf("reloading the set-up page changed the secret (%v)", err)
		}
		secret, _ := DecodeTOTPSecret(first.Secret)
		if _, err := f.totp.ConfirmEnrolment(ctx, "user-1", f.wrongCode(secret), f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("confirm with a wrong code: %v", err)
		}
		if f.hasTOTP("user-1") {
			t.Fatal("a wrong code turned TOTP on")
		}
		codes, err := f.totp.ConfirmEnrolment(ctx, "user-1", f.code(secret), f.meta)
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != RecoveryCodeCount || !f.hasTOTP("user-1") {
			t.Fatalf("after confirmation: %d codes, enabled %v", len(codes), f.hasTOTP("user-1"))
		}
		if _, err := f.totp.BeginEnrolment(ctx, f.account("user-1"), f.meta); !errors.Is(err, ErrTOTPEnabled) {
			t.Fatalf("begin while enabled: %v", err)
		}
		st, err := f.totp.Status(ctx, "user-1")
		if err != nil || !st.Enabled || st.RecoveryCodesLeft != RecoveryCodeCount || st.EnabledAt.IsZero() {
			t.Fatalf("status %+v, %v", st, err)
		}
	})
}

func TestTOTPEnrolmentOfferExpires(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		first, _ := f.totp.BeginEnrolment(ctx, f.account("user-1"), f.meta)
		secret, _ := DecodeTOTPSecret(first.Secret)
		f.clock.advance(totpEnrolmentTTL)
		if _, err := f.totp.ConfirmEnrolment(ctx, "user-1", f.code(secret), f.meta); !errors.Is(err, ErrNoTOTPEnrolment) {
			t.Fatalf("confirm of an expired offer: %v", err)
		}
		next, err := f.totp.BeginEnrolment(ctx, f.account("user-1"), f.meta)
		if err != nil || next.Secret == first.Secret {
			t.Fatalf("an expired offer was offered again (%v)", err)
		}
	})
}

func TestTOTPSecretIsSealedInTheDatabase(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		secret, codes := f.enrol("user-1")
		var sealed []byte
		if err := d.QueryRow(ctx, `SELECT secret_enc FROM totp_secrets WHERE user_id = ?`, "user-1").Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, secret) || bytes.Contains(sealed, []byte(encodeTOTPSecret(secret))) {
			t.Fatal("the secret is stored in clear")
		}
		if _, err := f.totp.kek.Open(sealed, totpAAD("user-2")); err == nil {
			t.Fatal("the sealed secret opens for another account")
		}
		rows, err := d.Query(ctx, `SELECT code_hash FROM totp_recovery_codes`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			rows.Scan(&h)
			for _, c := range codes {
				n, _ := normalizeRecoveryCode(c)
				if strings.Contains(h, n) || strings.Contains(h, c) {
					t.Fatal("a recovery code is stored in clear")
				}
			}
		}
	})
}

func TestTOTPCodeCannotBeReplayed(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		secret, _ := f.enrol("user-1")
		code := f.code(secret)
		if kind, err := f.totp.Verify(ctx, "user-1", code, f.meta); err != nil || kind != FactorTOTP {
			t.Fatalf("first use: %q %v", kind, err)
		}
		if _, err := f.totp.Verify(ctx, "user-1", code, f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("same code again: %v", err)
		}
		f.clock.advance(TOTPPeriod)
		// The used code is still inside the window, one step back.
		if _, err := f.totp.Verify(ctx, "user-1", code, f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("same code a step later: %v", err)
		}
		if _, err := f.totp.Verify(ctx, "user-1", f.code(secret), f.meta); err != nil {
			t.Fatalf("the next step's code: %v", err)
		}
	})
}

func TestTOTPVerifyWindow(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		secret, _ := f.enrol("user-1")
		// Later steps first: each accepted step must be newer than the last.
		tests := []struct {
			steps int
			ok    bool
		}{{-2, false}, {-1, true}, {2, false}, {0, true}, {1, true}}
		for _, tt := range tests {
			f.clock.advance(3 * TOTPPeriod) // past every step used so far
			code := TOTPCode(secret, f.clock.now().Add(time.Duration(tt.steps)*TOTPPeriod), TOTPDigits)
			_, err := f.totp.Verify(ctx, "user-1", code, f.meta)
			if (err == nil) != tt.ok {
				t.Errorf("code %+d steps away: %v, want accepted %v", tt.steps, err, tt.ok)
			}
			f.lockout.Reset(ctx, AccountKey("user-1"))
			f.lockout.Reset(ctx, MFAKey("user-1"))
		}
	})
}

func TestRecoveryCodeWorksOnce(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		_, codes := f.enrol("user-1")
		typed := strings.ToLower(strings.ReplaceAll(codes[3], "-", " "))
		if kind, err := f.totp.Verify(ctx, "user-1", typed, f.meta); err != nil || kind != FactorRecoveryCode {
			t.Fatalf("first use: %q %v", kind, err)
		}
		if _, err := f.totp.Verify(ctx, "user-1", codes[3], f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("second use: %v", err)
		}
		if st, _ := f.totp.Status(ctx, "user-1"); st.RecoveryCodesLeft != RecoveryCodeCount-1 {
			t.Fatalf("%d codes left, want %d", st.RecoveryCodesLeft, RecoveryCodeCount-1)
		}
		// Another account's codes are not this one's.
		_, other := f.enrol("user-2")
		if _, err := f.totp.Verify(ctx, "user-1", other[0], f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("another account's code: %v", err)
		}
		events, err := audit.NewLog(d).List(ctx, audit.Filter{Action: actionRecoveryCodeUsed})
		if err != nil || len(events) != 1 || events[0].Subject != "user-1" || events[0].Details["recovery_codes_left"] != "9" {
			t.Fatalf("recovery code audit: %+v %v", events, err)
		}
	})
}

func TestRegenerateRecoveryCodesReplacesAll(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		secret, old := f.enrol("user-1")
		fresh, err := f.totp.RegenerateRecoveryCodes(ctx, "user-1", f.code(secret), f.meta)
		if err != nil || len(fresh) != RecoveryCodeCount {
			t.Fatalf("regenerate: %d codes, %v", len(fresh), err)
		}
		if _, err := f.totp.Verify(ctx, "user-1", old[0], f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("an old code after regeneration: %v", err)
		}
		if _, err := f.totp.Verify(ctx, "user-1", fresh[0], f.meta); err != nil {
			t.Fatalf("a new code: %v", err)
		}
		if _, err := f.totp.RegenerateRecoveryCodes(ctx, "user-1", f.wrongCode(secret), f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("regenerate with a wrong code: %v", err)
		}
	})
}

func TestTOTPLocksAfterFiveWrongCodes(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		tests := []struct {
			name          string
			passwordAfter int  // wrong codes after which a correct password resets the account key; 0: never
			accountLocked bool // whether the password step is locked too
		}{
			{"five in a row", 0, true},
			{"signing in again after four", 4, false},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				user := fmt.Sprintf("user-%d", i)
				secret, _ := f.enrol(user)
				for n := 1; n < DefaultMaxFailures; n++ {
					if _, err := f.totp.Verify(ctx, user, f.wrongCode(secret), f.meta); !errors.Is(err, ErrInvalidCode) {
						t.Fatalf("wrong code %d: %v", n, err)
					}
					f.clock.advance(DefaultMaxDelay) // past the growing delay
					if n == tt.passwordAfter {
						f.lockout.Reset(ctx, AccountKey(user))
					}
				}
				_, err := f.totp.Verify(ctx, user, f.wrongCode(secret), f.meta)
				var locked *LockedError
				if !errors.As(err, &locked) || !errors.Is(err, ErrLocked) {
					t.Fatalf("fifth wrong code: %v", err)
				}
				if _, err := f.totp.Verify(ctx, user, f.code(secret), f.meta); !errors.Is(err, ErrLocked) {
					t.Fatalf("right code while locked: %v", err)
				}
				if until, _ := f.lockout.Check(ctx, AccountKey(user)); until.IsZero() == tt.accountLocked {
					t.Fatalf("account key locked: %v, want %v", !until.IsZero(), tt.accountLocked)
				}
				f.clock.advance(DefaultLockFor)
				if _, err := f.totp.Verify(ctx, user, f.code(secret), f.meta); err != nil {
					t.Fatalf("right code after the lock: %v", err)
				}
			})
		}
	})
}

func TestTOTPDisableNeedsACode(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		secret, codes := f.enrol("user-1")
		if err := f.totp.Disable(ctx, "user-1", f.wrongCode(secret), f.meta); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("disable with a wrong code: %v", err)
		}
		if !f.hasTOTP("user-1") {
			t.Fatal("a wrong code disabled TOTP")
		}
		if err := f.totp.Disable(ctx, "user-1", codes[0], f.meta); err != nil {
			t.Fatalf("disable with a recovery code: %v", err)
		}
		if f.hasTOTP("user-1") {
			t.Fatal("still enabled")
		}
		var n int
		d.QueryRow(ctx, `SELECT count(*) FROM totp_recovery_codes WHERE user_id = ?`, "user-1").Scan(&n)
		if n != 0 {
			t.Fatalf("%d recovery codes survive", n)
		}
		if _, err := f.totp.Verify(ctx, "user-1", f.code(secret), f.meta); !errors.Is(err, ErrTOTPNotEnabled) {
			t.Fatalf("verify after disable: %v", err)
		}
	})
}

func TestTOTPIsAudited(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newTOTPFixture(t, d)
		secret, _ := f.enrol("user-1")
		f.totp.Verify(ctx, "user-1", f.wrongCode(secret), f.meta)
		f.totp.Verify(ctx, "user-1", f.code(secret), f.meta)
		f.clock.advance(TOTPPeriod)
		f.totp.Disable(ctx, "user-1", f.code(secret), f.meta)
		events, err := audit.NewLog(d).List(ctx, audit.Filter{Subject: "user-1"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			got = append(got, e.Action+" "+e.Result)
			if e.IP != f.meta.IP {
				t.Errorf("%s has IP %q", e.Action, e.IP)
			}
		}
		want := []string{
			"mfa.totp_enrol success", "mfa.totp_confirm success",
			"mfa.verify failure", "mfa.verify success", "mfa.totp_disable success",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("audit trail\n got %q\nwant %q", got, want)
		}
	})
}

func TestMFAChallenges(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := newTestClock()
		s := NewMFAChallenges(d, 0)
		s.now = c.now
		ch := &MFAChallenge{UserID: "user-1", ReturnTo: "/oauth2/auth?client_id=x", AMR: []string{"pwd"}, ACR: 2}
		token, err := s.Start(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		if ch.ID == "" || ch.ID == token || !ch.ExpiresAt.Equal(c.t.Add(DefaultMFAChallengeTTL)) {
			t.Fatalf("challenge %+v", ch)
		}
		var stored int
		d.QueryRow(ctx, `SELECT count(*) FROM mfa_challenges WHERE id = ?`, token).Scan(&stored)
		if stored != 0 {
			t.Fatal("the cookie token is stored in clear")
		}
		got, err := s.Lookup(ctx, token)
		if err != nil || got.UserID != "user-1" || got.ReturnTo != ch.ReturnTo || !slices.Equal(got.AMR, []string{"pwd"}) || got.ACR != 2 {
			t.Fatalf("lookup %+v, %v", got, err)
		}
		for want := 1; want <= 2; want++ {
			if n, err := s.Fail(ctx, got.ID); err != nil || n != want {
				t.Fatalf("attempt %d counted as %d, %v", want, n, err)
			}
		}
		if _, err := s.Lookup(ctx, "not-a-token"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("malformed token: %v", err)
		}
		if err := s.Delete(ctx, got.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, got.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		token, _ = s.Start(ctx, &MFAChallenge{UserID: "user-1", ReturnTo: "/", AMR: []string{"pwd"}})
		c.advance(DefaultMFAChallengeTTL)
		if _, err := s.Lookup(ctx, token); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("expired challenge: %v", err)
		}
	})
}

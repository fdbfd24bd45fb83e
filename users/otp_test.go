package users

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
)

// captureSender keeps every message instead of sending it.
type captureSender struct {
	mu   sync.Mutex
	msgs []Message
	err  error // returned by Send when set
}

func (c *captureSender) Send(_ context.Context, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return c.err
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// lastCode is the code in the newest message.
func (c *captureSender) lastCode(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) == 0 {
		t.Fatal("no message was sent")
	}
	code := sixDigits.FindString(c.msgs[len(c.msgs)-1].Text)
	if code == "" {
		t.Fatalf("no code in the message %q", c.msgs[len(c.msgs)-1].Text)
	}
	return code
}

func (c *captureSender) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// otpFixture is a code service on a settable clock with capturing senders.
type otpFixture struct {
	otp   *OTP
	clock *testClock
	sms   *captureSender
	email *captureSender
	log   *audit.Log
}

func newOTPFixture(t *testing.T, d *db.DB, o OTPOptions) *otpFixture {
	t.Helper()
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	f := &otpFixture{clock: newTestClock(), sms: &captureSender{}, email: &captureSender{}, log: audit.NewLog(d)}
	f.otp = NewOTP(d, k, OTPSenders{SMS: f.sms, Email: f.email}, f.log, o)
	f.otp.now = f.clock.now
	return f
}

// wrongCode is a six-digit code other than code.
func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func TestOTPIssueAndCheck(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeRegister, "+86 "+phone); err != nil {
			t.Fatal(err)
		}
		if f.sms.count() != 1 || f.sms.msgs[0].To != phone || f.sms.msgs[0].Channel != ChannelSMS {
			t.Fatalf("sent %+v, want one SMS to the normalized number", f.sms.msgs)
		}
		code := f.sms.lastCode(t)
		if err := f.otp.Check(ctx, PurposeReset, phone, code); !errors.Is(err, ErrOTPExpired) {
			t.Errorf("code checked for another purpose: %v, want ErrOTPExpired", err)
		}
		if err := f.otp.Check(ctx, PurposeRegister, phone, code[:3]+" "+code[3:]); err != nil {
			t.Fatalf("right code: %v", err)
		}
	})
}

func TestOTPEmailDestination(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		addr := fmt.Sprintf("u%d@example.org", time.Now().UnixNano())
		if err := f.otp.Issue(ctx, PurposeLogin, strings.ToUpper(addr)); err != nil {
			t.Fatal(err)
		}
		if f.email.count() != 1 || f.email.msgs[0].To != addr || f.sms.count() != 0 {
			t.Fatalf("email %+v, sms %d: want one email to %s", f.email.msgs, f.sms.count(), addr)
		}
		if err := f.otp.Check(ctx, PurposeLogin, addr, f.email.lastCode(t)); err != nil {
			t.Fatal(err)
		}
		if err := f.otp.Issue(ctx, PurposeLogin, "not a destination"); !errors.Is(err, ErrOTPDestination) {
			t.Errorf("bad destination: %v, want ErrOTPDestination", err)
		}
	})
}

func TestOTPSingleUse(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeReset, phone); err != nil {
			t.Fatal(err)
		}
		code := f.sms.lastCode(t)
		if err := f.otp.Check(ctx, PurposeReset, phone, code); err != nil {
			t.Fatal(err)
		}
		if err := f.otp.Check(ctx, PurposeReset, phone, code); !errors.Is(err, ErrOTPExpired) {
			t.Errorf("second use: %v, want ErrOTPExpired", err)
		}
	})
}

func TestOTPExpiry(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		tests := []struct {
			name  string
			after time.Duration
			want  error
		}{
			{"just before expiry", DefaultOTPTTL - time.Second, nil},
			{"at expiry", DefaultOTPTTL, ErrOTPExpired},
			{"long after", time.Hour, ErrOTPExpired},
		}
		for _, tc := range tests {
			phone := randomPhone()
			if err := f.otp.Issue(ctx, PurposeLogin, phone); err != nil {
				t.Fatal(err)
			}
			code := f.sms.lastCode(t)
			f.clock.advance(tc.after)
			if err := f.otp.Check(ctx, PurposeLogin, phone, code); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
			}
		}
	})
}

func TestOTPWrongCodeAndAttemptLimit(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeRegister, phone); err != nil {
			t.Fatal(err)
		}
		code := f.sms.lastCode(t)
		for i := 1; i < DefaultOTPMaxAttempts; i++ {
			if err := f.otp.Check(ctx, PurposeRegister, phone, wrongCode(code)); !errors.Is(err, ErrOTPWrong) {
				t.Fatalf("wrong code %d: %v, want ErrOTPWrong", i, err)
			}
		}
		if err := f.otp.Check(ctx, PurposeRegister, phone, wrongCode(code)); !errors.Is(err, ErrOTPTooManyAttempts) {
			t.Fatalf("wrong code %d: %v, want ErrOTPTooManyAttempts", DefaultOTPMaxAttempts, err)
		}
		if err := f.otp.Check(ctx, PurposeRegister, phone, code); !errors.Is(err, ErrOTPTooManyAttempts) {
			t.Errorf("right code after the limit: %v, want ErrOTPTooManyAttempts (the code is dead)", err)
		}
	})
}

func TestOTPWrongCodesBeforeRightOne(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeRegister, phone); err != nil {
			t.Fatal(err)
		}
		code := f.sms.lastCode(t)
		for _, typed := range []string{wrongCode(code), "", "abcdef", strings.Repeat("9", 100)} {
			if err := f.otp.Check(ctx, PurposeRegister, phone, typed); !errors.Is(err, ErrOTPWrong) {
				t.Errorf("Check(%q) = %v, want ErrOTPWrong", typed, err)
			}
		}
		if err := f.otp.Check(ctx, PurposeRegister, phone, code); err != nil {
			t.Errorf("right code on the last attempt: %v", err)
		}
	})
}

func TestOTPNewCodeReplacesOld(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeLogin, phone); err != nil {
			t.Fatal(err)
		}
		old := f.sms.lastCode(t)
		f.clock.advance(DefaultOTPSendInterval)
		if err := f.otp.Issue(ctx, PurposeLogin, phone); err != nil {
			t.Fatal(err)
		}
		fresh := f.sms.lastCode(t)
		if old != fresh {
			if err := f.otp.Check(ctx, PurposeLogin, phone, old); !errors.Is(err, ErrOTPWrong) {
				t.Errorf("replaced code: %v, want ErrOTPWrong", err)
			}
		}
		if err := f.otp.Check(ctx, PurposeLogin, phone, fresh); err != nil {
			t.Errorf("new code: %v", err)
		}
	})
}

func TestOTPSendRateLimit(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{SendInterval: time.Minute, DailyLimit: 3})
		phone := randomPhone()
		steps := []struct {
			wait time.Duration
			want error
		}{
			{0, nil},
			{30 * time.Second, ErrOTPRateLimited}, // within the interval
			{30 * time.Second, nil},
			{time.Minute, nil}, // third of the day
			{time.Minute, ErrOTPRateLimited},
			{time.Hour, ErrOTPRateLimited},
			{24 * time.Hour, nil}, // a new day
		}
		sent := 0
		for i, s := range steps {
			f.clock.advance(s.wait)
			// Purposes share the limit, so alternating them gains nothing.
			purpose := []OTPPurpose{PurposeRegister, PurposeReset}[i%2]
			err := f.otp.Issue(ctx, purpose, phone)
			if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
				t.Fatalf("step %d: Issue = %v, want %v", i, err, s.want)
			}
			if err == nil {
				sent++
			}
		}
		if f.sms.count() != sent {
			t.Errorf("%d messages sent, want %d: a refused request must send nothing", f.sms.count(), sent)
		}
		if err := f.otp.Issue(ctx, PurposeRegister, randomPhone()); err != nil {
			t.Errorf("another number: %v (limits are per destination)", err)
		}
		// Notices count like codes.
		if err := f.otp.Notify(ctx, phone, "notice"); !errors.Is(err, ErrOTPRateLimited) {
			t.Errorf("Notify right after a code: %v, want ErrOTPRateLimited", err)
		}
	})
}

// One machine must not walk through phone numbers sending codes.
func TestOTPPerAddressLimit(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newOTPFixture(t, d, OTPOptions{HourlyLimitPerIP: 3})
		office := WithRequestMeta(context.Background(), RequestMeta{IP: "192.0.2.30"})
		for i := 0; i < 3; i++ {
			if err := f.otp.Issue(office, PurposeRegister, randomPhone()); err != nil {
				t.Fatalf("message %d from the address: %v", i+1, err)
			}
		}
		spare := randomPhone()
		if err := f.otp.Issue(office, PurposeRegister, spare); !errors.Is(err, ErrOTPAddressLimited) {
			t.Fatalf("fourth message within the hour: %v, want ErrOTPAddressLimited", err)
		}
		if n := f.sms.count(); n != 3 {
			t.Fatalf("%d messages sent, want 3: a refused request must send nothing", n)
		}
		elsewhere := WithRequestMeta(context.Background(), RequestMeta{IP: "198.51.100.30"})
		if err := f.otp.Issue(elsewhere, PurposeRegister, spare); err != nil {
			t.Fatalf("the refused destination from another address: %v (the refusal must not use up its allowance)", err)
		}
		f.clock.advance(time.Hour)
		if err := f.otp.Issue(office, PurposeRegister, randomPhone()); err != nil {
			t.Fatalf("after the hour: %v", err)
		}
		events, err := f.log.List(context.Background(), audit.Filter{Action: ActionOTPIssue})
		if err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, e := range events {
			if e.Reason == "ip_rate_limited" {
				refused++
			}
		}
		if refused != 1 {
			t.Errorf("%d refusals audited as ip_rate_limited, want 1", refused)
		}
	})
}

func TestOTPSharedLimitsAcrossNodes(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		a := newOTPFixture(t, d, OTPOptions{})
		b := &OTP{d: d, codeKey: a.otp.codeKey, indexKey: a.otp.indexKey, senders: a.otp.senders, log: a.log, opts: a.otp.opts, now: a.clock.now}
		phone := randomPhone()
		if err := a.otp.Issue(ctx, PurposeLogin, phone); err != nil {
			t.Fatal(err)
		}
		if err := b.Issue(ctx, PurposeLogin, phone); !errors.Is(err, ErrOTPRateLimited) {
			t.Errorf("second node: %v, want ErrOTPRateLimited", err)
		}
		if err := b.Check(ctx, PurposeLogin, phone, a.sms.lastCode(t)); err != nil {
			t.Errorf("second node checks the first node's code: %v", err)
		}
	})
}

func TestOTPStoredHashed(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeRegister, phone); err != nil {
			t.Fatal(err)
		}
		code := f.sms.lastCode(t)
		var purpose, dest, hash string
		if err := d.QueryRow(ctx, `SELECT purpose, destination, code_hash FROM otp_codes`).Scan(&purpose, &dest, &hash); err != nil {
			t.Fatal(err)
		}
		for _, col := range []string{dest, hash} {
			if strings.Contains(col, code) || strings.Contains(col, phone) {
				t.Errorf("stored %q holds the code or the phone number", col)
			}
		}
		// Without the key, trying every code against the row finds nothing.
		other := NewOTP(d, mustKEK(t), OTPSenders{}, f.log, OTPOptions{})
		dst, _ := other.parseDestination(phone)
		if other.hashCode(PurposeRegister, dst, code) == hash {
			t.Error("the stored hash can be recomputed without the key-encryption key")
		}
		if want := f.otp.hashCode(PurposeRegister, destination{index: dest}, code); want != hash {
			t.Error("the stored hash is not the keyed hash of the code")
		}
		events, err := f.log.List(ctx, audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if s := fmt.Sprint(e); strings.Contains(s, code) || strings.Contains(s, phone) {
				t.Errorf("audit event %s holds the code or the full phone number: %s", e.Action, s)
			}
		}
	})
}

func mustKEK(t *testing.T) *kek.KEK {
	t.Helper()
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOTPCheckThenKeepsCodeWhenWorkFails(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeRegister, phone); err != nil {
			t.Fatal(err)
		}
		code := f.sms.lastCode(t)
		errTaken := errors.New("username taken")
		if err := f.otp.CheckThen(ctx, PurposeRegister, phone, code, func(context.Context) error { return errTaken }); !errors.Is(err, errTaken) {
			t.Fatalf("CheckThen = %v, want the work's error", err)
		}
		ran := false
		if err := f.otp.CheckThen(ctx, PurposeRegister, phone, code, func(context.Context) error { ran = true; return nil }); err != nil || !ran {
			t.Fatalf("second CheckThen = %v, ran %v: the code must survive failed work", err, ran)
		}
		if err := f.otp.CheckThen(ctx, PurposeRegister, phone, wrongCode(code), func(context.Context) error {
			t.Error("work ran for a wrong code")
			return nil
		}); !errors.Is(err, ErrOTPExpired) {
			t.Errorf("after use: %v, want ErrOTPExpired", err)
		}
	})
}

func TestOTPAudited(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := WithRequestMeta(context.Background(), RequestMeta{IP: "192.0.2.7"})
		f := newOTPFixture(t, d, OTPOptions{})
		phone := randomPhone()
		if err := f.otp.Issue(ctx, PurposeReset, phone); err != nil {
			t.Fatal(err)
		}
		_ = f.otp.Issue(ctx, PurposeReset, phone) // rate-limited
		_ = f.otp.Check(ctx, PurposeReset, phone, wrongCode(f.sms.lastCode(t)))
		_ = f.otp.Check(ctx, PurposeReset, phone, f.sms.lastCode(t))
		events, err := f.log.List(ctx, audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			got = append(got, e.Action+"/"+e.Result+"/"+e.Reason)
			if e.IP != "192.0.2.7" || e.Details["destination"] != MaskPhone(phone) || e.Details["purpose"] != string(PurposeReset) {
				t.Errorf("event %+v lacks the address, masked destination or purpose", e)
			}
		}
		want := []string{"otp.issue/success/", "otp.issue/failure/rate_limited", "otp.check/failure/wrong_code", "otp.check/success/"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("audit = %v, want %v", got, want)
		}
	})
}

func TestOTPSendFailure(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newOTPFixture(t, d, OTPOptions{})
		f.sms.err = errors.New("gateway down")
		if err := f.otp.Issue(context.Background(), PurposeLogin, randomPhone()); !errors.Is(err, f.sms.err) {
			t.Errorf("Issue = %v, want the sender's error", err)
		}
		none := NewOTP(d, mustKEK(t), OTPSenders{}, f.log, OTPOptions{})
		if err := none.Issue(context.Background(), PurposeLogin, randomPhone()); !errors.Is(err, ErrOTPNoSender) {
			t.Errorf("Issue without a sender = %v, want ErrOTPNoSender", err)
		}
	})
}

func TestOTPCodesAreSixRandomDigits(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		c, err := newOTPCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != OTPDigits || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("code %q is not six digits", c)
		}
		seen[c] = true
	}
	if len(seen) < 45 {
		t.Errorf("50 codes gave only %d distinct values", len(seen))
	}
}

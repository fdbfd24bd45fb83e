package users

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// TOTP parameters (RFC 6238). SHA-1, six digits and 30 seconds are what
// every authenticator app understands; other values are silently ignored
// by some of them, which would lock people out.
const (
	TOTPDigits = 6
	TOTPPeriod = 30 * time.Second
	// TOTPIssuer names this server in authenticator apps.
	TOTPIssuer = "sso"
	// totpSkew is how many time steps either side of now are accepted, for
	// phone clocks that drift and people who type slowly.
	totpSkew = 1
	// totpSecretBytes is the secret's length: 160 bits, as RFC 4226 recommends.
	totpSecretBytes = 20
	// totpEnrolmentTTL is how long an unconfirmed secret stays on offer, so
	// that reloading the set-up page does not invalidate what was scanned.
	totpEnrolmentTTL = 15 * time.Minute
	// maxSecondFactorCode bounds a typed code before any work.
	maxSecondFactorCode = 64
)

// Second-factor errors.
var (
	ErrInvalidCode     = errors.New("wrong or already used code")
	ErrTOTPNotEnabled  = errors.New("two-step verification is not enabled")
	ErrTOTPEnabled     = errors.New("two-step verification is already enabled")
	ErrNoTOTPEnrolment = errors.New("no two-step verification set-up in progress")
)

// SecondFactor names what proved the second factor.
type SecondFactor string

// The second factors a sign-in can present.
const (
	FactorTOTP         SecondFactor = "otp"
	FactorRecoveryCode SecondFactor = "recovery_code"
)

// Audit actions of two-step verification. A successful or failed check of
// a code at sign-in is actionSecondFactor; the password step before it is
// audit.ActionLogin.
const (
	actionTOTPEnrol          = "mfa.totp_enrol"
	actionTOTPConfirm        = "mfa.totp_confirm"
	actionTOTPDisable        = "mfa.totp_disable"
	actionSecondFactor       = "mfa.verify"
	actionRecoveryCodeUsed   = "mfa.recovery_code_used"
	actionRecoveryRegenerate = "mfa.recovery_codes_regenerate"
)

// mfaKeyPrefix is the lockout key of wrong second-factor codes. They are
// counted under the account key too, but a correct password resets that
// key; this one is reset only by a correct code, so someone who knows the
// password cannot get unlimited guesses by signing in again every four.
const mfaKeyPrefix = "mfa:"

// MFAKey is the lockout key of an account's second factor.
func MFAKey(userID string) string { return mfaKeyPrefix + userID }

// TOTPEnrolment is a secret on offer to an authenticator app. It is shown
// to its owner once, as a QR code of URI and as text.
type TOTPEnrolment struct {
	Secret string `json:"-"` // base32 without padding, for typing in by hand
	URI    string `json:"-"` // otpauth://totp/…, for the QR code
}

// TOTPStatus is what the account security page shows.
type TOTPStatus struct {
	Enabled           bool
	EnabledAt         time.Time
	RecoveryCodesLeft int
}

// TOTP is two-step verification with an authenticator app: enrolment,
// checking codes at sign-in (with replay protection and lockout), recovery
// codes, and switching it off. Secrets are sealed under the
// key-encryption key.
type TOTP struct {
	d           *db.DB
	kek         *kek.KEK
	accounts    Store // for the username that labels the secret in apps
	recoveryKey []byte
	lockout     *Lockout
	log         *audit.Log
	now         func() time.Time // replaced by tests
}

// NewTOTP returns the two-step verification service stored in d.
func NewTOTP(d *db.DB, k *kek.KEK, accounts Store, lockout *Lockout, log *audit.Log) *TOTP {
	return &TOTP{
		d: d, kek: k, accounts: accounts, recoveryKey: k.Derive("sso users recovery code"),
		lockout: lockout, log: log, now: time.Now,
	}
}

func (t *TOTP) clock() time.Time {
	return t.now().UTC().Truncate(time.Microsecond)
}

// totpAAD binds a sealed secret to its account, so that a row copied to
// another account does not open.
func totpAAD(userID string) []byte { return []byte("users.totp:" + userID) }

// totpStep is the RFC 6238 time step (counter) that t falls in.
func totpStep(t time.Time) int64 {
	return t.Unix() / int64(TOTPPeriod/time.Second)
}

// HOTP is the RFC 4226 one-time password of counter, with digits digits.
func HOTP(secret []byte, counter uint64, digits int) string {
	m := hmac.New(sha1.New, secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m.Write(msg[:])
	sum := m.Sum(nil)
	offset := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[offset:offset+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// TOTPCode is the RFC 6238 code (HMAC-SHA-1, 30-second steps) at time at.
func TOTPCode(secret []byte, at time.Time, digits int) string {
	return HOTP(secret, uint64(totpStep(at)), digits)
}

// matchTOTP returns the time step within ±totpSkew of now whose code is
// code. Every candidate is computed and compared in constant time, so the
// time taken says nothing about which step matched or how close a guess was.
func matchTOTP(secret []byte, code string, now time.Time) (step int64, ok bool) {
	current := totpStep(now)
	for s := current - totpSkew; s <= current+totpSkew; s++ {
		want := HOTP(secret, uint64(s), TOTPDigits)
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}

// encodeTOTPSecret is the secret as authenticator apps take it.
func encodeTOTPSecret(secret []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
}

// DecodeTOTPSecret reads a secret as shown for typing in by hand.
func DecodeTOTPSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(s, "="))
}

// otpauthURI is the Key URI Format of Google Authenticator, which every
// authenticator app reads: otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER.
func otpauthURI(issuer, account string, secret []byte) string {
	q := url.Values{
		"secret":    {encodeTOTPSecret(secret)},
		"issuer":    {issuer},
		"algorithm": {"SHA1"},
		"digits":    {fmt.Sprint(TOTPDigits)},
		"period":    {fmt.Sprint(int(TOTPPeriod / time.Second))},
	}
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: q.Encode()}
	return u.String()
}

// classifyCode tells a typed code's kind by its shape: six digits are a
// TOTP code, anything else is tried as a recovery code. It returns the
// code normalized, or "" when it cannot be either.
func classifyCode(code string) (SecondFactor, string) {
	if len(code) > maxSecondFactorCode {
		return "", ""
	}
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, code)
	if len(code) == TOTPDigits && strings.Trim(code, "0123456789") == "" {
		return FactorTOTP, code
	}
	if c, ok := normalizeRecoveryCode(code); ok {
		return FactorRecoveryCode, c
	}
	return "", ""
}

// MFAChallenge is a sign-in waiting for its second factor: the password
// was right, the session is not created yet. It lives server-side; the
// browser holds only a random token whose hash is ID.
type MFAChallenge struct {
	ID        string
	UserID    string
	ReturnTo  string
	AMR       []string // methods proven so far, e.g. ["pwd"]
	ACR       int
	Attempts  int // wrong codes so far
	ExpiresAt time.Time
}

// DefaultMFAChallengeTTL is how long a person has to type the code.
const DefaultMFAChallengeTTL = 5 * time.Minute

// MaxMFAAttempts is how many wrong codes end a challenge.
const MaxMFAAttempts = DefaultMaxFailures

// MFAChallenges keeps pending second-factor steps in the database, so that
// any node can finish a sign-in another began.
type MFAChallenges struct {
	d   *db.DB
	ttl time.Duration
	now func() time.Time // replaced by tests
}

// NewMFAChallenges returns the pending second-factor steps stored in d;
// a zero ttl takes DefaultMFAChallengeTTL.
func NewMFAChallenges(d *db.DB, ttl time.Duration) *MFAChallenges {
	if ttl <= 0 {
		ttl = DefaultMFAChallengeTTL
	}
	return &MFAChallenges{d: d, ttl: ttl, now: time.Now}
}

func (c *MFAChallenges) clock() time.Time {
	return c.now().UTC().Truncate(time.Microsecond)
}

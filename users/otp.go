package users

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// OTPPurpose says what a one-time code is for. A code issued for one
// purpose is never accepted for another.
type OTPPurpose string

// The purposes of one-time codes.
const (
	PurposeRegister OTPPurpose = "register"
	PurposeLogin    OTPPurpose = "login"
	PurposeReset    OTPPurpose = "reset"
)

// One-time code parameters.
const (
	OTPDigits = 6
	// DefaultOTPTTL is how long a code works: long enough to read an SMS
	// and type it, short enough that an old message is worthless.
	DefaultOTPTTL = 5 * time.Minute
	// DefaultOTPMaxAttempts is how many wrong guesses kill a code: an
	// attacker gets 5 tries in a million per code sent.
	DefaultOTPMaxAttempts = 5
	// DefaultOTPSendInterval and DefaultOTPDailyLimit bound the messages one
	// destination receives, whatever their purpose: nobody can be flooded,
	// and nobody can run up the SMS bill by asking again and again.
	DefaultOTPSendInterval = 60 * time.Second
	DefaultOTPDailyLimit   = 10
	// DefaultOTPHourlyLimitPerIP bounds the messages asked for from one
	// client address, to any destinations: one machine cannot walk through
	// phone numbers sending codes. A service hall behind one address still
	// gets one every two minutes.
	DefaultOTPHourlyLimitPerIP = 30
	// otpAddressWindow is the window of the per-address limit.
	otpAddressWindow = time.Hour
	// otpDay is the window of the daily limit.
	otpDay = 24 * time.Hour
	// maxOTPInput bounds a typed code before any work.
	maxOTPInput = 64
)

// One-time code errors, checked with errors.Is.
var (
	ErrOTPExpired         = errors.New("the code has expired or was never sent; ask for a new one")
	ErrOTPTooManyAttempts = errors.New("too many wrong codes; ask for a new one")
	ErrOTPWrong           = errors.New("wrong code")
	ErrOTPRateLimited     = errors.New("too many messages to this destination; try again later")
	ErrOTPAddressLimited  = errors.New("too many messages asked for from this network address; try again later")
	ErrOTPDestination     = errors.New("destination must be a mainland mobile number or an email address")
	ErrOTPPurpose         = errors.New("unknown one-time code purpose")
	ErrOTPNoSender        = errors.New("no sender is configured for this channel")
)

// Audit actions of one-time codes and the flows built on them. Events
// name the destination masked and never hold a code.
const (
	ActionOTPIssue      = "otp.issue"
	ActionOTPNotify     = "otp.notify"
	ActionOTPCheck      = "otp.check"
	ActionUserRegister  = "user.register"
	ActionPasswordReset = "user.password_reset"
)

// OTPOptions are the limits of one-time codes; zero fields take the defaults.
type OTPOptions struct {
	TTL              time.Duration
	MaxAttempts      int
	SendInterval     time.Duration
	DailyLimit       int
	HourlyLimitPerIP int
}

// OTPSenders deliver codes by channel; a nil sender turns its channel off.
type OTPSenders struct {
	SMS   Sender
	Email Sender
}

// OTP issues and checks one-time codes sent by SMS or email. Codes and
// send limits live in the database, so that every node sees the same ones;
// codes are stored only as keyed hashes.
type OTP struct {
	d        *db.DB
	codeKey  []byte // HMAC key of stored codes
	indexKey []byte // HMAC key of destinations
	senders  OTPSenders
	log      *audit.Log
	opts     OTPOptions
	now      func() time.Time // replaced by tests
}

// NewOTP returns the one-time code service stored in d.
func NewOTP(d *db.DB, k *kek.KEK, senders OTPSenders, log *audit.Log, o OTPOptions) *OTP {
	if o.TTL <= 0 {
		o.TTL = DefaultOTPTTL
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultOTPMaxAttempts
	}
	if o.SendInterval <= 0 {
		o.SendInterval = DefaultOTPSendInterval
	}
	if o.DailyLimit <= 0 {
		o.DailyLimit = DefaultOTPDailyLimit
	}
	if o.HourlyLimitPerIP <= 0 {
		o.HourlyLimitPerIP = DefaultOTPHourlyLimitPerIP
	}
	return &OTP{
		d: d, codeKey: k.Derive("sso users otp code"), indexKey: k.Derive("sso users otp destination"),
		senders: senders, log: log, opts: o, now: time.Now,
	}
}

func (o *OTP) clock() time.Time {
	return o.now().UTC().Truncate(time.Microsecond)
}

// requestMetaKey carries a RequestMeta in a context.
type requestMetaKey struct{}

// WithRequestMeta attaches where a request came from to ctx, so that the
// audit events of Issue, Notify and Check name the client address while
// their signatures stay what every caller needs.
func WithRequestMeta(ctx context.Context, m RequestMeta) context.Context {
	return context.WithValue(ctx, requestMetaKey{}, m)
}

func requestMetaFrom(ctx context.Context) RequestMeta {
	m, _ := ctx.Value(requestMetaKey{}).(RequestMeta)
	return m
}

// destination is a normalized phone number or address and its channel.
type destination struct {
	channel string
	to      string
	index   string // keyed HMAC of to: what the tables store
}

// parseDestination accepts a mainland mobile number (sms) or an email address.
func (o *OTP) parseDestination(s string) (destination, error) {
	if p, err := NormalizePhone(s); err == nil {
		return destination{channel: ChannelSMS, to: p, index: hmacHex(o.indexKey, "sms:"+p)}, nil
	}
	if e, err := NormalizeEmail(s); err == nil && e != "" {
		return destination{channel: ChannelEmail, to: e, index: hmacHex(o.indexKey, "email:"+e)}, nil
	}
	return destination{}, ErrOTPDestination
}

// masked is the destination as audit records show it.
func (d destination) masked() string {
	if d.channel == ChannelSMS {
		return MaskPhone(d.to)
	}
	return maskEmail(d.to)
}

// maskEmail keeps the first character of the local part and the domain.
func maskEmail(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

func checkPurpose(p OTPPurpose) error {
	switch p {
	case PurposeRegister, PurposeLogin, PurposeReset:
		return nil
	}
	return fmt.Errorf("%w %q", ErrOTPPurpose, p)
}

// newOTPCode returns six uniformly random digits.
func newOTPCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", OTPDigits, n.Int64()), nil
}

// hashCode binds a code to its purpose and destination, under a key the
// database does not hold: a copy of the table alone cannot be searched
// for the code.
func (o *OTP) hashCode(purpose OTPPurpose, dest destination, code string) string {
	return hmacHex(o.codeKey, string(purpose)+"\x00"+dest.index+"\x00"+code)
}

// normalizeOTPInput drops the spaces and dashes people type between digits.
func normalizeOTPInput(s string) string {
	if len(s) > maxOTPInput {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

// codeText is the message that carries a code, in Chinese and English.
func codeText(purpose OTPPurpose, code string, ttl time.Duration) string {
	zh, en := "登录", "sign in"
	switch purpose {
	case PurposeRegister:
		zh, en = "注册账号", "register"
	case PurposeReset:
		zh, en = "重置密码", "reset your password"
	}
	mins := int(ttl / time.Minute)
	return fmt.Sprintf("【统一身份认证】验证码 %s，用于%s，%d 分钟内有效，请勿告诉他人。Code %s to %s, valid for %d minutes. Tell no one.",
		code, zh, mins, code, en, mins)
}

// sendLimit is one otp_send_limits row.
type sendLimit struct {
	lastSent time.Time
	dayStart time.Time
	dayCount int
}

// sendRule is the limit an otp_send_limits row enforces.
type sendRule struct {
	interval time.Duration // least time between two messages
	window   time.Duration // period of limit
	limit    int
}

// destinationRule limits the messages to one phone number or address.
func (o *OTP) destinationRule() sendRule {
	return sendRule{interval: o.opts.SendInterval, window: otpDay, limit: o.opts.DailyLimit}
}

// addressRule limits the messages asked for from one client address.
func (o *OTP) addressRule() sendRule {
	return sendRule{window: otpAddressWindow, limit: o.opts.HourlyLimitPerIP}
}

// afterSend is the state once one more message is sent at now under rule,
// or false when the rule forbids it.
func afterSend(l sendLimit, rule sendRule, now time.Time) (sendLimit, bool) {
	if now.Before(l.lastSent.Add(rule.interval)) {
		return l, false
	}
	if !now.Before(l.dayStart.Add(rule.window)) {
		l.dayStart, l.dayCount = now, 0
	}
	if l.dayCount >= rule.limit {
		return l, false
	}
	l.lastSent, l.dayCount = now, l.dayCount+1
	return l, true
}

// sender picks the sender of a channel.
func (o *OTP) sender(channel string) (Sender, error) {
	s := o.senders.SMS
	if channel == ChannelEmail {
		s = o.senders.Email
	}
	if s == nil {
		return nil, fmt.Errorf("%w (%s)", ErrOTPNoSender, channel)
	}
	return s, nil
}

// record appends one audit event about a destination. The person has
// proved nothing yet, so there is no actor.
func (o *OTP) record(ctx context.Context, action, result, reason string, dest destination, details map[string]string) error {
	m := requestMetaFrom(ctx)
	if details == nil {
		details = map[string]string{}
	}
	details["channel"], details["destination"] = dest.channel, dest.masked()
	_, err := o.log.Append(ctx, audit.Event{
		ClientID: m.ClientID, IP: m.IP, UserAgent: m.UserAgent,
		Action: action, Result: result, Reason: reason, Details: details,
	})
	if err != nil {
		return fmt.Errorf("one-time code: %w", err)
	}
	return nil
}

// verdict is how a check of a code ended, before the caller's work.
type verdict struct {
	err    error  // nil: the code is right
	reason string // for the audit record
}

// judge compares a typed code with a stored row at now and says what to
// write back: the new attempt count, or delete (expired or used).
func (o *OTP) judge(row *otpRow, want string, now time.Time) (v verdict, attempts int, remove bool) {
	switch {
	case row == nil:
		return verdict{ErrOTPExpired, "no_code"}, 0, false
	case !now.Before(row.expiresAt):
		return verdict{ErrOTPExpired, "expired"}, row.attempts, true
	case row.attempts >= o.opts.MaxAttempts:
		return verdict{ErrOTPTooManyAttempts, "too_many_attempts"}, row.attempts, false
	case !hmac.Equal([]byte(row.codeHash), []byte(want)):
		attempts = row.attempts + 1
		if attempts >= o.opts.MaxAttempts {
			return verdict{ErrOTPTooManyAttempts, "too_many_attempts"}, attempts, false
		}
		return verdict{ErrOTPWrong, "wrong_code"}, attempts, false
	}
	return verdict{}, row.attempts, true
}

// otpRow is one otp_codes row.
type otpRow struct {
	codeHash  string
	attempts  int
	expiresAt time.Time
}

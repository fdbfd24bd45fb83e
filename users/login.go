package users

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// Sign-in errors. Unknown accounts and wrong passwords share one error, so
// that the answer never tells whether an account exists.
var (
	ErrInvalidCredentials = errors.New("wrong account or password")
	ErrLocked             = errors.New("too many failed sign-ins")
	ErrAccountDisabled    = errors.New("account disabled")
)

// LockedError says until when sign-in is refused; errors.Is(err, ErrLocked)
// holds. Delay is true when the refusal is the short, growing wait between
// failed attempts rather than a lock.
type LockedError struct {
	Until time.Time
	Delay bool
}

func (e *LockedError) Error() string {
	if e.Delay {
		return "too many failed attempts; wait until " + e.Until.UTC().Format(time.RFC3339)
	}
	return "account locked until " + e.Until.UTC().Format(time.RFC3339)
}

// Is makes a *LockedError match ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// RequestMeta is where a sign-in came from, for lockout and the audit log.
type RequestMeta struct{ IP, UserAgent, ClientID string }

// Input bounds checked before any work, so that megabyte passwords cannot
// make the server hash them.
const (
	maxIdentifierBytes = 256
	maxPasswordBytes   = 1024
)

// Audit reasons of a failed sign-in.
const (
	reasonUnknownAccount = "unknown_account"
	reasonBadPassword    = "bad_password"
	reasonNoPassword     = "no_password"
	reasonLocked         = "locked"
	reasonDelayed        = "delayed"
	reasonDisabled       = "disabled"
	reasonTooLong        = "too_long"
	reasonMalformedHash  = "malformed_hash"
)

// Authenticator signs people in with a password, with lockout, audit and
// transparent upgrades of old password hashes.
type Authenticator struct {
	store   Store
	hasher  *PasswordHasher
	lockout *Lockout
	log     *audit.Log
}

// NewAuthenticator returns the password sign-in service.
func NewAuthenticator(store Store, hasher *PasswordHasher, lockout *Lockout, log *audit.Log) *Authenticator {
	return &Authenticator{store: store, hasher: hasher, lockout: lockout, log: log}
}

// PasswordLogin checks a password for the account named by identifier — a
// username, a mobile number or a resident ID number, told apart by shape —
// and returns the account. It fails with ErrInvalidCredentials (unknown
// account or wrong password alike), ErrLocked (possibly a *LockedError) or
// ErrAccountDisabled (only after a correct password); any other error is a
// server fault. Every outcome is written to the audit log; if that write
// fails, the sign-in fails with the write's error.
func (a *Authenticator) PasswordLogin(ctx context.Context, identifier, password string, m RequestMeta) (*User, error) {
	if _, err := a.checkLock(ctx, m, "", a.ipKey(m), map[string]string{"lock": "ip"}); err != nil {
		return nil, err
	}
	if len(identifier) > maxIdentifierBytes || len(password) > maxPasswordBytes {
		return nil, a.refuse(ctx, m, "", reasonTooLong, nil, ErrInvalidCredentials)
	}
	u, kind, masked, err := a.find(ctx, identifier)
	if errors.Is(err, db.ErrNotFound) {
		// An unknown name is counted, delayed and locked like an account,
		// so that neither the answers nor their timing tell it apart.
		details := map[string]string{"identifier_type": kind}
		if masked != "" {
			details["identifier"] = masked
		}
		if _, err := a.checkLock(ctx, m, "", unknownNameKey(identifier), details); err != nil {
			return nil, err
		}
		a.hasher.DummyVerify(password)
		return nil, a.refuse(ctx, m, "", reasonUnknownAccount, details, a.countFailure(ctx, unknownNameKey(identifier), a.ipKey(m)))
	}
	if err != nil {
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	return a.checkPassword(ctx, u, kind, password, m)
}

// checkPassword is the sign-in of an account that exists.
func (a *Authenticator) checkPassword(ctx context.Context, u *User, kind, password string, m RequestMeta) (*User, error) {
	details := map[string]string{"identifier_type": kind}
	state, err := a.checkLock(ctx, m, u.ID, AccountKey(u.ID), details)
	if err != nil {
		return nil, err
	}
	ok, needsRehash, reason, err := a.verify(u, password)
	if err != nil {
		return nil, a.refuse(ctx, m, u.ID, reason, details, fmt.Errorf("sign-in of %s: %w", u.ID, err))
	}
	if !ok {
		return nil, a.refuse(ctx, m, u.ID, reason, details, a.countFailure(ctx, AccountKey(u.ID), a.ipKey(m)))
	}
	if u.Status != StatusActive {
		return nil, a.refuse(ctx, m, u.ID, reasonDisabled, details, ErrAccountDisabled)
	}
	if state.Failures > 0 { // most sign-ins have no failures to forget: no write
		if err := a.lockout.Reset(ctx, AccountKey(u.ID)); err != nil {
			return nil, fmt.Errorf("sign-in of %s: %w", u.ID, err)
		}
	}
	if needsRehash {
		if u, err = a.rehash(ctx, u, password); err != nil {
			return nil, err
		}
		details["rehashed"] = "true"
	}
	if err := a.record(ctx, m, u.ID, audit.ResultSuccess, "", details); err != nil {
		return nil, err
	}
	return u, nil
}

// verify checks password against the account's hash. An account without a
// password costs as much as one with, and fails like a wrong password.
func (a *Authenticator) verify(u *User, password string) (ok, needsRehash bool, reason string, err error) {
	if u.PasswordHash == "" {
		a.hasher.DummyVerify(password)
		return false, false, reasonNoPassword, nil
	}
	ok, needsRehash, err = a.hasher.Verify(password, u.PasswordHash)
	if err != nil {
		return false, false, reasonMalformedHash, err
	}
	return ok, needsRehash, reasonBadPassword, nil
}

// rehash stores a hash of password under the current parameters, unless the
// password was changed meanwhile.
func (a *Authenticator) rehash(ctx context.Context, u *User, password string) (*User, error) {
	newHash, err := a.hasher.Hash(password)
	if err != nil {
		return nil, fmt.Errorf("sign-in of %s: rehash password: %w", u.ID, err)
	}
	old := u.PasswordHash
	updated, err := a.store.Update(ctx, u.ID, func(x *User) error {
		if x.PasswordHash == old {
			x.PasswordHash = newHash
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sign-in of %s: store rehashed password: %w", u.ID, err)
	}
	return updated, nil
}

// find looks the account up by the identifier's shape. kind names the
// shape; masked is the identifier safe to log ("" for usernames, which may
// be a password typed into the wrong box).
func (a *Authenticator) find(ctx context.Context, identifier string) (u *User, kind, masked string, err error) {
	id := strings.TrimSpace(identifier)
	if p, perr := NormalizePhone(id); perr == nil {
		u, err = a.store.GetByPhone(ctx, p)
		return u, "phone", MaskPhone(p), err
	}
	if looksLikeIDNumber(strings.ToUpper(id)) {
		u, err = a.store.GetByIDNumber(ctx, id) // an invalid number is simply not found
		if errors.Is(err, db.ErrNotFound) {
			if _, cerr := NormalizeCreditCode(id); cerr == nil {
				// Many credit codes have the shape of an ID number; an
				// enterprise's account is named by its code.
				u, err = a.store.GetByUsername(ctx, id)
				return u, "credit_code", "", err
			}
		}
		return u, "id_number", MaskIDNumber(strings.ToUpper(id)), err
	}
	u, err = a.store.GetByUsername(ctx, id)
	return u, "username", "", err
}

// ipKey is the lockout key of the client address, "" when it is unknown:
// requests without an address must not all share one counter.
func (a *Authenticator) ipKey(m RequestMeta) string {
	if m.IP == "" {
		return ""
	}
	return IPKey(m.IP)
}

// checkLock refuses the attempt, audited, while key is locked or must wait
// after recent failures, and otherwise returns the key's state; the empty
// key never refuses.
func (a *Authenticator) checkLock(ctx context.Context, m RequestMeta, subject, key string, details map[string]string) (Refusal, error) {
	if key == "" {
		return Refusal{}, nil
	}
	r, err := a.lockout.State(ctx, key)
	if err != nil {
		return r, fmt.Errorf("sign-in: %w", err)
	}
	if r.Until.IsZero() {
		return r, nil
	}
	reason := reasonLocked
	if !r.Locked {
		reason = reasonDelayed
	}
	if details["lock"] == "" {
		details["lock"] = "account"
	}
	return r, a.refuse(ctx, m, subject, reason, details, &LockedError{Until: r.Until, Delay: !r.Locked})
}

// unknownNameKey is the lockout key of an identifier that names no
// account: a hash, so that the table never holds what people typed.
func unknownNameKey(identifier string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(identifier))))
	return unknownKeyPrefix + hex.EncodeToString(sum[:16])
}

// countFailure counts a failed sign-in under each non-empty key. It returns
// the error to answer with: a *LockedError if this failure locked any key,
// else ErrInvalidCredentials.
func (a *Authenticator) countFailure(ctx context.Context, keys ...string) error {
	var until time.Time
	for _, key := range keys {
		if key == "" {
			continue
		}
		u, err := a.lockout.Fail(ctx, key)
		if err != nil {
			return fmt.Errorf("sign-in: %w", err)
		}
		if u.After(until) {
			until = u
		}
	}
	if !until.IsZero() {
		return &LockedError{Until: until}
	}
	return ErrInvalidCredentials
}

// refuse records a failed sign-in and returns answer, or the audit write's
// error if the record could not be written.
func (a *Authenticator) refuse(ctx context.Context, m RequestMeta, subject, reason string, details map[string]string, answer error) error {
	if err := a.record(ctx, m, subject, audit.ResultFailure, reason, details); err != nil {
		return err
	}
	return answer
}

// record appends one auth.login event. Only a successful sign-in has an
// actor: before it, nobody has proved who they are.
func (a *Authenticator) record(ctx context.Context, m RequestMeta, subject, result, reason string, details map[string]string) error {
	actor := ""
	if result == audit.ResultSuccess {
		actor = subject
	}
	_, err := a.log.Append(ctx, audit.Event{
		Actor: actor, Subject: subject, ClientID: m.ClientID, IP: m.IP, UserAgent: m.UserAgent,
		Action: audit.ActionLogin, Result: result, Reason: reason, Details: details,
	})
	if err != nil {
		return fmt.Errorf("sign-in: %w", err)
	}
	return nil
}

// ActionPasswordChange is the audit action of a person changing their own password.
const ActionPasswordChange = "user.password_change"

// ChangePassword sets a signed-in person's new password. An account with a
// password must give it (current), checked like a sign-in: wrong answers
// count towards the delays and the lock, and a locked account cannot change
// it. An account without one (registered with a passkey) may set one
// without; the caller must have checked that the sign-in is recent. Errors:
// ErrInvalidCredentials, ErrLocked (maybe a *LockedError), the password
// policy's errors (ErrPasswordTooShort ...). The new hash and the audit
// record are written in one transaction.
func (a *Authenticator) ChangePassword(ctx context.Context, userID, current, next string, m RequestMeta) error {
	if len(current) > maxPasswordBytes {
		return ErrInvalidCredentials
	}
	u, err := a.store.Get(ctx, userID)
	if err != nil {
		return fmt.Errorf("change password of %s: %w", userID, err)
	}
	if err := CheckPasswordPolicy(next, u.Username, u.Phone); err != nil {
		return err
	}
	hadPassword := u.PasswordHash != ""
	if hadPassword {
		if u, err = a.checkPassword(ctx, u, "reauthentication", current, m); err != nil {
			return err
		}
	}
	hash, err := a.hasher.Hash(next)
	if err != nil {
		return fmt.Errorf("change password of %s: %w", userID, err)
	}
	err = a.lockout.d.InTx(ctx, func(ctx context.Context) error {
		if _, err := a.store.Update(ctx, userID, func(x *User) error { x.PasswordHash = hash; return nil }); err != nil {
			return err
		}
		_, err := a.log.Append(ctx, audit.Event{
			Actor: userID, Subject: userID, ClientID: m.ClientID, IP: m.IP, UserAgent: m.UserAgent,
			Action: ActionPasswordChange, Result: audit.ResultSuccess,
			Details: map[string]string{"first_password": strconv.FormatBool(!hadPassword)},
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("change password of %s: %w", userID, err)
	}
	return nil
}

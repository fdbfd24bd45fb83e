package users

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// errReplayedCode is a right code whose time step was already used.
var errReplayedCode = fmt.Errorf("%w: time step already used", ErrInvalidCode)

// totpRow is one totp_secrets row with its secret opened.
type totpRow struct {
	secret    []byte
	createdAt time.Time
	confirmed bool
	lastStep  int64
}

// loadSecret reads and opens an account's secret, locking the row
// (PostgreSQL; SQLite transactions are serial) so that concurrent checks
// of one account take turns. A missing row wraps db.ErrNotFound.
func (t *TOTP) loadSecret(ctx context.Context, userID string) (*totpRow, error) {
	var (
		sealed    []byte
		confirmed sql.NullTime
		row       totpRow
	)
	err := t.d.Err(t.d.QueryRow(ctx, `SELECT secret_enc, created_at, confirmed_at, last_step FROM totp_secrets WHERE user_id = ?`+t.d.ForUpdate(),
		userID).Scan(&sealed, &row.createdAt, &confirmed, &row.lastStep))
	if err != nil {
		return nil, fmt.Errorf("totp of %s: %w", userID, err)
	}
	if row.secret, err = t.kek.Open(sealed, totpAAD(userID)); err != nil {
		return nil, fmt.Errorf("totp of %s: open secret: %w", userID, err)
	}
	row.createdAt, row.confirmed = row.createdAt.UTC(), confirmed.Valid
	return &row, nil
}

// BeginEnrolment offers a new secret to the account, labelled with its
// username in authenticator apps. An unconfirmed offer younger than 15 minutes is
// offered again, so that reloading the page keeps what was scanned. It
// fails with ErrTOTPEnabled when two-step verification is already on.
func (t *TOTP) BeginEnrolment(ctx context.Context, userID string, m RequestMeta) (*TOTPEnrolment, error) {
	u, err := t.accounts.Get(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("begin totp enrolment: %w", err)
	}
	var secret []byte
	err = t.d.InTx(ctx, func(ctx context.Context) error {
		row, err := t.loadSecret(ctx, userID)
		switch {
		case err == nil && row.confirmed:
			return ErrTOTPEnabled
		case err == nil && t.clock().Before(row.createdAt.Add(totpEnrolmentTTL)):
			secret = row.secret
			return nil
		case err != nil && !errors.Is(err, db.ErrNotFound):
			return err
		}
		secret = make([]byte, totpSecretBytes)
		rand.Read(secret) // never fails since Go 1.24
		if err := t.storePending(ctx, userID, secret); err != nil {
			return err
		}
		return t.record(ctx, m, userID, actionTOTPEnrol, audit.ResultSuccess, "", nil)
	})
	if err != nil {
		return nil, fmt.Errorf("begin totp enrolment: %w", err)
	}
	return &TOTPEnrolment{Secret: encodeTOTPSecret(secret), URI: otpauthURI(TOTPIssuer, u.Username, secret)}, nil
}

// storePending writes an unconfirmed secret, replacing an older offer but
// never a confirmed secret that a concurrent request wrote meanwhile.
func (t *TOTP) storePending(ctx context.Context, userID string, secret []byte) error {
	sealed, err := t.kek.Seal(secret, totpAAD(userID))
	if err != nil {
		return fmt.Errorf("seal totp secret: %w", err)
	}
	err = t.d.ExecOne(ctx, `INSERT INTO totp_secrets (user_id, secret_enc, created_at, confirmed_at, last_step) VALUES (?, ?, ?, NULL, 0)
		ON CONFLICT (user_id) DO UPDATE SET secret_enc = excluded.secret_enc, created_at = excluded.created_at, last_step = 0
		WHERE totp_secrets.confirmed_at IS NULL`, userID, sealed, t.clock())
	if errors.Is(err, db.ErrNotFound) {
		return ErrTOTPEnabled
	}
	return err
}

// ConfirmEnrolment turns two-step verification on once the person typed a
// right code from the offered secret, and returns the first set of
// recovery codes, to be shown once. A wrong code is ErrInvalidCode; no offer
// (or an expired one) is ErrNoTOTPEnrolment.
func (t *TOTP) ConfirmEnrolment(ctx context.Context, userID, code string, m RequestMeta) ([]string, error) {
	var codes []string
	err := t.d.InTx(ctx, func(ctx context.Context) error {
		row, err := t.loadSecret(ctx, userID)
		switch {
		case errors.Is(err, db.ErrNotFound):
			return ErrNoTOTPEnrolment
		case err != nil:
			return err
		case row.confirmed:
			return ErrTOTPEnabled
		case !t.clock().Before(row.createdAt.Add(totpEnrolmentTTL)):
			return ErrNoTOTPEnrolment
		}
		kind, normalized := classifyCode(code)
		step, ok := matchTOTP(row.secret, normalized, t.clock())
		if kind != FactorTOTP || !ok {
			return ErrInvalidCode
		}
		if err := t.d.ExecOne(ctx, `UPDATE totp_secrets SET confirmed_at = ?, last_step = ? WHERE user_id = ?`, t.clock(), step, userID); err != nil {
			return err
		}
		if codes, err = t.replaceRecoveryCodes(ctx, userID); err != nil {
			return err
		}
		return t.record(ctx, m, userID, actionTOTPConfirm, audit.ResultSuccess, "", nil)
	})
	if errors.Is(err, ErrInvalidCode) {
		return nil, t.refuse(ctx, m, userID, actionTOTPConfirm, "bad_code", nil, ErrInvalidCode)
	}
	if err != nil {
		return nil, fmt.Errorf("confirm totp enrolment: %w", err)
	}
	return codes, nil
}

// replaceRecoveryCodes deletes an account's recovery codes and stores a
// fresh set, returning the codes in clear for the one time they are shown.
func (t *TOTP) replaceRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	if _, err := t.d.Exec(ctx, `DELETE FROM totp_recovery_codes WHERE user_id = ?`, userID); err != nil {
		return nil, fmt.Errorf("recovery codes of %s: %w", userID, err)
	}
	codes := newRecoveryCodes()
	now := t.clock()
	for _, c := range codes {
		n, _ := normalizeRecoveryCode(c)
		if _, err := t.d.Exec(ctx, `INSERT INTO totp_recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)`,
			userID, hashRecoveryCode(t.recoveryKey, userID, n), now); err != nil {
			return nil, fmt.Errorf("recovery codes of %s: %w", userID, err)
		}
	}
	return codes, nil
}

// Verify checks the second factor of a sign-in: a TOTP code (each time
// step accepted once) or an unused recovery code. Wrong codes count towards
// the account's lockout; it fails with ErrInvalidCode, ErrLocked (a
// *LockedError), or ErrTOTPNotEnabled. Every outcome is audited.
func (t *TOTP) Verify(ctx context.Context, userID, code string, m RequestMeta) (SecondFactor, error) {
	return t.check(ctx, userID, code, m, actionSecondFactor, nil)
}

// Disable turns two-step verification off and deletes the recovery codes.
// It needs a current code or a recovery code, so that someone at an
// unattended signed-in browser cannot remove the second factor.
func (t *TOTP) Disable(ctx context.Context, userID, code string, m RequestMeta) error {
	_, err := t.check(ctx, userID, code, m, actionTOTPDisable, func(ctx context.Context) error {
		if _, err := t.d.Exec(ctx, `DELETE FROM totp_recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		return t.d.ExecOne(ctx, `DELETE FROM totp_secrets WHERE user_id = ?`, userID)
	})
	return err
}

// RegenerateRecoveryCodes replaces all of an account's recovery codes with
// a fresh set, after checking a current code or a recovery code.
func (t *TOTP) RegenerateRecoveryCodes(ctx context.Context, userID, code string, m RequestMeta) ([]string, error) {
	var codes []string
	_, err := t.check(ctx, userID, code, m, actionRecoveryRegenerate, func(ctx context.Context) error {
		var err error
		codes, err = t.replaceRecoveryCodes(ctx, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// HasTOTP reports whether sign-in asks the account for a second factor.
func (t *TOTP) HasTOTP(ctx context.Context, userID string) (bool, error) {
	_, on, err := t.enabledAt(ctx, userID)
	return on, err
}

// Status tells whether two-step verification is on, since when, and how
// many recovery codes are left.
func (t *TOTP) Status(ctx context.Context, userID string) (TOTPStatus, error) {
	since, on, err := t.enabledAt(ctx, userID)
	if err != nil || !on {
		return TOTPStatus{}, err
	}
	st := TOTPStatus{Enabled: true, EnabledAt: since}
	if st.RecoveryCodesLeft, err = t.recoveryCodesLeft(ctx, userID); err != nil {
		return TOTPStatus{}, err
	}
	return st, nil
}

// enabledAt is when the account confirmed its secret; on is false while
// it has none or its enrolment is unconfirmed.
func (t *TOTP) enabledAt(ctx context.Context, userID string) (since time.Time, on bool, err error) {
	var confirmed sql.NullTime
	err = t.d.Err(t.d.QueryRow(ctx, `SELECT confirmed_at FROM totp_secrets WHERE user_id = ?`, userID).Scan(&confirmed))
	switch {
	case errors.Is(err, db.ErrNotFound):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("totp status of %s: %w", userID, err)
	}
	return confirmed.Time.UTC(), confirmed.Valid, nil
}

func (t *TOTP) recoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	if err := t.d.Err(t.d.QueryRow(ctx, `SELECT count(*) FROM totp_recovery_codes WHERE user_id = ?`, userID).Scan(&n)); err != nil {
		return 0, fmt.Errorf("recovery codes of %s: %w", userID, err)
	}
	return n, nil
}

// check is the common path of every action that needs a second factor:
// refuse while locked, then, in one transaction, use up the code, run
// then (if any) and audit the success. A wrong code is counted and audited.
func (t *TOTP) check(ctx context.Context, userID, code string, m RequestMeta, action string, then func(ctx context.Context) error) (SecondFactor, error) {
	if until, err := t.lockedUntil(ctx, userID); err != nil || !until.IsZero() {
		if err != nil {
			return "", err
		}
		return "", t.refuse(ctx, m, userID, action, "locked", nil, &LockedError{Until: until})
	}
	kind, normalized := classifyCode(code)
	err := t.d.InTx(ctx, func(ctx context.Context) error {
		left, err := t.useCode(ctx, userID, kind, normalized)
		if err != nil {
			return err
		}
		if then != nil {
			if err := then(ctx); err != nil {
				return err
			}
		}
		return t.recordUse(ctx, m, userID, action, kind, left)
	})
	switch {
	case errors.Is(err, ErrInvalidCode):
		reason := "bad_code"
		if errors.Is(err, errReplayedCode) {
			reason = "replayed_code"
		}
		details := map[string]string{"method": string(kind)}
		return "", t.refuse(ctx, m, userID, action, reason, details, t.countFailure(ctx, userID))
	case errors.Is(err, ErrTOTPNotEnabled):
		return "", t.refuse(ctx, m, userID, action, "not_enabled", nil, ErrTOTPNotEnabled)
	case err != nil:
		return "", fmt.Errorf("second factor of %s: %w", userID, err)
	}
	return kind, t.resetFailures(ctx, userID)
}

// useCode uses up a code of kind: it records a TOTP code's time step, or
// deletes a recovery code. It returns how many recovery codes are left
// after a recovery code, and an error wrapping ErrInvalidCode for a wrong
// or used code.
func (t *TOTP) useCode(ctx context.Context, userID string, kind SecondFactor, code string) (left int, err error) {
	row, err := t.loadSecret(ctx, userID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && !row.confirmed) {
		return 0, ErrTOTPNotEnabled
	}
	if err != nil {
		return 0, err
	}
	switch kind {
	case FactorTOTP:
		return 0, t.useTOTPCode(ctx, userID, row, code)
	case FactorRecoveryCode:
		return t.useRecoveryCode(ctx, userID, code)
	}
	return 0, ErrInvalidCode
}

// useTOTPCode accepts a code whose time step is later than the last one
// used, so that a code seen over someone's shoulder cannot be typed again.
func (t *TOTP) useTOTPCode(ctx context.Context, userID string, row *totpRow, code string) error {
	step, ok := matchTOTP(row.secret, code, t.clock())
	if !ok {
		return ErrInvalidCode
	}
	if step <= row.lastStep {
		return errReplayedCode
	}
	err := t.d.ExecOne(ctx, `UPDATE totp_secrets SET last_step = ? WHERE user_id = ? AND last_step < ?`, step, userID, step)
	if errors.Is(err, db.ErrNotFound) {
		return errReplayedCode
	}
	return err
}

// useRecoveryCode deletes the code if the account has it.
func (t *TOTP) useRecoveryCode(ctx context.Context, userID, normalized string) (int, error) {
	err := t.d.ExecOne(ctx, `DELETE FROM totp_recovery_codes WHERE user_id = ? AND code_hash = ?`,
		userID, hashRecoveryCode(t.recoveryKey, userID, normalized))
	if errors.Is(err, db.ErrNotFound) {
		return 0, ErrInvalidCode
	}
	if err != nil {
		return 0, err
	}
	return t.recoveryCodesLeft(ctx, userID)
}

// lockedUntil is the later end of the account's and the second factor's
// locks, or zero.
func (t *TOTP) lockedUntil(ctx context.Context, userID string) (time.Time, error) {
	var until time.Time
	for _, key := range []string{AccountKey(userID), MFAKey(userID)} {
		u, err := t.lockout.Check(ctx, key)
		if err != nil {
			return time.Time{}, fmt.Errorf("second factor: %w", err)
		}
		if u.After(until) {
			until = u
		}
	}
	return until, nil
}

// countFailure counts a wrong code and returns the error to answer with:
// a *LockedError if this locked the account, else ErrInvalidCode.
func (t *TOTP) countFailure(ctx context.Context, userID string) error {
	var until time.Time
	for _, key := range []string{AccountKey(userID), MFAKey(userID)} {
		u, err := t.lockout.Fail(ctx, key)
		if err != nil {
			return fmt.Errorf("second factor: %w", err)
		}
		if u.After(until) {
			until = u
		}
	}
	if !until.IsZero() {
		return &LockedError{Until: until}
	}
	return ErrInvalidCode
}

// resetFailures forgets wrong codes after a right one.
func (t *TOTP) resetFailures(ctx context.Context, userID string) error {
	for _, key := range []string{AccountKey(userID), MFAKey(userID)} {
		if err := t.lockout.Reset(ctx, key); err != nil {
			return fmt.Errorf("second factor: %w", err)
		}
	}
	return nil
}

// recordUse audits a successful check, and separately the use of a
// recovery code, which an administrator may want to follow up: it can mean
// a lost phone.
func (t *TOTP) recordUse(ctx context.Context, m RequestMeta, userID, action string, kind SecondFactor, left int) error {
	if err := t.record(ctx, m, userID, action, audit.ResultSuccess, "", map[string]string{"method": string(kind)}); err != nil {
		return err
	}
	if kind != FactorRecoveryCode {
		return nil
	}
	return t.record(ctx, m, userID, actionRecoveryCodeUsed, audit.ResultSuccess, "",
		map[string]string{"purpose": action, "recovery_codes_left": strconv.Itoa(left)})
}

// refuse audits a failure and returns answer, or the audit write's error.
func (t *TOTP) refuse(ctx context.Context, m RequestMeta, userID, action, reason string, details map[string]string, answer error) error {
	if err := t.record(ctx, m, userID, action, audit.ResultFailure, reason, details); err != nil {
		return err
	}
	return answer
}

// record appends one event about userID's second factor. A failure has no
// actor: the person has not proved who they are.
func (t *TOTP) record(ctx context.Context, m RequestMeta, userID, action, result, reason string, details map[string]string) error {
	actor := ""
	if result == audit.ResultSuccess {
		actor = userID
	}
	_, err := t.log.Append(ctx, audit.Event{
		Actor: actor, Subject: userID, ClientID: m.ClientID, IP: m.IP, UserAgent: m.UserAgent,
		Action: action, Result: result, Reason: reason, Details: details,
	})
	if err != nil {
		return fmt.Errorf("second factor: %w", err)
	}
	return nil
}

const mfaChallengeColumns = `id, user_id, return_to, amr, acr, attempts, expires_at`

// Start stores a challenge for c's user, return address, methods and
// level, fills c.ID and c.ExpiresAt, and returns the token for the
// browser's cookie; only its hash is stored. Expired challenges of anyone
// are deleted on the way, so the table stays small without a worker.
func (c *MFAChallenges) Start(ctx context.Context, ch *MFAChallenge) (string, error) {
	token, hash, err := newSessionToken() // the same 256-bit shape as session cookies
	if err != nil {
		return "", fmt.Errorf("new second-factor challenge: %w", err)
	}
	now := c.clock()
	if _, err := c.d.Exec(ctx, `DELETE FROM mfa_challenges WHERE expires_at <= ?`, now); err != nil {
		return "", fmt.Errorf("purge second-factor challenges: %w", err)
	}
	ch.ID, ch.ExpiresAt, ch.Attempts = hash, now.Add(c.ttl), 0
	_, err = c.d.Exec(ctx, `INSERT INTO mfa_challenges (`+mfaChallengeColumns+`, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		ch.ID, ch.UserID, ch.ReturnTo, joinAMR(ch.AMR), ch.ACR, ch.Attempts, ch.ExpiresAt, now)
	if err != nil {
		return "", fmt.Errorf("new second-factor challenge for %s: %w", ch.UserID, err)
	}
	return token, nil
}

// Lookup returns the live challenge a cookie token names; an unknown or
// expired one is an error wrapping db.ErrNotFound.
func (c *MFAChallenges) Lookup(ctx context.Context, token string) (*MFAChallenge, error) {
	if !wellFormedToken(token) {
		return nil, fmt.Errorf("second-factor challenge: %w", db.ErrNotFound)
	}
	var ch MFAChallenge
	var amr string
	err := c.d.Err(c.d.QueryRow(ctx, `SELECT `+mfaChallengeColumns+` FROM mfa_challenges WHERE id = ?`, hashSessionToken(token)).
		Scan(&ch.ID, &ch.UserID, &ch.ReturnTo, &amr, &ch.ACR, &ch.Attempts, &ch.ExpiresAt))
	if err != nil {
		return nil, fmt.Errorf("second-factor challenge: %w", err)
	}
	ch.AMR, ch.ExpiresAt = splitAMR(amr), ch.ExpiresAt.UTC()
	if !c.clock().Before(ch.ExpiresAt) {
		return nil, fmt.Errorf("second-factor challenge expired: %w", db.ErrNotFound)
	}
	return &ch, nil
}

// Fail counts a wrong code against the challenge and returns the count.
func (c *MFAChallenges) Fail(ctx context.Context, id string) (int, error) {
	var n int
	err := c.d.Err(c.d.QueryRow(ctx, `UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = ? RETURNING attempts`, id).Scan(&n))
	if err != nil {
		return 0, fmt.Errorf("second-factor challenge: count attempt: %w", err)
	}
	return n, nil
}

// Delete ends a challenge. A challenge already gone is an error wrapping
// db.ErrNotFound, so that of two requests finishing one challenge at once
// only one goes on to create a session.
func (c *MFAChallenges) Delete(ctx context.Context, id string) error {
	if err := c.d.ExecOne(ctx, `DELETE FROM mfa_challenges WHERE id = ?`, id); err != nil {
		return fmt.Errorf("second-factor challenge: end: %w", err)
	}
	return nil
}

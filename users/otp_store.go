package users

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// Issue makes a new code for purpose and destination (a phone number or an
// email address), replacing any earlier one, and sends it. Too many
// messages to the destination is an error wrapping ErrOTPRateLimited, and
// then nothing is sent.
func (o *OTP) Issue(ctx context.Context, purpose OTPPurpose, destination string) error {
	if err := checkPurpose(purpose); err != nil {
		return err
	}
	dest, err := o.parseDestination(destination)
	if err != nil {
		return err
	}
	send, err := o.sender(dest.channel)
	if err != nil {
		return err
	}
	code, err := newOTPCode()
	if err != nil {
		return fmt.Errorf("new one-time code: %w", err)
	}
	details := map[string]string{"purpose": string(purpose)}
	err = o.reserve(ctx, ActionOTPIssue, dest, details, func(ctx context.Context, now time.Time) error {
		return o.storeCode(ctx, purpose, dest, o.hashCode(purpose, dest, code), now)
	})
	if err != nil {
		return err
	}
	return o.deliver(ctx, ActionOTPIssue, send, dest, details, codeText(purpose, code, o.opts.TTL))
}

// Notify sends text to destination under the same send limits as codes,
// for answers that must cost an asker the same as a code, such as "this
// number already has an account".
func (o *OTP) Notify(ctx context.Context, destination, text string) error {
	dest, err := o.parseDestination(destination)
	if err != nil {
		return err
	}
	send, err := o.sender(dest.channel)
	if err != nil {
		return err
	}
	if err := o.reserve(ctx, ActionOTPNotify, dest, nil, nil); err != nil {
		return err
	}
	return o.deliver(ctx, ActionOTPNotify, send, dest, nil, text)
}

// reserve counts one message to dest against the send limits, runs store
// (if any) and audits, all in one transaction. A refusal is audited too,
// and then returned.
func (o *OTP) reserve(ctx context.Context, action string, dest destination, details map[string]string, store func(context.Context, time.Time) error) error {
	var limited error
	err := o.d.InTx(ctx, func(ctx context.Context) error {
		now := o.clock()
		if err := o.purge(ctx, now); err != nil {
			return err
		}
		// The address first: a machine over its limit must not use up a
		// destination's allowance either.
		if ip := requestMetaFrom(ctx).IP; ip != "" {
			ok, err := o.countSend(ctx, hmacHex(o.indexKey, "ip:"+ip), o.addressRule(), now)
			if err != nil {
				return err
			}
			if !ok {
				limited = ErrOTPAddressLimited
				return o.record(ctx, action, audit.ResultFailure, "ip_rate_limited", dest, details)
			}
		}
		ok, err := o.countSend(ctx, dest.index, o.destinationRule(), now)
		if err != nil {
			return err
		}
		if !ok {
			limited = ErrOTPRateLimited
			return o.record(ctx, action, audit.ResultFailure, "rate_limited", dest, details)
		}
		if store != nil {
			if err := store(ctx, now); err != nil {
				return err
			}
		}
		return o.record(ctx, action, audit.ResultSuccess, "", dest, details)
	})
	if err != nil {
		return fmt.Errorf("one-time message to %s: %w", dest.masked(), err)
	}
	if limited != nil {
		return fmt.Errorf("one-time message to %s: %w", dest.masked(), limited)
	}
	return nil
}

// deliver hands the message to its sender after the transaction, so that a
// slow gateway never holds a database lock. A failed send is audited; the
// stored code stays, harmless, since nobody has it.
func (o *OTP) deliver(ctx context.Context, action string, send Sender, dest destination, details map[string]string, text string) error {
	err := send.Send(ctx, Message{Channel: dest.channel, To: dest.to, Text: text})
	if err == nil {
		return nil
	}
	if aerr := o.record(ctx, action, audit.ResultFailure, "send_failed", dest, details); aerr != nil {
		return errors.Join(fmt.Errorf("send to %s: %w", dest.masked(), err), aerr)
	}
	return fmt.Errorf("send to %s: %w", dest.masked(), err)
}

// countSend applies rule to the row named key (a destination's index, or
// "ip:" and an address's) at now and, if it allows one more message,
// records it. The row is created first and then locked (PostgreSQL; SQLite
// transactions are serial), so that concurrent requests on any node take
// turns.
func (o *OTP) countSend(ctx context.Context, key string, rule sendRule, now time.Time) (bool, error) {
	_, err := o.d.Exec(ctx, `INSERT INTO otp_send_limits (destination, last_sent_at, day_start, day_count) VALUES (?, ?, ?, 0)
		ON CONFLICT (destination) DO NOTHING`, key, time.Unix(0, 0).UTC(), now)
	if err != nil {
		return false, err
	}
	var l sendLimit
	err = o.d.Err(o.d.QueryRow(ctx, `SELECT last_sent_at, day_start, day_count FROM otp_send_limits WHERE destination = ?`+o.d.ForUpdate(),
		key).Scan(&l.lastSent, &l.dayStart, &l.dayCount))
	if err != nil {
		return false, err
	}
	l.lastSent, l.dayStart = l.lastSent.UTC(), l.dayStart.UTC()
	next, ok := afterSend(l, rule, now)
	if !ok {
		return false, nil
	}
	_, err = o.d.Exec(ctx, `UPDATE otp_send_limits SET last_sent_at = ?, day_start = ?, day_count = ? WHERE destination = ?`,
		next.lastSent, next.dayStart, next.dayCount, key)
	return err == nil, err
}

// storeCode replaces the code of purpose and dest.
func (o *OTP) storeCode(ctx context.Context, purpose OTPPurpose, dest destination, hash string, now time.Time) error {
	if _, err := o.d.Exec(ctx, `DELETE FROM otp_codes WHERE purpose = ? AND destination = ?`, string(purpose), dest.index); err != nil {
		return err
	}
	_, err := o.d.Exec(ctx, `INSERT INTO otp_codes (purpose, destination, code_hash, attempts, created_at, expires_at) VALUES (?, ?, ?, 0, ?, ?)`,
		string(purpose), dest.index, hash, now, now.Add(o.opts.TTL))
	return err
}

// purge deletes expired codes and send limits that no longer limit
// anything, of anyone, so the tables stay small without a worker.
func (o *OTP) purge(ctx context.Context, now time.Time) error {
	if _, err := o.d.Exec(ctx, `DELETE FROM otp_codes WHERE expires_at <= ?`, now); err != nil {
		return err
	}
	_, err := o.d.Exec(ctx, `DELETE FROM otp_send_limits WHERE day_start <= ? AND last_sent_at <= ?`,
		now.Add(-otpDay), now.Add(-o.opts.SendInterval))
	return err
}

// Check accepts the code of purpose and destination and uses it up. A
// wrong code counts against the code's attempts; the attempt that reaches
// the limit, and every one after, is ErrOTPTooManyAttempts even if right.
// Other errors wrap ErrOTPExpired (none live: expired, used or never sent)
// or ErrOTPWrong.
func (o *OTP) Check(ctx context.Context, purpose OTPPurpose, destination, code string) error {
	return o.CheckThen(ctx, purpose, destination, code, nil)
}

// CheckThen is Check that also runs then, in the same transaction, once
// the code is right: the code is used up only if then succeeds, so that
// a form refused for another reason (a username just taken) can be sent
// again with the same code.
func (o *OTP) CheckThen(ctx context.Context, purpose OTPPurpose, destination, code string, then func(context.Context) error) error {
	if err := checkPurpose(purpose); err != nil {
		return err
	}
	dest, err := o.parseDestination(destination)
	if err != nil {
		return err
	}
	details := map[string]string{"purpose": string(purpose)}
	var refused error
	err = o.d.InTx(ctx, func(ctx context.Context) error {
		row, err := o.loadCode(ctx, purpose, dest)
		if err != nil {
			return err
		}
		v, attempts, remove := o.judge(row, o.hashCode(purpose, dest, normalizeOTPInput(code)), o.clock())
		if err := o.settle(ctx, purpose, dest, row, attempts, remove); err != nil {
			return err
		}
		if v.err != nil {
			refused = v.err
			details["attempts"] = strconv.Itoa(attempts)
			return o.record(ctx, ActionOTPCheck, audit.ResultFailure, v.reason, dest, details)
		}
		if then != nil {
			if err := then(ctx); err != nil {
				return err
			}
		}
		return o.record(ctx, ActionOTPCheck, audit.ResultSuccess, "", dest, details)
	})
	if err != nil {
		return err
	}
	if refused != nil {
		return fmt.Errorf("one-time code for %s: %w", dest.masked(), refused)
	}
	return nil
}

// loadCode reads and locks the code of purpose and dest; nil when there is none.
func (o *OTP) loadCode(ctx context.Context, purpose OTPPurpose, dest destination) (*otpRow, error) {
	var row otpRow
	err := o.d.Err(o.d.QueryRow(ctx, `SELECT code_hash, attempts, expires_at FROM otp_codes WHERE purpose = ? AND destination = ?`+o.d.ForUpdate(),
		string(purpose), dest.index).Scan(&row.codeHash, &row.attempts, &row.expiresAt))
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	row.expiresAt = row.expiresAt.UTC()
	return &row, nil
}

// settle writes back what judge decided: the row deleted, or its attempts.
func (o *OTP) settle(ctx context.Context, purpose OTPPurpose, dest destination, row *otpRow, attempts int, remove bool) error {
	switch {
	case row == nil:
		return nil
	case remove:
		_, err := o.d.Exec(ctx, `DELETE FROM otp_codes WHERE purpose = ? AND destination = ?`, string(purpose), dest.index)
		return err
	case attempts != row.attempts:
		_, err := o.d.Exec(ctx, `UPDATE otp_codes SET attempts = ? WHERE purpose = ? AND destination = ?`, attempts, string(purpose), dest.index)
		return err
	}
	return nil
}

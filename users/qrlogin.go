package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// QR-code sign-in (扫码登录): a desktop browser shows a QR code, a phone
// already signed in scans and approves it, and the desktop gets a session
// of its own for the same person.
//
// Two secrets keep the halves apart. The QR token travels in the code's
// URL and lets a signed-in phone see and decide the request; the browser
// secret stays in the desktop's cookie and alone sees the outcome and turns
// an approval into a session. Someone who photographs the code can approve
// it (signing the desktop in as themselves, which gains them nothing) but
// can never collect the sign-in.

// QRLoginTTL is how long a QR code can be approved and its approval
// collected.
const QRLoginTTL = 2 * time.Minute

// QRMaxACR caps the assurance level a QR sign-in carries over from the
// approving phone. The desktop never presented the passkey, certificate or
// in-person check that level 3 rests on; level 2 (identity verified) is a
// fact about the person, which the approval carries over.
const QRMaxACR = LevelVerified

// AMRQR is the authentication method a QR sign-in records on the desktop's
// session. The phone's own methods are not copied: the desktop did not use
// them.
const AMRQR = "qr"

// QR sign-in states.
const (
	QRPending   = "pending"
	QRApproved  = "approved"
	QRDeclined  = "declined"
	QRCompleted = "completed"
	QRExpired   = "expired" // reported, never stored: expires_at decides
)

// Audit actions of QR sign-ins. Creating a code is not audited: every
// view of the sign-in page makes one, and the row itself records it.
const (
	ActionQRApprove  = "auth.qr.approve"
	ActionQRDecline  = "auth.qr.decline"
	ActionQRComplete = "auth.qr.complete"
)

// ErrQRLoginNotFound means no live QR sign-in matches: an unknown token or
// browser secret, or one expired, already decided or already used. Callers
// show one message for all of these.
var ErrQRLoginNotFound = errors.New("unknown, expired or used QR sign-in")

// QRLogin is one QR sign-in as the phone and the desktop see it.
type QRLogin struct {
	ID        string
	Status    string // one of the QR* states; QRExpired once past ExpiresAt while undecided or approved
	IP        string // the desktop's address
	UserAgent string // the desktop's browser
	UserID    string // who approved, once approved
	SessionID string // the approving session
	ACR       int    // the level the desktop's session gets
	AMR       []string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// QRLogins keeps QR sign-ins in the database, so that the phone's approval
// and the desktop's polling may reach different nodes.
type QRLogins struct {
	d        *db.DB
	accounts Store
	log      *audit.Log
	now      func() time.Time // replaced by tests
}

// NewQRLogins returns the QR sign-ins stored in d, for accounts in
// accounts, audited in log.
func NewQRLogins(d *db.DB, accounts Store, log *audit.Log) *QRLogins {
	return &QRLogins{d: d, accounts: accounts, log: log, now: time.Now}
}

func (q *QRLogins) clock() time.Time { return q.now().UTC().Truncate(time.Microsecond) }

const qrColumns = `id, status, ip, user_agent, user_id, session_id, acr, amr, created_at, expires_at`

// Start records a pending QR sign-in for the desktop browser described by
// m. It returns the token for the QR code and the secret for the desktop's
// cookie; only their hashes are stored. Sign-ins that ended over an hour
// ago are deleted on the way, so the table stays small without a worker.
func (q *QRLogins) Start(ctx context.Context, m RequestMeta) (token, browserSecret string, err error) {
	token, tokenHash, err := newSessionToken()
	if err != nil {
		return "", "", fmt.Errorf("new QR sign-in: %w", err)
	}
	browserSecret, browserHash, err := newSessionToken()
	if err != nil {
		return "", "", fmt.Errorf("new QR sign-in: %w", err)
	}
	now := q.clock()
	if _, err := q.d.Exec(ctx, `DELETE FROM qr_logins WHERE expires_at <= ?`, now.Add(-time.Hour)); err != nil {
		return "", "", fmt.Errorf("purge QR sign-ins: %w", err)
	}
	_, err = q.d.Exec(ctx, `INSERT INTO qr_logins (id, token_hash, browser_hash, status, ip, user_agent, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		uuid.Must(uuid.NewV7()).String(), tokenHash, browserHash, QRPending,
		clipText(m.IP, maxSessionIP), clipText(m.UserAgent, maxSessionUserAgent), now, now.Add(QRLoginTTL))
	if err != nil {
		return "", "", fmt.Errorf("new QR sign-in: %w", err)
	}
	return token, browserSecret, nil
}

// Pending returns the undecided, unexpired sign-in a QR token names, for
// the phone to show; else an error wrapping ErrQRLoginNotFound.
func (q *QRLogins) Pending(ctx context.Context, token string) (*QRLogin, error) {
	l, err := q.byHash(ctx, "token_hash", token)
	if err != nil {
		return nil, err
	}
	if l.Status != QRPending {
		return nil, fmt.Errorf("QR sign-in %s is %s: %w", l.ID, l.Status, ErrQRLoginNotFound)
	}
	return l, nil
}

// Status returns the sign-in a desktop's browser secret names, with its
// state (QRExpired once too late), or an error wrapping ErrQRLoginNotFound.
func (q *QRLogins) Status(ctx context.Context, browserSecret string) (*QRLogin, error) {
	return q.byHash(ctx, "browser_hash", browserSecret)
}

// qrRefusal is a late, repeated or disallowed use of a sign-in. It is
// audited after the transaction that found it has rolled back, so the
// record survives.
type qrRefusal struct {
	action, actor, reason string
	login                 *QRLogin
	err                   error // ErrQRLoginNotFound or ErrAccountDisabled
}

func (r *qrRefusal) Error() string { return "QR sign-in " + r.login.ID + ": " + r.reason }
func (r *qrRefusal) Unwrap() error { return r.err }

// refusal describes a use of l in a state that does not allow it.
func refusal(action, actor string, l *QRLogin) *qrRefusal {
	reason := "already " + l.Status
	if l.Status == QRExpired {
		reason = "expired"
	}
	return &qrRefusal{action: action, actor: actor, reason: reason, login: l, err: ErrQRLoginNotFound}
}

// audited writes the audit record of a refusal found inside fn's
// transaction, once that transaction is over, and returns err.
func (q *QRLogins) audited(ctx context.Context, err error, m RequestMeta) error {
	var r *qrRefusal
	if !errors.As(err, &r) {
		return err
	}
	if aerr := q.record(ctx, r.action, r.actor, r.login.UserID, audit.ResultFailure, r.reason, r.login, m); aerr != nil {
		return aerr
	}
	return err
}

// Decide records the answer of the person signed in with s on the phone
// to the pending sign-in token names. The desktop's session will carry
// s's level, capped at QRMaxACR and at the account's current level. A
// token that is expired or already decided is refused (ErrQRLoginNotFound)
// and the attempt audited.
func (q *QRLogins) Decide(ctx context.Context, token string, approve bool, s *Session, m RequestMeta) error {
	action, status := ActionQRDecline, QRDeclined
	if approve {
		action, status = ActionQRApprove, QRApproved
	}
	err := q.d.InTx(ctx, func(ctx context.Context) error {
		l, err := q.byHash(ctx, "token_hash", token)
		if err != nil {
			return err
		}
		if l.Status != QRPending {
			r := refusal(action, s.UserID, l)
			r.login.UserID = s.UserID // the refused person is the subject
			return r
		}
		acr := min(s.ACR, QRMaxACR)
		if approve {
			u, err := q.accounts.Get(ctx, s.UserID)
			if err != nil {
				return fmt.Errorf("QR sign-in %s: approver: %w", l.ID, err)
			}
			acr = min(acr, u.AssuranceLevel)
		}
		if err := q.d.ExecOne(ctx, `UPDATE qr_logins SET status = ?, user_id = ?, session_id = ?, acr = ?, amr = ?, decided_at = ?
			WHERE id = ? AND status = ?`, status, s.UserID, s.ID, acr, AMRQR, q.clock(), l.ID, QRPending); err != nil {
			return fmt.Errorf("QR sign-in %s: %w", l.ID, orNotFound(err))
		}
		l.UserID, l.SessionID = s.UserID, s.ID
		return q.record(ctx, action, s.UserID, s.UserID, audit.ResultSuccess, "", l, m)
	})
	return q.audited(ctx, err, m)
}

// Complete turns the approved sign-in a desktop's browser secret names
// into what its new session needs, once: the sign-in is marked completed
// in the same transaction as the audit record. A sign-in not approved
// (yet), declined, expired or used is refused with ErrQRLoginNotFound; its
// state is in the returned QRLogin when there is one. An account disabled
// since the approval is refused with ErrAccountDisabled.
func (q *QRLogins) Complete(ctx context.Context, browserSecret string, m RequestMeta) (*QRLogin, error) {
	var out *QRLogin
	err := q.d.InTx(ctx, func(ctx context.Context) error {
		l, err := q.byHash(ctx, "browser_hash", browserSecret)
		if err != nil {
			return err
		}
		out = l
		switch {
		case l.Status == QRExpired && l.UserID != "", l.Status == QRCompleted:
			return refusal(ActionQRComplete, "", l) // an approval collected late or twice
		case l.Status != QRApproved:
			return fmt.Errorf("QR sign-in %s is %s: %w", l.ID, l.Status, ErrQRLoginNotFound)
		}
		u, err := q.accounts.Get(ctx, l.UserID)
		if err != nil {
			return fmt.Errorf("QR sign-in %s: account: %w", l.ID, err)
		}
		if u.Status != StatusActive {
			return &qrRefusal{action: ActionQRComplete, reason: "account disabled", login: l, err: ErrAccountDisabled}
		}
		if err := q.d.ExecOne(ctx, `UPDATE qr_logins SET status = ? WHERE id = ? AND status = ?`, QRCompleted, l.ID, QRApproved); err != nil {
			return fmt.Errorf("QR sign-in %s: %w", l.ID, orNotFound(err))
		}
		l.Status = QRCompleted
		return q.record(ctx, ActionQRComplete, l.UserID, l.UserID, audit.ResultSuccess, "", l, m)
	})
	return out, q.audited(ctx, err, m)
}

// record appends one event about a QR sign-in. details name the sign-in,
// the approving session and the desktop's address, never a secret.
func (q *QRLogins) record(ctx context.Context, action, actor, subject, result, reason string, l *QRLogin, m RequestMeta) error {
	_, err := q.log.Append(ctx, audit.Event{
		Actor: actor, Subject: subject, IP: m.IP, UserAgent: m.UserAgent, ClientID: m.ClientID,
		Action: action, Result: result, Reason: reason,
		Details: map[string]string{"qr_login": l.ID, "sid": l.SessionID, "desktop_ip": l.IP},
	})
	if err != nil {
		return fmt.Errorf("QR sign-in %s: audit: %w", l.ID, err)
	}
	return nil
}

// byHash finds a sign-in by the hash of one of its secrets, reporting an
// undecided or approved one past its expiry as QRExpired.
func (q *QRLogins) byHash(ctx context.Context, column, secret string) (*QRLogin, error) {
	if !wellFormedToken(secret) {
		return nil, fmt.Errorf("QR sign-in: %w", ErrQRLoginNotFound)
	}
	l := &QRLogin{}
	var amr string
	err := q.d.QueryRow(ctx, `SELECT `+qrColumns+` FROM qr_logins WHERE `+column+` = ?`, hashSessionToken(secret)).Scan(
		&l.ID, &l.Status, &l.IP, &l.UserAgent, &l.UserID, &l.SessionID, &l.ACR, &amr, &l.CreatedAt, &l.ExpiresAt)
	if err := q.d.Err(err); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return nil, fmt.Errorf("QR sign-in: %w", ErrQRLoginNotFound)
		}
		return nil, fmt.Errorf("QR sign-in: %w", err)
	}
	l.AMR = splitAMR(amr)
	l.CreatedAt, l.ExpiresAt = l.CreatedAt.UTC(), l.ExpiresAt.UTC()
	if (l.Status == QRPending || l.Status == QRApproved) && !q.clock().Before(l.ExpiresAt) {
		l.Status = QRExpired
	}
	return l, nil
}

// orNotFound reports a row changed under us (another node decided or
// completed it first) as ErrQRLoginNotFound.
func orNotFound(err error) error {
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrQRLoginNotFound, err)
	}
	return err
}

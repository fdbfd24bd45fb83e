package users

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/govsso/sso/db"
)

// Bounds on what a browser sends us, so a session row stays small.
const (
	maxSessionIP        = 64
	maxSessionUserAgent = 512
)

const sessionColumns = `id, user_id, auth_time, amr, acr, acting_for, created_at, last_seen_at, expires_at, ip, user_agent`

// Create starts a session for a user who has just proved who they are with
// the methods amr at assurance level acr. It returns the session and the
// cookie token; only the token's hash is stored.
func (s *Sessions) Create(ctx context.Context, userID string, amr []string, acr int, ip, userAgent string) (*Session, string, error) {
	token, hash, err := newSessionToken()
	if err != nil {
		return nil, "", fmt.Errorf("new session: %w", err)
	}
	now := s.clock()
	ss := &Session{
		ID: uuid.Must(uuid.NewV7()).String(), UserID: userID, AuthTime: now, AMR: splitAMR(joinAMR(amr)), ACR: acr,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.opts.Lifetime),
		IP: clipText(ip, maxSessionIP), UserAgent: clipText(userAgent, maxSessionUserAgent),
	}
	_, err = s.d.Exec(ctx, `INSERT INTO browser_sessions (`+sessionColumns+`, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ss.ID, ss.UserID, ss.AuthTime, joinAMR(ss.AMR), ss.ACR, ss.ActingFor, ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt,
		ss.IP, ss.UserAgent, hash)
	if err != nil {
		return nil, "", fmt.Errorf("new session for %s: %w", userID, err)
	}
	return ss, token, nil
}

// Lookup returns the live session a cookie token belongs to. An unknown,
// idle or expired session is an error wrapping db.ErrNotFound. It records
// the use, at most once a minute.
func (s *Sessions) Lookup(ctx context.Context, token string) (*Session, error) {
	ss, err := s.byToken(ctx, token)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	if now.Sub(ss.LastSeenAt) >= touchEvery {
		if _, err := s.d.Exec(ctx, `UPDATE browser_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?`,
			now, ss.ID, now); err != nil {
			return nil, fmt.Errorf("session %s: record use: %w", ss.ID, err)
		}
		ss.LastSeenAt = now
	}
	return ss, nil
}

// byToken finds the live session of a token without touching it.
func (s *Sessions) byToken(ctx context.Context, token string) (*Session, error) {
	if !wellFormedToken(token) {
		return nil, fmt.Errorf("session: %w", db.ErrNotFound)
	}
	list, err := s.query(ctx, `SELECT `+sessionColumns+` FROM browser_sessions WHERE token_hash = ?`, hashSessionToken(token))
	if err != nil {
		return nil, err
	}
	if len(list) == 0 || !s.live(list[0], s.clock()) {
		return nil, fmt.Errorf("session: %w", db.ErrNotFound)
	}
	return list[0], nil
}

// Rotate gives a live session a new cookie token and kills the old one, so
// that a token seen before a sign-in step-up or privilege change is worthless
// after it.
func (s *Sessions) Rotate(ctx context.Context, token string) (string, error) {
	newToken, newHash, err := newSessionToken()
	if err != nil {
		return "", fmt.Errorf("rotate session: %w", err)
	}
	err = s.d.InTx(ctx, func(ctx context.Context) error {
		ss, err := s.byToken(ctx, token)
		if err != nil {
			return err
		}
		return s.d.ExecOne(ctx, `UPDATE browser_sessions SET token_hash = ?, last_seen_at = ? WHERE id = ? AND token_hash = ?`,
			newHash, s.clock(), ss.ID, hashSessionToken(token))
	})
	if err != nil {
		return "", fmt.Errorf("rotate session: %w", err)
	}
	return newToken, nil
}

// StepUp records that the person behind a live session has just reached
// assurance level acr by the methods in amr (added to those already
// there), and rotates the cookie token like Rotate. The level never goes
// down here.
func (s *Sessions) StepUp(ctx context.Context, token string, acr int, amr []string) (string, error) {
	newToken, newHash, err := newSessionToken()
	if err != nil {
		return "", fmt.Errorf("step up session: %w", err)
	}
	err = s.d.InTx(ctx, func(ctx context.Context) error {
		ss, err := s.byToken(ctx, token)
		if err != nil {
			return err
		}
		methods := ss.AMR
		for _, m := range amr {
			if !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
		return s.d.ExecOne(ctx, `UPDATE browser_sessions SET token_hash = ?, last_seen_at = ?, acr = ?, amr = ? WHERE id = ? AND token_hash = ?`,
			newHash, s.clock(), max(ss.ACR, acr), joinAMR(methods), ss.ID, hashSessionToken(token))
	})
	if err != nil {
		return "", fmt.Errorf("step up session: %w", err)
	}
	return newToken, nil
}

// Revoke ends one session (sign-out). An unknown id is an error wrapping
// db.ErrNotFound.
func (s *Sessions) Revoke(ctx context.Context, id string) error {
	if err := s.d.ExecOne(ctx, `DELETE FROM browser_sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("revoke session %s: %w", id, err)
	}
	return nil
}

// SetActingFor records whom the session's person acts for: an enterprise
// account id, or "" for themself. Callers check the right to act first
// (Enterprises.SwitchActing does).
func (s *Sessions) SetActingFor(ctx context.Context, id, enterpriseID string) error {
	if err := s.d.ExecOne(ctx, `UPDATE browser_sessions SET acting_for = ? WHERE id = ?`, enterpriseID, id); err != nil {
		return fmt.Errorf("session %s: %w", id, err)
	}
	return nil
}

// RevokeAllForUser ends every session of a user (password change, account
// disabled, "sign out everywhere") and says how many there were.
func (s *Sessions) RevokeAllForUser(ctx context.Context, userID string) (int64, error) {
	res, err := s.d.Exec(ctx, `DELETE FROM browser_sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of %s: %w", userID, err)
	}
	return res.RowsAffected()
}

// ListForUser returns a user's live sessions, oldest first, for a "where am
// I signed in" page.
func (s *Sessions) ListForUser(ctx context.Context, userID string) ([]*Session, error) {
	now := s.clock()
	return s.query(ctx, `SELECT `+sessionColumns+` FROM browser_sessions
		WHERE user_id = ? AND expires_at > ? AND last_seen_at >= ? ORDER BY created_at, id`,
		userID, now, now.Add(-s.opts.IdleTimeout))
}

// PurgeExpired deletes the sessions that are dead at now (past their
// lifetime or idle too long) and says how many.
func (s *Sessions) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	now = now.UTC()
	res, err := s.d.Exec(ctx, `DELETE FROM browser_sessions WHERE expires_at <= ? OR last_seen_at < ?`,
		now, now.Add(-s.opts.IdleTimeout))
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return res.RowsAffected()
}

func (s *Sessions) query(ctx context.Context, q string, args ...any) ([]*Session, error) {
	rows, err := s.d.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Session
	for rows.Next() {
		ss := &Session{}
		var amr string
		if err := rows.Scan(&ss.ID, &ss.UserID, &ss.AuthTime, &amr, &ss.ACR, &ss.ActingFor, &ss.CreatedAt,
			&ss.LastSeenAt, &ss.ExpiresAt, &ss.IP, &ss.UserAgent); err != nil {
			return nil, s.d.Err(err)
		}
		ss.AMR = splitAMR(amr)
		ss.AuthTime, ss.CreatedAt = ss.AuthTime.UTC(), ss.CreatedAt.UTC()
		ss.LastSeenAt, ss.ExpiresAt = ss.LastSeenAt.UTC(), ss.ExpiresAt.UTC()
		out = append(out, ss)
	}
	return out, s.d.Err(rows.Err())
}

// clipText makes browser-supplied text valid UTF-8 of at most n bytes.
func clipText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

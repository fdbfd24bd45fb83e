package oauth

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/govsso/sso/db"
)

// Consent lifetimes: a remembered choice lasts a year (and can be revoked
// sooner); a one-off one only for the authorization that asked for it.
const (
	rememberedConsentLifetime = 365 * 24 * time.Hour
	singleUseConsentLifetime  = 10 * time.Minute
)

// GrantConsent records that a person let a client have scopes. Without
// remember it is used up by the next authorization.
func (s *SQLStore) GrantConsent(ctx context.Context, userID, clientID string, scopes []string, remember bool) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	life := rememberedConsentLifetime
	if !remember {
		life = singleUseConsentLifetime
	}
	_, err := s.db.Exec(ctx, `INSERT INTO oauth_consents (user_id, client_id, scopes, granted_at, expires_at, single_use) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at,
		expires_at = excluded.expires_at, single_use = excluded.single_use`,
		userID, clientID, strings.Join(scopes, " "), now, now.Add(life), !remember)
	return err
}

// UseConsent reports whether a consent of userID for clientID covers every
// scope asked for, and uses up a single-use one.
func (s *SQLStore) UseConsent(ctx context.Context, userID, clientID string, scopes []string) (bool, error) {
	var granted string
	var singleUse bool
	err := s.db.Err(s.db.QueryRow(ctx, `SELECT scopes, single_use FROM oauth_consents WHERE user_id = ? AND client_id = ? AND expires_at > ?`,
		userID, clientID, time.Now().UTC()).Scan(&granted, &singleUse))
	if errors.Is(err, db.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	have := map[string]bool{}
	for _, g := range strings.Fields(granted) {
		have[g] = true
	}
	for _, want := range scopes {
		if !have[want] {
			return false, nil
		}
	}
	if singleUse {
		if err := s.RevokeConsent(ctx, userID, clientID); err != nil {
			return false, err
		}
	}
	return true, nil
}

// RevokeConsent forgets what a person allowed a client.
func (s *SQLStore) RevokeConsent(ctx context.Context, userID, clientID string) error {
	_, err := s.db.Exec(ctx, `DELETE FROM oauth_consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
	return err
}

package oauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// Consent is a remembered choice of a person to let a client see scopes,
// as the account centre lists it.
type Consent struct {
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// actionConsentRevoke is audited when a person withdraws a client's access.
const actionConsentRevoke = "oauth.consent_revoke"

// ListConsents returns the remembered, unexpired consents of a person,
// newest first. Single-use ones are left out: they end with the
// authorization that asked for them, so there is nothing to withdraw.
func (s *SQLStore) ListConsents(ctx context.Context, userID string) ([]Consent, error) {
	rows, err := s.db.Query(ctx, `SELECT client_id, scopes, granted_at, expires_at FROM oauth_consents
		WHERE user_id = ? AND single_use = FALSE AND expires_at > ? ORDER BY granted_at DESC, client_id`,
		userID, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	defer rows.Close()
	var out []Consent
	for rows.Next() {
		var c Consent
		var scopes string
		if err := rows.Scan(&c.ClientID, &scopes, &c.GrantedAt, &c.ExpiresAt); err != nil {
			return nil, fmt.Errorf("list consents: %w", s.db.Err(err))
		}
		c.Scopes = strings.Fields(scopes)
		c.GrantedAt, c.ExpiresAt = c.GrantedAt.UTC(), c.ExpiresAt.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list consents: %w", s.db.Err(err))
	}
	return out, nil
}

// RevokeClientAccess withdraws what a person allowed a client: the consent
// goes, and so do the client's tokens for the person (access and refresh
// tokens, pending codes), so the client must ask again. Tokens are found by
// the sub the client sees, which for a pairwise client is derived from the
// user id, so they are found without opening any token's sealed data.
func (p *Provider) RevokeClientAccess(ctx context.Context, userID, clientID, ip, userAgent string) error {
	subject := userID
	c, err := p.store.GetClient(ctx, clientID)
	switch {
	case err == nil:
		subject = p.subjectFor(c, userID)
	case !errors.Is(err, db.ErrNotFound):
		return fmt.Errorf("revoke client access: %w", err)
	}
	return p.d.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.RevokeConsent(ctx, userID, clientID); err != nil {
			return fmt.Errorf("revoke consent: %w", err)
		}
		n, err := p.store.DeleteBySubject(ctx, subject, clientID)
		if err != nil {
			return fmt.Errorf("revoke client access: %w", err)
		}
		if p.audit == nil {
			return nil
		}
		_, err = p.audit.Append(ctx, audit.Event{Actor: userID, Subject: userID, ClientID: clientID, IP: ip, UserAgent: userAgent,
			Action: actionConsentRevoke, Result: audit.ResultSuccess, Details: map[string]string{"tokens": fmt.Sprint(n)}})
		return err
	})
}

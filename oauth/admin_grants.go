package oauth

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// What administrators see of and withdraw from the grants clients hold:
// per person (account deleted, "revoke everything") and per client (a
// department system compromised). Callers audit and run these in the
// transaction of their change.

// ClientConsent is a remembered consent as a client's list shows it.
type ClientConsent struct {
	UserID    string    `json:"user_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ListClientConsents returns the remembered, unexpired consents given to a
// client, newest first.
func (s *SQLStore) ListClientConsents(ctx context.Context, clientID string) ([]ClientConsent, error) {
	rows, err := s.db.Query(ctx, `SELECT user_id, scopes, granted_at, expires_at FROM oauth_consents
		WHERE client_id = ? AND single_use = FALSE AND expires_at > ? ORDER BY granted_at DESC, user_id`,
		clientID, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("list consents of client: %w", err)
	}
	defer rows.Close()
	out := []ClientConsent{}
	for rows.Next() {
		var c ClientConsent
		var scopes string
		if err := rows.Scan(&c.UserID, &scopes, &c.GrantedAt, &c.ExpiresAt); err != nil {
			return nil, fmt.Errorf("list consents of client: %w", s.db.Err(err))
		}
		c.Scopes = strings.Fields(scopes)
		c.GrantedAt, c.ExpiresAt = c.GrantedAt.UTC(), c.ExpiresAt.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list consents of client: %w", s.db.Err(err))
	}
	return out, nil
}

// GrantsRevoked counts what a revocation removed.
type GrantsRevoked struct {
	Consents int64 `json:"consents"`
	Tokens   int64 `json:"tokens"`
}

// RevokeUserGrants withdraws everything every client holds for a person:
// consents, and codes, access and refresh tokens. Tokens are found by the
// sub each client sees (pairwise clients see a derived one).
func (p *Provider) RevokeUserGrants(ctx context.Context, userID string) (GrantsRevoked, error) {
	var n GrantsRevoked
	if userID == "" {
		return n, fmt.Errorf("revoke grants: user id is required")
	}
	clients, err := p.store.ListClients(ctx)
	if err != nil {
		return n, fmt.Errorf("revoke grants of %s: %w", userID, err)
	}
	err = p.d.InTx(ctx, func(ctx context.Context) error {
		if n.Consents, err = p.store.execCount(ctx, `DELETE FROM oauth_consents WHERE user_id = ?`, userID); err != nil {
			return err
		}
		// Public subjects are the account id for every client at once.
		if n.Tokens, err = p.store.DeleteBySubject(ctx, userID, ""); err != nil {
			return err
		}
		for _, c := range clients {
			if c.SubjectType != SubjectPairwise {
				continue
			}
			k, err := p.store.DeleteBySubject(ctx, p.subjectFor(c, userID), c.ID)
			if err != nil {
				return err
			}
			n.Tokens += k
		}
		return nil
	})
	if err != nil {
		return GrantsRevoked{}, fmt.Errorf("revoke grants of %s: %w", userID, err)
	}
	return n, nil
}

// RevokeUserClientGrant withdraws what one client holds for one person,
// like RevokeClientAccess but leaving the audit record to the caller (an
// administrator, not the person).
func (p *Provider) RevokeUserClientGrant(ctx context.Context, userID, clientID string) (GrantsRevoked, error) {
	var n GrantsRevoked
	c, err := p.store.GetClient(ctx, clientID)
	if err != nil {
		return n, err
	}
	err = p.d.InTx(ctx, func(ctx context.Context) error {
		if n.Consents, err = p.store.execCount(ctx, `DELETE FROM oauth_consents WHERE user_id = ? AND client_id = ?`, userID, clientID); err != nil {
			return err
		}
		n.Tokens, err = p.store.DeleteBySubject(ctx, p.subjectFor(c, userID), clientID)
		return err
	})
	if err != nil {
		return GrantsRevoked{}, fmt.Errorf("revoke grant of %s to %s: %w", userID, clientID, err)
	}
	return n, nil
}

// RevokeClientGrants withdraws every person's consent to a client and the
// tokens it holds for people; its own client_credentials tokens stay.
func (p *Provider) RevokeClientGrants(ctx context.Context, clientID string) (GrantsRevoked, error) {
	var n GrantsRevoked
	if _, err := p.store.GetClient(ctx, clientID); err != nil {
		return n, err
	}
	err := p.d.InTx(ctx, func(ctx context.Context) error {
		var err error
		if n.Consents, err = p.store.execCount(ctx, `DELETE FROM oauth_consents WHERE client_id = ?`, clientID); err != nil {
			return err
		}
		n.Tokens, err = p.store.execCount(ctx, `DELETE FROM oauth_tokens WHERE client_id = ? AND subject <> ''`, clientID)
		return err
	})
	if err != nil {
		return GrantsRevoked{}, fmt.Errorf("revoke grants to %s: %w", clientID, err)
	}
	return n, nil
}

// SubjectFor is the sub client c sees for a user (pairwise clients see a
// derived one), for callers that match tokens or claims to accounts.
func (p *Provider) SubjectFor(c *Client, userID string) string { return p.subjectFor(c, userID) }

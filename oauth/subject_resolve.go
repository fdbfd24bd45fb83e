package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/govsso/sso/db"
)

// UserForSubject maps the sub a client knows a person by back to the
// account id. A public sub is the account id itself (the caller checks the
// account exists). A pairwise sub cannot be inverted, so it is looked for
// among the people the client has dealt with: those who consented to it
// and those whose browser sessions received its tokens. db.ErrNotFound
// when it names nobody the client knows.
func (p *Provider) UserForSubject(ctx context.Context, clientID, sub string) (string, error) {
	c, err := p.store.GetClient(ctx, clientID)
	if err != nil {
		return "", err
	}
	if c.SubjectType != SubjectPairwise {
		return sub, nil
	}
	candidates, err := p.store.clientUsers(ctx, clientID, sub)
	if err != nil {
		return "", err
	}
	for _, userID := range candidates {
		if hmac.Equal([]byte(p.subjectFor(c, userID)), []byte(sub)) {
			return userID, nil
		}
	}
	return "", db.ErrNotFound
}

// clientUsers lists the accounts that consented to a client, and those
// whose sessions hold its tokens issued under sub.
func (s *SQLStore) clientUsers(ctx context.Context, clientID, sub string) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT user_id FROM oauth_consents WHERE client_id = ?
		UNION SELECT bs.user_id FROM oauth_tokens t JOIN browser_sessions bs ON bs.id = t.session_id
		WHERE t.client_id = ? AND t.subject = ?`, clientID, clientID, sub)
	if err != nil {
		return nil, fmt.Errorf("users of client: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("users of client: %w", s.db.Err(err))
		}
		out = append(out, id)
	}
	return out, s.db.Err(rows.Err())
}

// SignNotification signs claims for a client (aud) with the server's active
// RS256 key, as logout tokens are, adding iss; typ names the notification
// so that it can never pass for an ID token. Clients check it with the keys
// at /.well-known/jwks.json.
func (p *Provider) SignNotification(ctx context.Context, typ, audience string, claims map[string]any) (string, error) {
	if typ == "" || audience == "" {
		return "", errors.New("notification: typ and audience are required")
	}
	key, err := p.signingKey(withIDTokenAlg(ctx, AlgRS256))
	if err != nil {
		return "", fmt.Errorf("notification: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", fmt.Errorf("notification: %w", err)
	}
	all := map[string]any{"iss": p.cfg.Issuer, "aud": audience}
	for k, v := range claims {
		if k != "iss" && k != "aud" {
			all[k] = v
		}
	}
	if _, ok := all["iat"]; !ok {
		all["iat"] = time.Now().Unix()
	}
	if _, ok := all["jti"]; !ok {
		all["jti"] = rand.Text()
	}
	raw, err := jwt.Signed(signer).Claims(all).CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("notification: %w", err)
	}
	return raw, nil
}

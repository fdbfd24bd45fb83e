package oauth

import (
	"context"

	"github.com/ory/fosite"
)

// AccessTokenActingFor says which enterprise account an access token was
// issued to act for ("" when the person acted for themself), so that a
// resource can serve the enterprise's data while the person may act for it.
func (p *Provider) AccessTokenActingFor(ctx context.Context, token string) (string, error) {
	session := newSession()
	if _, _, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, session); err != nil {
		return "", err
	}
	return session.ActingFor, nil
}

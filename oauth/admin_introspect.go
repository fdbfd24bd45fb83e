package oauth

import (
	"context"

	"github.com/ory/fosite"
)

// IntrospectAccessToken checks an access token for a resource served by
// this process (the admin API) and says whose it is: the client, the
// account it was issued for ("" for client_credentials) and the granted
// scopes. An invalid, expired or revoked token is an error.
func (p *Provider) IntrospectAccessToken(ctx context.Context, token string) (clientID, subject string, scopes []string, err error) {
	session := newSession()
	_, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, session)
	if err != nil {
		return "", "", nil, err
	}
	return ar.GetClient().GetID(), session.Username, ar.GetGrantedScopes(), nil
}

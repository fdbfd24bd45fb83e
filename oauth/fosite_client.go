package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// fositeClient shows a Client to fosite.
type fositeClient struct{ *Client }

var (
	_ fosite.Client                   = fositeClient{}
	_ fosite.OpenIDConnectClient      = fositeClient{}
	_ fosite.ClientWithSecretRotation = fositeClient{}
)

// GetRotatedHashes lets fosite accept the previous secret during the
// overlap after a rotation; past it the slice is empty.
func (c fositeClient) GetRotatedHashes() [][]byte { return c.RotatedSecretHashes(time.Now()) }

func (c fositeClient) GetID() string                   { return c.ID }
func (c fositeClient) GetHashedSecret() []byte         { return c.SecretHash }
func (c fositeClient) GetRedirectURIs() []string       { return c.RedirectURIs }
func (c fositeClient) GetGrantTypes() fosite.Arguments { return c.GrantTypes }
func (c fositeClient) GetScopes() fosite.Arguments     { return c.Scopes }
func (c fositeClient) IsPublic() bool                  { return c.Public }
func (c fositeClient) GetAudience() fosite.Arguments   { return c.Audience }

func (c fositeClient) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) == 0 {
		return fosite.Arguments{ResponseTypeCode}
	}
	return c.ResponseTypes
}

// Request objects are not offered; an empty list makes fosite refuse request_uri.
func (c fositeClient) GetRequestURIs() []string { return nil }

func (c fositeClient) GetJSONWebKeys() *jose.JSONWebKeySet {
	if len(c.JWKS) == 0 {
		return nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(c.JWKS, &set); err != nil {
		return nil
	}
	return &set
}

func (c fositeClient) GetJSONWebKeysURI() string { return c.JWKSURI }

// Request objects must be signed with RS256 when present: naming an
// algorithm is what makes fosite refuse alg "none".
func (c fositeClient) GetRequestObjectSigningAlgorithm() string { return "RS256" }

func (c fositeClient) GetTokenEndpointAuthMethod() string { return c.TokenEndpointAuthMethod }

func (c fositeClient) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.TokenEndpointAuthMethod == AuthMethodPrivateKeyJWT {
		return "RS256"
	}
	return ""
}

// secretHasher lets fosite compare client secrets with the keyed hash.
type secretHasher struct{ h *SecretHasher }

var errSecretMismatch = errors.New("client secret does not match")

func (s secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if !s.h.Verify(string(data), hash) {
		return errSecretMismatch
	}
	return nil
}

func (s secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return s.h.Hash(string(data)), nil
}

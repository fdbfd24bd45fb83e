package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/govsso/sso/oauth/signing"
)

// accessTokenType is the typ header of RFC 9068 access tokens; it keeps an
// ID token from being passed off as an access token and the other way round.
const accessTokenType = "at+jwt"

// opaqueAccessTokenPrefix starts every opaque (HMAC) access token.
const opaqueAccessTokenPrefix = "ory_at_"

// tokenStrategy is fosite's CoreStrategy with the access token format chosen
// per client. fosite has one strategy for the whole server, so this one
// issues RFC 9068 JWTs to clients that asked for them and opaque HMAC tokens
// to the rest, and tells the two apart by their shape when they come back.
// Refresh tokens and authorization codes are always HMAC.
//
// A JWT access token is stored like an opaque one (under a hash of its
// signature), so that revocation and introspection work the same for both.
type tokenStrategy struct {
	oauth2.CoreStrategy // the HMAC strategy
	jwt                 *jwtAccessTokens
}

var _ oauth2.CoreStrategy = tokenStrategy{}

// isJWT tells a JWT access token from an opaque one ("ory_at_x.y").
func isJWT(token string) bool {
	return !strings.HasPrefix(token, opaqueAccessTokenPrefix) && strings.Count(token, ".") == 2
}

// AccessTokenSignature is the part of the token it is stored under.
func (s tokenStrategy) AccessTokenSignature(ctx context.Context, token string) string {
	if isJWT(token) {
		return token[strings.LastIndexByte(token, '.')+1:]
	}
	return s.CoreStrategy.AccessTokenSignature(ctx, token)
}

// GenerateAccessToken issues a JWT to clients whose format is "jwt".
func (s tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	if c, ok := r.GetClient().(fositeClient); ok && c.AccessTokenFormat == AccessTokenJWT {
		return s.jwt.generate(ctx, r)
	}
	return s.CoreStrategy.GenerateAccessToken(ctx, r)
}

// ValidateAccessToken checks a token found in storage. Both checks matter:
// the lookup is by signature only, so a JWT-shaped string carrying an
// opaque token's MAC (or the reverse) finds a row and must fail here.
func (s tokenStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if isJWT(token) {
		return s.jwt.validate(ctx, r, token)
	}
	return s.CoreStrategy.ValidateAccessToken(ctx, r, token)
}

// publishedKeysTTL bounds how long a node verifies with a key set it read;
// an unknown kid makes it read the set again at once.
const publishedKeysTTL = 30 * time.Second

// jwtAccessTokens signs and verifies RFC 9068 access tokens with the
// server's active RS256 key.
type jwtAccessTokens struct {
	issuer   string
	lifetime time.Duration // used only when the session carries no expiry
	// signingKey returns the active RS256 key with its private part.
	signingKey func(ctx context.Context) (*jose.JSONWebKey, error)
	// published returns the keys of the JWKS, retired ones included.
	published func(ctx context.Context, now time.Time) ([]*signing.Key, error)

	mu      sync.Mutex
	keys    map[string]*jose.JSONWebKey // kid → public key
	fetched time.Time
}

// generate signs the claims of r. The audience is the resource the client
// was granted, or the client itself when none was asked for; sub is the
// person's subject for that client, or the client for client credentials.
func (j *jwtAccessTokens) generate(ctx context.Context, r fosite.Requester) (string, string, error) {
	key, err := j.signingKey(ctx)
	if err != nil {
		return "", "", fmt.Errorf("jwt access token: %w", err)
	}
	if key.Algorithm != signing.RS256 {
		return "", "", fmt.Errorf("jwt access token: signing key is %s, not RS256", key.Algorithm)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType(accessTokenType))
	if err != nil {
		return "", "", fmt.Errorf("jwt access token: %w", err)
	}
	token, err := jwt.Signed(signer).Claims(j.claims(r, time.Now().UTC())).CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("jwt access token: %w", err)
	}
	return token, token[strings.LastIndexByte(token, '.')+1:], nil
}

// claims are the RFC 9068 claims of r's access token at now.
func (j *jwtAccessTokens) claims(r fosite.Requester, now time.Time) map[string]any {
	clientID := r.GetClient().GetID()
	exp := r.GetSession().GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = now.Add(j.lifetime)
	}
	aud := []string(r.GetGrantedAudience())
	if len(aud) == 0 {
		aud = []string{clientID}
	}
	sub := r.GetSession().GetSubject()
	if sub == "" {
		sub = clientID
	}
	c := map[string]any{
		"iss": j.issuer, "sub": sub, "aud": aud, "client_id": clientID,
		"iat": now.Unix(), "exp": exp.Unix(), "jti": rand.Text(),
	}
	if scopes := r.GetGrantedScopes(); len(scopes) > 0 {
		c["scope"] = strings.Join(scopes, " ")
	}
	if s, ok := r.GetSession().(*Session); ok && s.Username != "" { // a person, not a client
		if s.DefaultSession != nil && s.Claims != nil && !s.Claims.AuthTime.IsZero() {
			c["auth_time"] = s.Claims.AuthTime.Unix()
		}
		c["acr"] = acrValue(s.ACR)
		if len(s.AMR) > 0 {
			c["amr"] = s.AMR
		}
		if s.ActingFor != "" {
			c["acting_for"] = s.ActingFor
		}
	}
	return c
}

// validate verifies a stored token's signature (RS256 with a published key,
// typ at+jwt), issuer and expiry. Anything else, alg "none" and HMAC
// included, is refused.
func (j *jwtAccessTokens) validate(ctx context.Context, r fosite.Requester, token string) error {
	parsed, err := jwt.ParseSigned(token)
	if err != nil || len(parsed.Headers) != 1 {
		return fosite.ErrInvalidTokenFormat.WithHint("The access token is not a signed JWT.")
	}
	h := parsed.Headers[0]
	if h.Algorithm != string(jose.RS256) || h.ExtraHeaders[jose.HeaderType] != accessTokenType {
		return fosite.ErrTokenSignatureMismatch.WithHint("The access token is not an RS256 at+jwt token of this server.")
	}
	pub, err := j.publicKey(ctx, h.KeyID)
	if err != nil {
		return err
	}
	var c jwt.Claims
	if err := parsed.Claims(pub, &c); err != nil {
		return fosite.ErrTokenSignatureMismatch.WithHint("The access token's signature is invalid.")
	}
	now := time.Now()
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: j.issuer, Time: now}, 0)
	if errors.Is(err, jwt.ErrExpired) {
		return fosite.ErrTokenExpired.WithHint("The access token expired.")
	}
	if err != nil {
		return fosite.ErrTokenClaim.WithHint("The access token's claims are invalid.")
	}
	if exp := r.GetSession().GetExpiresAt(fosite.AccessToken); !exp.IsZero() && exp.Before(now) {
		return fosite.ErrTokenExpired.WithHint("The access token expired.")
	}
	return nil
}

// publicKey returns the published key kid, reading the key set again when
// kid is unknown (a key rotated in on another node).
func (j *jwtAccessTokens) publicKey(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	j.mu.Lock()
	k, fresh := j.keys[kid], time.Since(j.fetched) < publishedKeysTTL
	j.mu.Unlock()
	if k != nil && fresh {
		return k, nil
	}
	keys, err := j.loadPublished(ctx)
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	if k = keys[kid]; k == nil {
		return nil, fosite.ErrTokenSignatureMismatch.WithHint("The access token was signed with an unknown key.")
	}
	return k, nil
}

// forget drops the cached key set; the next verification reads it again.
func (j *jwtAccessTokens) forget() {
	j.mu.Lock()
	j.keys, j.fetched = nil, time.Time{}
	j.mu.Unlock()
}

// loadPublished reads the published RS256 keys and caches them.
func (j *jwtAccessTokens) loadPublished(ctx context.Context) (map[string]*jose.JSONWebKey, error) {
	now := time.Now()
	list, err := j.published(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("published signing keys: %w", err)
	}
	keys := make(map[string]*jose.JSONWebKey, len(list))
	for _, k := range list {
		if k.Algorithm != signing.RS256 {
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(k.PublicJWK); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		keys[k.ID] = &jwk
	}
	j.mu.Lock()
	j.keys, j.fetched = keys, now
	j.mu.Unlock()
	return keys, nil
}

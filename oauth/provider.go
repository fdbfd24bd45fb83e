package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth/signing"
	"github.com/govsso/sso/users"
)

// Config holds the provider's settings.
type Config struct {
	Issuer               string
	AccessTokenLifetime  time.Duration
	RefreshTokenLifetime time.Duration
	IDTokenLifetime      time.Duration
	AuthCodeLifetime     time.Duration
	// RefreshGracePeriod lets a client that refreshes twice at once use the
	// same refresh token within it, instead of tripping reuse detection.
	RefreshGracePeriod time.Duration
	// HMACKey signs opaque tokens and codes (32 bytes, derived from the KEK).
	HMACKey []byte
	// PairwiseKey keys the pairwise subject identifiers.
	PairwiseKey []byte
	// IdentityVerification says the identity-verification page can raise a
	// level-1 account to level 2, so acr_values=2 sends the person there.
	IdentityVerification bool
}

// SessionReader returns the browser's single sign-on session, or an error
// when there is none.
type SessionReader func(r *http.Request) (*users.Session, error)

// Provider is the OAuth 2.0 / OpenID Connect provider: fosite, composed with
// this server's storage, keys, accounts and sessions.
type Provider struct {
	cfg      Config
	oauth    fosite.OAuth2Provider
	fcfg     *fosite.Config
	d        *db.DB
	store    *SQLStore
	storage  *fositeStorage
	keys     *signing.Manager
	users    users.Store
	sessions SessionReader
	revoker  SessionRevoker
	audit    *audit.Log
	log      *slog.Logger

	// tokens issues and checks access tokens, refresh tokens and codes.
	tokens tokenStrategy
	// idTokens signs ID tokens; the device grant uses it directly.
	idTokens *openid.DefaultStrategy
	// expiredSessions and lockouts are purged by RunHousekeeping.
	expiredSessions SessionPurger
	lockouts        LockoutPurger

	keyMu    sync.Mutex
	keyCache map[string]cachedKey
}

type cachedKey struct {
	jwk     *jose.JSONWebKey
	fetched time.Time
}

// activeKeyTTL bounds how long a node keeps signing with a key after another
// node rotated it, should the rotation's invalidation not reach it.
const activeKeyTTL = 30 * time.Second

// Dependencies are the stores and services the provider uses.
type Dependencies struct {
	DB       *db.DB
	Store    *SQLStore
	Keys     *signing.Manager
	Users    users.Store
	Sessions SessionReader
	Audit    *audit.Log
	Logger   *slog.Logger
	Secrets  *SecretHasher
	// Revoker ends the browser session at RP-initiated logout.
	Revoker SessionRevoker
	// ExpiredSessions and Lockouts are purged by RunHousekeeping when set.
	ExpiredSessions SessionPurger
	Lockouts        LockoutPurger
}

// NewProvider composes fosite with the flows this server offers: the
// authorization code flow with PKCE, refresh tokens, client credentials,
// OpenID Connect, introspection, revocation and pushed authorization
// requests. The implicit flow and the password grant are left out on purpose
// (RFC 9700).
func NewProvider(cfg Config, deps Dependencies) *Provider {
	p := &Provider{cfg: cfg, d: deps.DB, store: deps.Store, keys: deps.Keys, users: deps.Users,
		sessions: deps.Sessions, audit: deps.Audit, log: deps.Logger, keyCache: map[string]cachedKey{}}
	p.revoker = deps.Revoker
	p.expiredSessions, p.lockouts = deps.ExpiredSessions, deps.Lockouts
	p.storage = &fositeStorage{d: deps.DB, store: deps.Store, refreshGrace: cfg.RefreshGracePeriod, parLifespan: 5 * time.Minute, clients: newClientCache()}
	p.fcfg = &fosite.Config{
		AccessTokenLifespan:             cfg.AccessTokenLifetime,
		RefreshTokenLifespan:            cfg.RefreshTokenLifetime,
		IDTokenLifespan:                 cfg.IDTokenLifetime,
		AuthorizeCodeLifespan:           cfg.AuthCodeLifetime,
		PushedAuthorizeContextLifespan:  5 * time.Minute,
		IDTokenIssuer:                   cfg.Issuer,
		AccessTokenIssuer:               cfg.Issuer,
		TokenURL:                        cfg.Issuer + "/oauth2/token",
		GlobalSecret:                    cfg.HMACKey,
		ScopeStrategy:                   fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:        fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCEForPublicClients:     true,
		EnablePKCEPlainChallengeMethod:  false,
		SendDebugMessagesToClients:      false,
		MinParameterEntropy:             fosite.MinParameterEntropy,
		RefreshTokenScopes:              []string{"offline_access", "offline"},
		ClientSecretsHasher:             secretHasher{deps.Secrets},
		RedirectSecureChecker:           fosite.IsRedirectURISecureStrict,
		PushedAuthorizeRequestURIPrefix: "urn:ietf:params:oauth:request_uri:",
	}
	keyGetter := func(ctx context.Context) (interface{}, error) { return p.signingKey(ctx) }
	p.tokens = tokenStrategy{CoreStrategy: compose.NewOAuth2HMACStrategy(p.fcfg), jwt: &jwtAccessTokens{
		issuer: cfg.Issuer, lifetime: cfg.AccessTokenLifetime, published: deps.Keys.Published,
		signingKey: func(ctx context.Context) (*jose.JSONWebKey, error) {
			return p.signingKey(withIDTokenAlg(ctx, signing.RS256)) // access tokens are always RS256
		},
	}}
	p.idTokens = compose.NewOpenIDConnectStrategy(keyGetter, p.fcfg)
	// Changes made on any node empty the caches at once; the TTLs remain
	// for a notification that is lost.
	p.storage.clients.follow(deps.DB)
	p.followKeyRotations(deps.DB)
	strategy := compose.CommonStrategy{
		CoreStrategy:               p.tokens,
		OpenIDConnectTokenStrategy: p.idTokens,
	}
	p.oauth = compose.Compose(p.fcfg, p.storage, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.PushedAuthorizeHandlerFactory,
	)
	return p
}

type algKey struct{}

// withIDTokenAlg tells the key getter which algorithm the client asked for.
func withIDTokenAlg(ctx context.Context, alg string) context.Context {
	return context.WithValue(ctx, algKey{}, alg)
}

// signingKey returns the active key for the algorithm in ctx (RS256 by
// default), cached briefly so that issuing a token does not read and decrypt
// the key every time.
func (p *Provider) signingKey(ctx context.Context) (*jose.JSONWebKey, error) {
	alg, _ := ctx.Value(algKey{}).(string)
	if alg == "" {
		alg = signing.RS256
	}
	p.keyMu.Lock()
	c, ok := p.keyCache[alg]
	p.keyMu.Unlock()
	if ok && time.Since(c.fetched) < activeKeyTTL {
		return c.jwk, nil
	}
	k, err := p.keys.Active(ctx, alg)
	if err != nil {
		return nil, err
	}
	jwk := k.JSONWebKey()
	p.keyMu.Lock()
	p.keyCache[alg] = cachedKey{jwk: jwk, fetched: time.Now()}
	p.keyMu.Unlock()
	return jwk, nil
}

// followKeyRotations empties the key caches whenever any node rotates keys.
func (p *Provider) followKeyRotations(inv db.Invalidator) {
	inv.OnInvalidate(signing.KeysInvalidation, func(string) { p.forgetKeys() })
}

// forgetKeys drops the cached signing keys and published keys, after a
// rotation on any node.
func (p *Provider) forgetKeys() {
	p.keyMu.Lock()
	clear(p.keyCache)
	p.keyMu.Unlock()
	p.tokens.jwt.forget()
}

// subjectFor is the sub a client sees for a user: the account ID, or for
// pairwise clients an HMAC of it bound to the client's sector, so that two
// departments cannot join their users by sub.
func (p *Provider) subjectFor(c *Client, userID string) string {
	if c.SubjectType != SubjectPairwise {
		return userID
	}
	m := hmac.New(sha256.New, p.cfg.PairwiseKey)
	m.Write([]byte(sectorOf(c) + "\x00" + userID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sectorOf is the host of the sector identifier URI, or of the redirect URIs.
func sectorOf(c *Client) string {
	raw := c.SectorIdentifierURI
	if raw == "" && len(c.RedirectURIs) > 0 {
		raw = c.RedirectURIs[0]
	}
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return c.ID
}

// newIDSession prepares the session of a grant for a signed-in person.
func newIDSession(subject, userID string, bs *users.Session, clientID, issuer string) *Session {
	s := newSession()
	s.Subject = subject
	s.Username = userID
	s.BrowserSessionID = bs.ID
	s.ACR = bs.ACR
	s.AMR = append([]string(nil), bs.AMR...)
	s.ClientID = clientID
	now := time.Now().UTC()
	s.Claims.Subject = subject
	s.Claims.Issuer = issuer
	s.Claims.AuthTime = bs.AuthTime.UTC().Truncate(time.Second)
	s.Claims.RequestedAt = now
	s.Claims.IssuedAt = now
	s.Claims.AuthenticationContextClassReference = acrValue(bs.ACR)
	s.Claims.AuthenticationMethodsReferences = s.AMR
	s.Claims.Extra = map[string]interface{}{"sid": bs.ID, "azp": clientID}
	if bs.ActingFor != "" {
		// The person acts for an enterprise: the client must know which.
		s.Claims.Extra["acting_for"] = bs.ActingFor
		s.ActingFor = bs.ActingFor
	}
	return s
}

// acrValue is how an assurance level appears in acr and acr_values.
func acrValue(level int) string {
	switch level {
	case 2:
		return "2"
	case 3:
		return "3"
	}
	return "1"
}

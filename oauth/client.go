package oauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Grant types a client may be registered for.
const (
	// GrantAuthorizationCode is the browser login flow of RFC 6749 §4.1.
	GrantAuthorizationCode = "authorization_code"
	// GrantRefreshToken lets a client renew its access token without the user.
	GrantRefreshToken = "refresh_token"
	// GrantClientCredentials is machine-to-machine access, with no user.
	GrantClientCredentials = "client_credentials"
	// GrantDeviceCode is the device authorization grant of RFC 8628.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// ResponseTypeCode is the only response type: the implicit flow is not offered.
const ResponseTypeCode = "code"

// How a client authenticates at the token endpoint.
const (
	// AuthMethodSecretBasic sends the secret in the Authorization header.
	AuthMethodSecretBasic = "client_secret_basic"
	// AuthMethodSecretPost sends the secret in the form body.
	AuthMethodSecretPost = "client_secret_post"
	// AuthMethodPrivateKeyJWT signs an assertion with a key from the client's JWKS.
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	// AuthMethodNone is for public clients, which cannot keep a secret.
	AuthMethodNone = "none"
)

// Access token formats.
const (
	// AccessTokenOpaque is a random handle checked by introspection (the default).
	AccessTokenOpaque = "opaque"
	// AccessTokenJWT is a signed RFC 9068 token that resource servers verify offline.
	AccessTokenJWT = "jwt"
)

// ID token signing algorithms.
const (
	// AlgRS256 is RSA PKCS#1 v1.5 with SHA-256, which every relying party supports (the default).
	AlgRS256 = "RS256"
	// AlgES256 is ECDSA P-256 with SHA-256.
	AlgES256 = "ES256"
)

// Subject identifier types of OpenID Connect Core §8.
const (
	// SubjectPublic gives every client the same sub for a user (the default).
	SubjectPublic = "public"
	// SubjectPairwise gives each sector a different sub, so clients cannot correlate users.
	SubjectPairwise = "pairwise"
)

// Limits on client metadata, so that one registration cannot bloat every token request.
const (
	maxIDLen     = 128
	maxNameRunes = 128
	maxListLen   = 50
	maxURILen    = 2000
	maxScopes    = 100
	maxScopeLen  = 64
)

// Client is an OAuth 2.0 / OpenID Connect client: a department system that
// delegates login to sso. Field names follow RFC 7591 and OpenID Connect
// Dynamic Client Registration where those define them.
type Client struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Public   bool   `json:"public"`
	Disabled bool   `json:"disabled"`
	// SecretHash is SecretHasher.Hash of the client secret; nil for public
	// clients and clients that authenticate with private_key_jwt.
	SecretHash []byte `json:"-"`
	// PreviousSecretHash is the hash of the secret a rotation replaced; it
	// keeps working until PreviousSecretExpiresAt, so that a department can
	// deploy the new secret without an outage.
	PreviousSecretHash      []byte    `json:"-"`
	PreviousSecretExpiresAt time.Time `json:"-"`
	// OrgUnitID is the department (org unit) the client belongs to; org
	// admins manage the clients of their subtree.
	OrgUnitID string `json:"org_unit_id"`

	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Scopes                  []string `json:"scopes"`
	Audience                []string `json:"audience"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	JWKSURI                 string   `json:"jwks_uri"`
	// JWKS is the client's public key set, inline; it is kept as given but
	// encoding/json compacts it, so store it compact to round-trip byte for byte.
	JWKS                  json.RawMessage `json:"jwks,omitempty"`
	BackchannelLogoutURI  string          `json:"backchannel_logout_uri"`
	FrontchannelLogoutURI string          `json:"frontchannel_logout_uri"`
	FirstParty            bool            `json:"first_party"`
	// LogoURI is the client's logo as a data: URI (PNG or JPEG, at most
	// MaxLogoBytes), shown on the sign-in and consent pages: a data URI, so
	// that the pages never load anything from another server.
	LogoURI                  string `json:"logo_uri,omitempty"`
	AccessTokenFormat        string `json:"access_token_format"`
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg"`
	SubjectType              string `json:"subject_type"`
	SectorIdentifierURI      string `json:"sector_identifier_uri"`
	RequirePKCE              bool   `json:"require_pkce"`
	RequirePAR               bool   `json:"require_par"`
	AllowIntrospection       bool   `json:"allow_introspection"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ApplyDefaults fills the metadata left empty with the safe, common choice.
// Scopes default to "openid" alone: a client must ask for profile, email or
// offline_access explicitly, so that it gets no more personal data and no
// longer-lived tokens than its registration says. Response types default to
// "code" only when the client uses the authorization code grant, and public
// clients always require PKCE (RFC 9700 §2.1.1).
func (c *Client) ApplyDefaults() {
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	if len(c.ResponseTypes) == 0 && slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
		c.ResponseTypes = []string{ResponseTypeCode}
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = AuthMethodSecretBasic
		if c.Public {
			c.TokenEndpointAuthMethod = AuthMethodNone
		}
	}
	if c.AccessTokenFormat == "" {
		c.AccessTokenFormat = AccessTokenOpaque
	}
	if c.IDTokenSignedResponseAlg == "" {
		c.IDTokenSignedResponseAlg = AlgRS256
	}
	if c.SubjectType == "" {
		c.SubjectType = SubjectPublic
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid"}
	}
	if c.Public {
		c.RequirePKCE = true
	}
}

// FieldError is one invalid field; Field is its JSON name, with an index for
// list entries ("redirect_uris[1]").
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every invalid field of a client, so that an
// administrator can fix a registration in one pass.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

// Error lists the invalid fields and why.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid client: " + strings.Join(parts, "; ")
}

// Has reports whether field is among the invalid ones.
func (e *ValidationError) Has(field string) bool {
	return slices.ContainsFunc(e.Fields, func(f FieldError) bool { return f.Field == field })
}

// validator collects field errors.
type validator struct{ fields []FieldError }

func (v *validator) add(field, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: v.fields}
}

// Validate checks the whole client and reports every invalid field in a
// *ValidationError. It expects ApplyDefaults to have run: empty enumerations
// are invalid, so that a stored client never needs defaults applied on read.
func (c *Client) Validate() error {
	var v validator
	v.checkID(c.ID)
	v.checkName(c.Name)
	v.checkRedirectURIs("redirect_uris", c.RedirectURIs)
	v.checkRedirectURIs("post_logout_redirect_uris", c.PostLogoutRedirectURIs)
	v.checkGrantTypes(c)
	v.checkResponseTypes(c)
	v.checkAuthMethod(c)
	v.checkScopes(c.Scopes)
	v.checkAudience(c.Audience)
	v.checkWebURI("jwks_uri", c.JWKSURI)
	v.checkJWKS(c)
	v.checkWebURI("backchannel_logout_uri", c.BackchannelLogoutURI)
	v.checkWebURI("frontchannel_logout_uri", c.FrontchannelLogoutURI)
	v.checkEnum("access_token_format", c.AccessTokenFormat, AccessTokenOpaque, AccessTokenJWT)
	v.checkEnum("id_token_signed_response_alg", c.IDTokenSignedResponseAlg, AlgRS256, AlgES256)
	v.checkEnum("subject_type", c.SubjectType, SubjectPublic, SubjectPairwise)
	v.checkWebURI("sector_identifier_uri", c.SectorIdentifierURI)
	v.checkLogo("logo_uri", c.LogoURI)
	v.checkSector(c)
	if c.Public && !c.RequirePKCE {
		v.add("require_pkce", "must be true for a public client: without PKCE a stolen code can be redeemed (RFC 9700)")
	}
	return v.err()
}

func (v *validator) checkID(id string) {
	if id == "" || len(id) > maxIDLen {
		v.add("id", "must be 1 to %d characters", maxIDLen)
		return
	}
	for _, r := range id {
		if !isIDChar(r) {
			v.add("id", "may contain only letters A-Z and a-z, digits and . _ : -")
			return
		}
	}
}

func isIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == ':' || r == '-'
}

func (v *validator) checkName(name string) {
	switch {
	case !utf8.ValidString(name):
		v.add("name", "must be valid UTF-8")
	case utf8.RuneCountInString(name) > maxNameRunes:
		v.add("name", "must be at most %d characters", maxNameRunes)
	case strings.ContainsFunc(name, unicode.IsControl):
		v.add("name", "must not contain control characters")
	}
}

// checkList reports a list that is too long or repeats an entry, and says
// whether the entries are worth checking one by one.
func (v *validator) checkList(field string, list []string, max int) bool {
	if len(list) > max {
		v.add(field, "at most %d entries, got %d", max, len(list))
		return false
	}
	for i, s := range list {
		if slices.Contains(list[:i], s) {
			v.add(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", s)
		}
	}
	return true
}

// checkRedirectURIs applies RFC 8252 and RFC 9700: exact, absolute URIs with
// no fragment, over https, over http only to the loopback interface, or with
// a private-use (reverse domain name) scheme for native apps.
func (v *validator) checkRedirectURIs(field string, uris []string) {
	if !v.checkList(field, uris, maxListLen) {
		return
	}
	for i, raw := range uris {
		name := fmt.Sprintf("%s[%d]", field, i)
		u, ok := v.parseURI(name, raw)
		if !ok {
			continue
		}
		switch {
		case u.Scheme == "https" || u.Scheme == "http":
			v.checkWebHost(name, u)
		case !strings.Contains(u.Scheme, "."):
			v.add(name, "scheme %q is not allowed: use https, http to localhost, or a private-use scheme such as com.example.app (RFC 8252)", u.Scheme)
		}
	}
}

// checkWebURI checks an optional URI the server itself calls or that must be
// https by specification (JWKS, logout, sector identifier).
func (v *validator) checkWebURI(field, raw string) {
	if raw == "" {
		return
	}
	u, ok := v.parseURI(field, raw)
	if !ok {
		return
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		v.add(field, "must use https")
		return
	}
	v.checkWebHost(field, u)
}

// MaxLogoBytes bounds a client's logo image.
const MaxLogoBytes = 32 << 10

// LogoDataURI makes the logo_uri of an image file: PNG or JPEG only, told
// by its content, at most MaxLogoBytes.
func LogoDataURI(image []byte) (string, error) {
	if len(image) > MaxLogoBytes {
		return "", fmt.Errorf("the logo must be at most %d KiB", MaxLogoBytes>>10)
	}
	switch t := http.DetectContentType(image); t {
	case "image/png", "image/jpeg":
		return "data:" + t + ";base64," + base64.StdEncoding.EncodeToString(image), nil
	}
	return "", errors.New("the logo must be a PNG or JPEG image")
}

// checkLogo accepts only what LogoDataURI makes: no link to another server,
// no SVG (which can carry script), nothing large.
func (v *validator) checkLogo(field, raw string) {
	if raw == "" {
		return
	}
	b64, ok := strings.CutPrefix(raw, "data:image/png;base64,")
	if !ok {
		b64, ok = strings.CutPrefix(raw, "data:image/jpeg;base64,")
	}
	if !ok {
		v.add(field, "must be a data:image/png or data:image/jpeg base64 URI")
		return
	}
	image, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		v.add(field, "must be valid base64")
		return
	}
	if canonical, err := LogoDataURI(image); err != nil {
		v.add(field, "%s", err.Error())
	} else if canonical != raw {
		v.add(field, "must name the image's real type")
	}
}

// parseURI checks what every URI must be: short, absolute, fragment-free.
func (v *validator) parseURI(field, raw string) (*url.URL, bool) {
	if len(raw) > maxURILen {
		v.add(field, "must be at most %d characters", maxURILen)
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		v.add(field, "must be an absolute URI")
		return nil, false
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		v.add(field, "must not contain a fragment (#)")
		return nil, false
	}
	return u, true
}

// checkWebHost accepts https anywhere and plain http only on the loopback
// interface, where no network attacker can read it.
func (v *validator) checkWebHost(field string, u *url.URL) {
	if u.Host == "" {
		v.add(field, "must name a host")
		return
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		v.add(field, "must use https (http is allowed only for localhost, 127.0.0.1 and [::1])")
	}
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// refusedGrants explains why grants deprecated by RFC 9700 are not offered.
var refusedGrants = map[string]string{
	"password": "the resource owner password grant is not allowed: it hands the user's password to the client (RFC 9700 §2.4); use authorization_code",
	"implicit": "the implicit grant is not allowed: it leaks access tokens in the URL (RFC 9700 §2.1.2); use authorization_code with PKCE",
}

func (v *validator) checkGrantTypes(c *Client) {
	if len(c.GrantTypes) == 0 {
		v.add("grant_types", "at least one grant type is required")
	}
	if !v.checkList("grant_types", c.GrantTypes, maxListLen) {
		return
	}
	for i, g := range c.GrantTypes {
		name := fmt.Sprintf("grant_types[%d]", i)
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode:
		case GrantClientCredentials:
			if c.Public {
				v.add(name, "a public client cannot use client_credentials: it has no secret to prove who it is")
			}
		default:
			if why, ok := refusedGrants[g]; ok {
				v.add(name, "%s", why)
			} else {
				v.add(name, "unknown grant type %q", g)
			}
		}
	}
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		v.add("redirect_uris", "at least one redirect URI is required for the authorization_code grant")
	}
}

func (v *validator) checkResponseTypes(c *Client) {
	if !v.checkList("response_types", c.ResponseTypes, maxListLen) {
		return
	}
	for i, rt := range c.ResponseTypes {
		if rt != ResponseTypeCode {
			v.add(fmt.Sprintf("response_types[%d]", i), "%q is not allowed: only \"code\" is supported (no implicit or hybrid flow)", rt)
		}
	}
	code := slices.Contains(c.ResponseTypes, ResponseTypeCode)
	switch grant := slices.Contains(c.GrantTypes, GrantAuthorizationCode); {
	case grant && !code:
		v.add("response_types", "must contain \"code\" for the authorization_code grant")
	case code && !grant:
		v.add("response_types", "\"code\" needs the authorization_code grant")
	}
}

func (v *validator) checkAuthMethod(c *Client) {
	m := c.TokenEndpointAuthMethod
	switch m {
	case AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodPrivateKeyJWT, AuthMethodNone:
	case "":
		v.add("token_endpoint_auth_method", "is required")
		return
	default:
		v.add("token_endpoint_auth_method", "%q is not one of client_secret_basic, client_secret_post, private_key_jwt, none", m)
		return
	}
	switch {
	case c.Public && m != AuthMethodNone:
		v.add("token_endpoint_auth_method", "must be \"none\" for a public client")
	case !c.Public && m == AuthMethodNone:
		v.add("token_endpoint_auth_method", "\"none\" is only for public clients")
	case m == AuthMethodPrivateKeyJWT && c.JWKSURI == "" && len(c.JWKS) == 0:
		v.add("token_endpoint_auth_method", "private_key_jwt needs the client's keys in jwks or jwks_uri")
	}
}

// checkScopes enforces RFC 6749 §3.3 scope-token syntax: printable ASCII
// except space, double quote and backslash.
func (v *validator) checkScopes(scopes []string) {
	if !v.checkList("scopes", scopes, maxScopes) {
		return
	}
	for i, s := range scopes {
		name := fmt.Sprintf("scopes[%d]", i)
		switch {
		case s == "" || len(s) > maxScopeLen:
			v.add(name, "must be 1 to %d characters", maxScopeLen)
		case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' }):
			v.add(name, "may contain only printable ASCII, without spaces, quotes or backslashes")
		}
	}
}

func (v *validator) checkAudience(aud []string) {
	if !v.checkList("audience", aud, maxListLen) {
		return
	}
	for i, a := range aud {
		if a == "" || len(a) > maxURILen || strings.ContainsFunc(a, unicode.IsSpace) {
			v.add(fmt.Sprintf("audience[%d]", i), "must be 1 to %d characters without spaces", maxURILen)
		}
	}
}

// checkJWKS accepts only a JSON object with a "keys" array; the keys
// themselves are parsed where they are used.
func (v *validator) checkJWKS(c *Client) {
	if len(c.JWKS) == 0 {
		return
	}
	if c.JWKSURI != "" {
		v.add("jwks", "must not be given together with jwks_uri")
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(c.JWKS, &set); err != nil || set.Keys == nil {
		v.add("jwks", "must be a JSON Web Key Set: an object with a \"keys\" array")
	}
}

func (v *validator) checkEnum(field, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		v.add(field, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
}

// checkSector applies OpenID Connect Core §8.1: pairwise subjects are
// computed per host, so redirect URIs on several hosts need a sector
// identifier to group them.
func (v *validator) checkSector(c *Client) {
	if c.SubjectType != SubjectPairwise || c.SectorIdentifierURI != "" {
		return
	}
	var hosts []string
	for _, raw := range c.RedirectURIs {
		if u, err := url.Parse(raw); err == nil && !slices.Contains(hosts, u.Host) {
			hosts = append(hosts, u.Host)
		}
	}
	if len(hosts) > 1 {
		v.add("sector_identifier_uri", "is required for pairwise subjects when redirect URIs are on more than one host")
	}
}

// SecretHasher hashes client secrets with HMAC-SHA-256 under a server key.
// A slow password hash is not needed: secrets are 256 random bits, which no
// one can guess, and the key means a stolen database alone cannot even test
// a guess.
type SecretHasher struct {
	key []byte
}

// NewSecretHasher keys a hasher; callers pass kek.Derive("sso client secret").
func NewSecretHasher(key []byte) *SecretHasher {
	return &SecretHasher{key: slices.Clone(key)}
}

// Hash returns the value to store in Client.SecretHash.
func (h *SecretHasher) Hash(secret string) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// Verify reports whether secret matches hash, in constant time.
func (h *SecretHasher) Verify(secret string, hash []byte) bool {
	return hmac.Equal(h.Hash(secret), hash)
}

// RotateSecret makes newHash the secret and lets the current one keep
// working until now+overlap (overlap <= 0: the old secret stops at once).
// A secret still in an earlier overlap is dropped: only one old secret works.
func (c *Client) RotateSecret(newHash []byte, now time.Time, overlap time.Duration) {
	c.PreviousSecretHash, c.PreviousSecretExpiresAt = nil, time.Time{}
	if overlap > 0 && len(c.SecretHash) > 0 {
		c.PreviousSecretHash, c.PreviousSecretExpiresAt = c.SecretHash, now.UTC().Add(overlap).Truncate(time.Microsecond)
	}
	c.SecretHash = newHash
}

// RotatedSecretHashes are the old secret hashes still accepted at now.
func (c *Client) RotatedSecretHashes(now time.Time) [][]byte {
	if len(c.PreviousSecretHash) == 0 || !now.Before(c.PreviousSecretExpiresAt) {
		return nil
	}
	return [][]byte{c.PreviousSecretHash}
}

// VerifySecret reports whether secret is the client's, or its previous one
// within the overlap, comparing in constant time.
func (c *Client) VerifySecret(h *SecretHasher, secret string, now time.Time) bool {
	ok := len(c.SecretHash) > 0 && h.Verify(secret, c.SecretHash)
	for _, old := range c.RotatedSecretHashes(now) {
		ok = h.Verify(secret, old) || ok
	}
	return ok
}

// GenerateSecret returns a new client secret: 32 random bytes, base64url
// without padding. It is shown to the administrator once and only its hash is kept.
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

package oauth_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"slices"
	"strings"
	"testing"

	"github.com/govsso/sso/oauth"
)

// webClient is a valid confidential web client with defaults applied.
func webClient() *oauth.Client {
	c := &oauth.Client{
		ID:           "dept.housing",
		Name:         "住房保障服务",
		RedirectURIs: []string{"https://housing.example.gov/callback"},
	}
	c.ApplyDefaults()
	return c
}

func TestValidate(t *testing.T) {
	manyURIs := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("https://app.example.gov/cb/%d", i)
		}
		return out
	}
	manyScopes := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("scope.%d", i)
		}
		return out
	}
	const jwks = `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`
	tests := []struct {
		name   string
		change func(c *oauth.Client)
		field  string // "" means valid
		reason string // substring of the reason, when it matters
	}{
		{"defaults", func(c *oauth.Client) {}, "", ""},
		{"id of 128 chars with every allowed symbol", func(c *oauth.Client) { c.ID = strings.Repeat("a", 120) + "A9._:-zz" }, "", ""},
		{"id empty", func(c *oauth.Client) { c.ID = "" }, "id", ""},
		{"id too long", func(c *oauth.Client) { c.ID = strings.Repeat("a", 129) }, "id", ""},
		{"id with slash", func(c *oauth.Client) { c.ID = "dept/housing" }, "id", ""},
		{"id with non-ASCII", func(c *oauth.Client) { c.ID = "住房" }, "id", ""},
		{"name of 128 runes", func(c *oauth.Client) { c.Name = strings.Repeat("政", 128) }, "", ""},
		{"name empty", func(c *oauth.Client) { c.Name = "" }, "", ""},
		{"name of 129 runes", func(c *oauth.Client) { c.Name = strings.Repeat("政", 129) }, "name", ""},
		{"name not UTF-8", func(c *oauth.Client) { c.Name = "bad\xff" }, "name", "UTF-8"},
		{"name with control character", func(c *oauth.Client) { c.Name = "a\nb" }, "name", ""},
		{"redirect http localhost", func(c *oauth.Client) { c.RedirectURIs = []string{"http://localhost:8080/cb"} }, "", ""},
		{"redirect http 127.0.0.1", func(c *oauth.Client) { c.RedirectURIs = []string{"http://127.0.0.1:49152/cb"} }, "", ""},
		{"redirect http [::1]", func(c *oauth.Client) { c.RedirectURIs = []string{"http://[::1]/cb"} }, "", ""},
		{"redirect private-use scheme", func(c *oauth.Client) { c.RedirectURIs = []string{"gov.example.app:/oauth2redirect"} }, "", ""},
		{"redirect with query", func(c *oauth.Client) { c.RedirectURIs = []string{"https://a.example.gov/cb?x=1"} }, "", ""},
		{"redirect relative", func(c *oauth.Client) { c.RedirectURIs = []string{"/callback"} }, "redirect_uris[0]", "absolute"},
		{"redirect with fragment", func(c *oauth.Client) { c.RedirectURIs = []string{"https://a.example.gov/cb#x"} }, "redirect_uris[0]", "fragment"},
		{"redirect with empty fragment", func(c *oauth.Client) { c.RedirectURIs = []string{"https://a.example.gov/cb#"} }, "redirect_uris[0]", "fragment"},
		{"redirect http remote", func(c *oauth.Client) { c.RedirectURIs = []string{"http://a.example.gov/cb"} }, "redirect_uris[0]", "https"},
		{"redirect http lookalike host", func(c *oauth.Client) { c.RedirectURIs = []string{"http://localhost.example.com/cb"} }, "redirect_uris[0]", "https"},
		{"redirect https without host", func(c *oauth.Client) { c.RedirectURIs = []string{"https:/cb"} }, "redirect_uris[0]", "host"},
		{"redirect custom scheme without dot", func(c *oauth.Client) { c.RedirectURIs = []string{"myapp:/cb"} }, "redirect_uris[0]", "private-use"},
		{"redirect javascript", func(c *oauth.Client) { c.RedirectURIs = []string{"javascript:alert(1)"} }, "redirect_uris[0]", ""},
		{"redirect too long", func(c *oauth.Client) {
			c.RedirectURIs = []string{"https://a.example.gov/" + strings.Repeat("x", 2000)}
		}, "redirect_uris[0]", "2000"},
		{"redirect listed twice", func(c *oauth.Client) {
			c.RedirectURIs = []string{"https://a.example.gov/cb", "https://a.example.gov/cb"}
		}, "redirect_uris[1]", "twice"},
		{"50 redirect URIs", func(c *oauth.Client) { c.RedirectURIs = manyURIs(50) }, "", ""},
		{"51 redirect URIs", func(c *oauth.Client) { c.RedirectURIs = manyURIs(51) }, "redirect_uris", "at most 50"},
		{"post-logout http remote", func(c *oauth.Client) { c.PostLogoutRedirectURIs = []string{"http://a.example.gov/bye"} }, "post_logout_redirect_uris[0]", "https"},
		{"post-logout https", func(c *oauth.Client) { c.PostLogoutRedirectURIs = []string{"https://a.example.gov/bye"} }, "", ""},
		{"grant password refused", func(c *oauth.Client) { c.GrantTypes = append(c.GrantTypes, "password") }, "grant_types[2]", "password grant is not allowed"},
		{"grant implicit refused", func(c *oauth.Client) { c.GrantTypes = []string{"implicit"} }, "grant_types[0]", "implicit grant is not allowed"},
		{"grant unknown", func(c *oauth.Client) { c.GrantTypes = append(c.GrantTypes, "urn:x") }, "grant_types[2]", "unknown"},
		{"grant types empty", func(c *oauth.Client) { c.GrantTypes = nil; c.ResponseTypes = nil }, "grant_types", ""},
		{"device code grant", func(c *oauth.Client) { c.GrantTypes = append(c.GrantTypes, oauth.GrantDeviceCode) }, "", ""},
		{"authorization code without redirect URI", func(c *oauth.Client) { c.RedirectURIs = nil }, "redirect_uris", "authorization_code"},
		{"client credentials only, no redirect URI", func(c *oauth.Client) {
			c.GrantTypes, c.ResponseTypes, c.RedirectURIs = []string{oauth.GrantClientCredentials}, nil, nil
		}, "", ""},
		{"response type token", func(c *oauth.Client) { c.ResponseTypes = []string{"code", "token"} }, "response_types[1]", "only \"code\""},
		{"response types missing code", func(c *oauth.Client) { c.ResponseTypes = nil }, "response_types", "authorization_code"},
		{"code without authorization_code grant", func(c *oauth.Client) { c.GrantTypes = []string{oauth.GrantClientCredentials} }, "response_types", "needs the authorization_code"},
		{"auth method post", func(c *oauth.Client) { c.TokenEndpointAuthMethod = oauth.AuthMethodSecretPost }, "", ""},
		{"auth method empty", func(c *oauth.Client) { c.TokenEndpointAuthMethod = "" }, "token_endpoint_auth_method", "required"},
		{"auth method unknown", func(c *oauth.Client) { c.TokenEndpointAuthMethod = "client_secret_jwt" }, "token_endpoint_auth_method", "not one of"},
		{"public client with secret method", func(c *oauth.Client) { c.Public, c.RequirePKCE = true, true }, "token_endpoint_auth_method", "public"},
		{"confidential client with none", func(c *oauth.Client) { c.TokenEndpointAuthMethod = oauth.AuthMethodNone }, "token_endpoint_auth_method", "public"},
		{"public client with none", func(c *oauth.Client) {
			c.Public, c.RequirePKCE, c.TokenEndpointAuthMethod = true, true, oauth.AuthMethodNone
		}, "", ""},
		{"public client with client credentials", func(c *oauth.Client) {
			c.Public, c.RequirePKCE, c.TokenEndpointAuthMethod = true, true, oauth.AuthMethodNone
			c.GrantTypes = append(c.GrantTypes, oauth.GrantClientCredentials)
		}, "grant_types[2]", "public client"},
		{"public client without PKCE", func(c *oauth.Client) { c.Public, c.TokenEndpointAuthMethod = true, oauth.AuthMethodNone }, "require_pkce", ""},
		{"private_key_jwt without keys", func(c *oauth.Client) { c.TokenEndpointAuthMethod = oauth.AuthMethodPrivateKeyJWT }, "token_endpoint_auth_method", "jwks"},
		{"private_key_jwt with jwks_uri", func(c *oauth.Client) {
			c.TokenEndpointAuthMethod, c.JWKSURI = oauth.AuthMethodPrivateKeyJWT, "https://a.example.gov/jwks.json"
		}, "", ""},
		{"private_key_jwt with inline jwks", func(c *oauth.Client) {
			c.TokenEndpointAuthMethod, c.JWKS = oauth.AuthMethodPrivateKeyJWT, json.RawMessage(jwks)
		}, "", ""},
		{"jwks and jwks_uri both", func(c *oauth.Client) {
			c.JWKS, c.JWKSURI = json.RawMessage(jwks), "https://a.example.gov/jwks.json"
		}, "jwks", "together"},
		{"jwks not a key set", func(c *oauth.Client) { c.JWKS = json.RawMessage(`{"kty":"EC"}`) }, "jwks", "keys"},
		{"jwks_uri over http", func(c *oauth.Client) { c.JWKSURI = "http://a.example.gov/jwks.json" }, "jwks_uri", "https"},
		{"scopes of 64 chars", func(c *oauth.Client) { c.Scopes = []string{strings.Repeat("s", 64)} }, "", ""},
		{"scope of 65 chars", func(c *oauth.Client) { c.Scopes = []string{strings.Repeat("s", 65)} }, "scopes[0]", "64"},
		{"scope with space", func(c *oauth.Client) { c.Scopes = []string{"openid", "a b"} }, "scopes[1]", "spaces"},
		{"scope with quote", func(c *oauth.Client) { c.Scopes = []string{`a"b`} }, "scopes[0]", ""},
		{"scope empty", func(c *oauth.Client) { c.Scopes = []string{""} }, "scopes[0]", ""},
		{"100 scopes", func(c *oauth.Client) { c.Scopes = manyScopes(100) }, "", ""},
		{"101 scopes", func(c *oauth.Client) { c.Scopes = manyScopes(101) }, "scopes", "at most 100"},
		{"audience", func(c *oauth.Client) { c.Audience = []string{"https://api.example.gov"} }, "", ""},
		{"audience empty entry", func(c *oauth.Client) { c.Audience = []string{""} }, "audience[0]", ""},
		{"backchannel logout over http", func(c *oauth.Client) { c.BackchannelLogoutURI = "http://a.example.gov/logout" }, "backchannel_logout_uri", "https"},
		{"frontchannel logout with fragment", func(c *oauth.Client) { c.FrontchannelLogoutURI = "https://a.example.gov/logout#x" }, "frontchannel_logout_uri", "fragment"},
		{"logout URIs", func(c *oauth.Client) {
			c.BackchannelLogoutURI, c.FrontchannelLogoutURI = "https://a.example.gov/bc", "https://a.example.gov/fc"
		}, "", ""},
		{"jwt access tokens", func(c *oauth.Client) { c.AccessTokenFormat = oauth.AccessTokenJWT }, "", ""},
		{"access token format unknown", func(c *oauth.Client) { c.AccessTokenFormat = "paseto" }, "access_token_format", ""},
		{"ES256 ID tokens", func(c *oauth.Client) { c.IDTokenSignedResponseAlg = oauth.AlgES256 }, "", ""},
		{"ID token alg none", func(c *oauth.Client) { c.IDTokenSignedResponseAlg = "none" }, "id_token_signed_response_alg", ""},
		{"subject type unknown", func(c *oauth.Client) { c.SubjectType = "secret" }, "subject_type", ""},
		{"pairwise on one host", func(c *oauth.Client) { c.SubjectType = oauth.SubjectPairwise }, "", ""},
		{"pairwise on two hosts without sector", func(c *oauth.Client) {
			c.SubjectType = oauth.SubjectPairwise
			c.RedirectURIs = []string{"https://a.example.gov/cb", "https://b.example.gov/cb"}
		}, "sector_identifier_uri", "pairwise"},
		{"pairwise on two hosts with sector", func(c *oauth.Client) {
			c.SubjectType, c.SectorIdentifierURI = oauth.SubjectPairwise, "https://a.example.gov/sector.json"
			c.RedirectURIs = []string{"https://a.example.gov/cb", "https://b.example.gov/cb"}
		}, "", ""},
		{"sector identifier over http", func(c *oauth.Client) { c.SectorIdentifierURI = "http://a.example.gov/s.json" }, "sector_identifier_uri", "https"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := webClient()
			tc.change(c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ve *oauth.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError on %s, got %v", tc.field, err)
			}
			i := slices.IndexFunc(ve.Fields, func(f oauth.FieldError) bool { return f.Field == tc.field })
			if i < 0 {
				t.Fatalf("want an error on %s, got %v", tc.field, err)
			}
			if !strings.Contains(ve.Fields[i].Reason, tc.reason) {
				t.Fatalf("reason for %s is %q, want it to mention %q", tc.field, ve.Fields[i].Reason, tc.reason)
			}
		})
	}
}

func TestValidateNamesEveryInvalidField(t *testing.T) {
	c := webClient()
	c.ID = ""
	c.RedirectURIs = []string{"http://a.example.gov/cb"}
	c.GrantTypes = append(c.GrantTypes, "password")
	c.SubjectType = "secret"
	err := c.Validate()
	var ve *oauth.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	for _, field := range []string{"id", "redirect_uris[0]", "grant_types[2]", "subject_type"} {
		if !ve.Has(field) {
			t.Errorf("%s not reported in %v", field, ve.Fields)
		}
		if !strings.Contains(err.Error(), field+": ") {
			t.Errorf("Error() does not list %s: %s", field, err)
		}
	}
	if len(ve.Fields) != 4 {
		t.Errorf("want exactly 4 problems, got %v", ve.Fields)
	}
}

func TestApplyDefaults(t *testing.T) {
	tests := []struct {
		name   string
		client oauth.Client
		want   oauth.Client
	}{
		{
			name:   "confidential",
			client: oauth.Client{},
			want: oauth.Client{
				GrantTypes:               []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken},
				ResponseTypes:            []string{oauth.ResponseTypeCode},
				TokenEndpointAuthMethod:  oauth.AuthMethodSecretBasic,
				AccessTokenFormat:        oauth.AccessTokenOpaque,
				IDTokenSignedResponseAlg: oauth.AlgRS256,
				SubjectType:              oauth.SubjectPublic,
				Scopes:                   []string{"openid"},
			},
		},
		{
			name:   "public",
			client: oauth.Client{Public: true},
			want: oauth.Client{
				Public:                   true,
				GrantTypes:               []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken},
				ResponseTypes:            []string{oauth.ResponseTypeCode},
				TokenEndpointAuthMethod:  oauth.AuthMethodNone,
				AccessTokenFormat:        oauth.AccessTokenOpaque,
				IDTokenSignedResponseAlg: oauth.AlgRS256,
				SubjectType:              oauth.SubjectPublic,
				Scopes:                   []string{"openid"},
				RequirePKCE:              true,
			},
		},
		{
			name:   "client credentials gets no response type",
			client: oauth.Client{GrantTypes: []string{oauth.GrantClientCredentials}},
			want: oauth.Client{
				GrantTypes:               []string{oauth.GrantClientCredentials},
				TokenEndpointAuthMethod:  oauth.AuthMethodSecretBasic,
				AccessTokenFormat:        oauth.AccessTokenOpaque,
				IDTokenSignedResponseAlg: oauth.AlgRS256,
				SubjectType:              oauth.SubjectPublic,
				Scopes:                   []string{"openid"},
			},
		},
		{
			name: "explicit values are kept",
			client: oauth.Client{
				GrantTypes: []string{oauth.GrantDeviceCode}, TokenEndpointAuthMethod: oauth.AuthMethodSecretPost,
				AccessTokenFormat: oauth.AccessTokenJWT, IDTokenSignedResponseAlg: oauth.AlgES256,
				SubjectType: oauth.SubjectPairwise, Scopes: []string{"openid", "profile"},
			},
			want: oauth.Client{
				GrantTypes: []string{oauth.GrantDeviceCode}, TokenEndpointAuthMethod: oauth.AuthMethodSecretPost,
				AccessTokenFormat: oauth.AccessTokenJWT, IDTokenSignedResponseAlg: oauth.AlgES256,
				SubjectType: oauth.SubjectPairwise, Scopes: []string{"openid", "profile"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client
			c.ApplyDefaults()
			got, _ := json.Marshal(c)
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func randomKey(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecretHasher(t *testing.T) {
	h := oauth.NewSecretHasher(randomKey(t))
	other := oauth.NewSecretHasher(randomKey(t))
	secret, err := oauth.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := oauth.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	hash := h.Hash(secret)
	if len(hash) != 32 {
		t.Fatalf("hash is %d bytes, want 32", len(hash))
	}
	tests := []struct {
		name   string
		hasher *oauth.SecretHasher
		secret string
		hash   []byte
		want   bool
	}{
		{"right secret", h, secret, hash, true},
		{"wrong secret", h, wrong, hash, false},
		{"empty secret", h, "", hash, false},
		{"other key", other, secret, hash, false},
		{"no stored hash", h, secret, nil, false},
		{"truncated hash", h, secret, hash[:16], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.hasher.Verify(tc.secret, tc.hash); got != tc.want {
				t.Fatalf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSecretHasherKeepsItsOwnKey(t *testing.T) {
	key := randomKey(t)
	h := oauth.NewSecretHasher(key)
	hash := h.Hash("s")
	key[0] ^= 1
	if !h.Verify("s", hash) {
		t.Fatal("changing the caller's key slice changed the hasher")
	}
}

func TestGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := oauth.GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 43 {
			t.Fatalf("secret %d characters, want 43", len(s))
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("secret is not 32 bytes of base64url without padding: %v", err)
		}
		if seen[s] {
			t.Fatal("GenerateSecret repeated a secret")
		}
		seen[s] = true
	}
}

func TestClientLogo(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	logo, err := oauth.LogoDataURI(buf.Bytes())
	if err != nil || !strings.HasPrefix(logo, "data:image/png;base64,") {
		t.Fatalf("LogoDataURI(png) = %.40q, %v", logo, err)
	}
	for name, b := range map[string][]byte{
		"svg":          []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`),
		"too big":      append(append([]byte{}, buf.Bytes()...), make([]byte, oauth.MaxLogoBytes)...),
		"not an image": []byte("hello"),
	} {
		if _, err := oauth.LogoDataURI(b); err == nil {
			t.Errorf("LogoDataURI(%s) accepted", name)
		}
	}
	tests := []struct {
		name, logo string
		ok         bool
	}{
		{"png data URI", logo, true},
		{"remote URL", "https://cdn.example.org/logo.png", false},
		{"svg data URI", "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", false},
		{"png bytes called jpeg", strings.Replace(logo, "image/png", "image/jpeg", 1), false},
		{"bad base64", "data:image/png;base64,!!!", false},
	}
	for _, tc := range tests {
		c := &oauth.Client{ID: "app", Name: "App", RedirectURIs: []string{"https://app.example.org/cb"}, LogoURI: tc.logo}
		c.ApplyDefaults()
		err := c.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

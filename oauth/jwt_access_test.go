package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"github.com/ory/fosite"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth/signing"
	"github.com/govsso/sso/users"
)

const tokenTestIssuer = "http://127.0.0.1:8443"

func tokenTestBytes(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newTokenTestProvider is a provider on d with signing keys; set changes
// its dependencies before it is built.
func newTokenTestProvider(t *testing.T, d *db.DB, set func(*Dependencies)) *Provider {
	t.Helper()
	k, err := kek.New(tokenTestBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	keys := signing.NewManager(d, k)
	if _, err := keys.EnsureKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	deps := Dependencies{
		DB: d, Store: NewSQLStore(d, k), Keys: keys, Users: users.NewSQLStore(d, k), Audit: audit.NewLog(d),
		Logger: slog.New(slog.DiscardHandler), Secrets: NewSecretHasher(tokenTestBytes(t)),
		Sessions: func(*http.Request) (*users.Session, error) { return nil, errors.New("no session") },
	}
	if set != nil {
		set(&deps)
	}
	return NewProvider(Config{
		Issuer: tokenTestIssuer, AccessTokenLifetime: time.Hour, RefreshTokenLifetime: time.Hour, IDTokenLifetime: time.Hour,
		AuthCodeLifetime: time.Minute, HMACKey: tokenTestBytes(t), PairwiseKey: tokenTestBytes(t),
	}, deps)
}

// tokenRequest is a granted request of a client in format, for a person
// when userID is set.
func tokenRequest(format, userID string, audience ...string) *fosite.AccessRequest {
	s := newSession()
	s.ClientID = "app"
	if userID != "" {
		s = newIDSession("sub-"+userID, userID, &users.Session{ID: "sid", ACR: 2, AMR: []string{"pwd", "otp"}, AuthTime: time.Now().Add(-time.Minute)}, "app", tokenTestIssuer)
	}
	s.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour).Round(time.Second))
	ar := fosite.NewAccessRequest(s)
	ar.Client = fositeClient{&Client{ID: "app", AccessTokenFormat: format}}
	ar.GrantScope("openid")
	ar.GrantScope("profile")
	for _, a := range audience {
		ar.GrantAudience(a)
	}
	return ar
}

// decodeAccessToken verifies token with the published RS256 key.
func decodeAccessToken(t *testing.T, p *Provider, token string) (jose.Header, map[string]any) {
	t.Helper()
	parsed, err := jwt.ParseSigned(token)
	if err != nil {
		t.Fatalf("not a JWS: %v", err)
	}
	k, err := p.keys.Active(context.Background(), signing.RS256)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := parsed.Claims(k.Signer().Public(), &claims); err != nil {
		t.Fatalf("signature: %v", err)
	}
	return parsed.Headers[0], claims
}

func TestAccessTokenFormatPerClient(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		p := newTokenTestProvider(t, d, nil)
		ctx := context.Background()
		active, err := p.keys.Active(ctx, signing.RS256)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name, format, user string
			audience           []string
			wantAud            []any
			wantSub            string
		}{
			{"person, no audience", AccessTokenJWT, "u1", nil, []any{"app"}, "sub-u1"},
			{"person, granted audience", AccessTokenJWT, "u1", []string{"https://api.example.org"}, []any{"https://api.example.org"}, "sub-u1"},
			{"client credentials", AccessTokenJWT, "", nil, []any{"app"}, "app"},
		} {
			t.Run(c.name, func(t *testing.T) {
				ar := tokenRequest(c.format, c.user, c.audience...)
				token, sig, err := p.tokens.GenerateAccessToken(ctx, ar)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasSuffix(token, "."+sig) || p.tokens.AccessTokenSignature(ctx, token) != sig {
					t.Fatal("the signature is not the token's last segment")
				}
				h, claims := decodeAccessToken(t, p, token)
				if h.Algorithm != "RS256" || h.KeyID != active.ID || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
					t.Fatalf("header %+v", h)
				}
				aud, _ := claims["aud"].([]any)
				if claims["iss"] != tokenTestIssuer || claims["sub"] != c.wantSub || !slices.Equal(aud, c.wantAud) ||
					claims["client_id"] != "app" || claims["scope"] != "openid profile" || claims["jti"] == "" {
					t.Fatalf("claims %v", claims)
				}
				if exp := int64(claims["exp"].(float64)); exp != ar.GetSession().GetExpiresAt(fosite.AccessToken).Unix() {
					t.Fatalf("exp %d is not the session's", exp)
				}
				_, hasAuthTime := claims["auth_time"]
				if person := c.user != ""; hasAuthTime != person || (claims["acr"] == "2") != person {
					t.Fatalf("authentication claims %v for person=%v", claims, person)
				}
				if c.user != "" && !slices.Equal(claims["amr"].([]any), []any{"pwd", "otp"}) {
					t.Fatalf("amr %v", claims["amr"])
				}
				if err := p.tokens.ValidateAccessToken(ctx, ar, token); err != nil {
					t.Fatalf("own token refused: %v", err)
				}
			})
		}
		t.Run("opaque client", func(t *testing.T) {
			token, sig, err := p.tokens.GenerateAccessToken(ctx, tokenRequest(AccessTokenOpaque, "u1"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(token, opaqueAccessTokenPrefix) || isJWT(token) || p.tokens.AccessTokenSignature(ctx, token) != sig {
				t.Fatal("an opaque client was not given an opaque token")
			}
		})
	})
}

// resign signs the claims of token again under header, for forgeries.
func resign(t *testing.T, token string, alg jose.SignatureAlgorithm, key any, opts *jose.SignerOptions) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(token)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJWTAccessTokenValidation(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		p := newTokenTestProvider(t, d, nil)
		ctx := context.Background()
		ar := tokenRequest(AccessTokenJWT, "u1")
		good, _, err := p.tokens.GenerateAccessToken(ctx, ar)
		if err != nil {
			t.Fatal(err)
		}
		active, err := p.keys.Active(ctx, signing.RS256)
		if err != nil {
			t.Fatal(err)
		}
		kid := active.ID
		typed := func() *jose.SignerOptions {
			return (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid)
		}
		pubDER, err := x509.MarshalPKIXPublicKey(active.Signer().Public())
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(good, ".")
		header, _ := base64.RawURLEncoding.DecodeString(parts[0])
		var h map[string]any
		json.Unmarshal(header, &h)
		h["alg"] = "none"
		noneHeader, _ := json.Marshal(h)
		expired := tokenRequest(AccessTokenJWT, "u1")
		expired.GetSession().SetExpiresAt(fosite.AccessToken, time.Now().Add(-time.Minute))
		expiredToken, _, err := p.tokens.GenerateAccessToken(ctx, expired)
		if err != nil {
			t.Fatal(err)
		}
		opaque, _, err := p.tokens.GenerateAccessToken(ctx, tokenRequest(AccessTokenOpaque, "u1"))
		if err != nil {
			t.Fatal(err)
		}

		for _, c := range []struct {
			name    string
			token   string
			req     fosite.Requester
			wantErr error
		}{
			{"valid", good, ar, nil},
			{"alg none", base64.RawURLEncoding.EncodeToString(noneHeader) + "." + parts[1] + ".", ar, fosite.ErrTokenSignatureMismatch},
			{"not a JWS", "a.b.c", ar, fosite.ErrInvalidTokenFormat},
			{"HS256 with the public key as secret", resign(t, good, jose.HS256, pubPEM, typed()), ar, fosite.ErrTokenSignatureMismatch},
			{"signed by another key under our kid", resign(t, good, jose.RS256, other, typed()), ar, fosite.ErrTokenSignatureMismatch},
			{"typ JWT (an ID token)", resign(t, good, jose.RS256, active.JSONWebKey(), nil), ar, fosite.ErrTokenSignatureMismatch},
			{"payload changed", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"someone else"}`)) + "." + parts[2], ar, fosite.ErrTokenSignatureMismatch},
			{"expired", expiredToken, expired, fosite.ErrTokenExpired},
			{"opaque token's MAC in a JWT shape", parts[0] + "." + parts[1] + "." + strings.Split(opaque, ".")[1], ar, fosite.ErrTokenSignatureMismatch},
		} {
			t.Run(c.name, func(t *testing.T) {
				err := p.tokens.ValidateAccessToken(ctx, c.req, c.token)
				if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
					t.Fatalf("got %v, want %v", err, c.wantErr)
				}
			})
		}
	})
}

func TestJWTAccessTokenStoredAndRevocable(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		p := newTokenTestProvider(t, d, nil)
		ctx := context.Background()
		c := &Client{ID: "app", Name: "App", RedirectURIs: []string{"https://app.example.org/cb"}, Scopes: []string{"openid", "profile"},
			AccessTokenFormat: AccessTokenJWT, TokenEndpointAuthMethod: AuthMethodSecretBasic, SecretHash: []byte("x")}
		c.ApplyDefaults()
		if err := p.store.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		ar := tokenRequest(AccessTokenJWT, "u1")
		ar.Client = fositeClient{c}
		token, sig, err := p.tokens.GenerateAccessToken(ctx, ar)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.storage.CreateAccessTokenSession(ctx, sig, ar.Sanitize(nil)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, newSession()); err != nil || got.GetClient().GetID() != "app" {
			t.Fatalf("stored jwt not accepted: %v", err)
		}
		if err := p.storage.RevokeAccessToken(ctx, ar.GetID()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, newSession()); err == nil {
			t.Fatal("revoked jwt still accepted")
		}
	})
}

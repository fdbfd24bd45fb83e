package main

// End-to-end tests of the token formats and client authentication: RFC 9068
// JWT access tokens next to opaque ones, private_key_jwt (RFC 7523) client
// authentication, and the requests a server must refuse.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/govsso/sso/db"
)

const (
	tokensPassword = "a long test passphrase"
	tokensCallback = "http://127.0.0.1:9/cb"
	assertionType  = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

func TestTokensEndToEnd(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel() // most of each run waits for a code to expire
			testTokens(t, dialect)
		})
	}
}

// accessClaims are the RFC 9068 claims the tests look at.
type accessClaims struct {
	jwt.Claims
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	AuthTime int64    `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
}

func testTokens(t *testing.T, dialect db.Dialect) {
	te := newTestEnv(t, dialect)
	// The shortest code lifetime the server accepts, so that the expired
	// code case waits as little as possible.
	te["SSO_AUTH_CODE_LIFETIME"] = "10s"
	if r := te.run(t, tokensPassword+"\n", "user", "create", "--username", "alice", "--password-stdin", "--name", "Alice", "--email", "alice@example.org"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	jwtSecret := createClient(t, te, "--id", "jwtapp", "--name", "JWT app", "--redirect-uri", tokensCallback,
		"--scope", "openid profile email offline_access", "--token-format", "jwt")
	opaqueSecret := createClient(t, te, "--id", "opaque", "--name", "Opaque app", "--redirect-uri", tokensCallback, "--scope", "openid profile")
	batchSecret := createClient(t, te, "--id", "jwtbatch", "--grant-type", "client_credentials", "--scope", "reports",
		"--audience", "https://reports.example.org", "--token-format", "jwt")
	pkKey, pkKid := newRSAKey(t), rand.Text()
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwksFile, &pkKey.PublicKey, pkKid)
	createClient(t, te, "--id", "pkjwt", "--name", "Key app", "--redirect-uri", tokensCallback, "--scope", "openid profile",
		"--auth-method", "private_key_jwt", "--jwks-file", jwksFile)
	issuer := startServer(t, te)
	ctx := context.Background()
	b := browser(t)

	jwtRP := newRP(t, issuer, "jwtapp", jwtSecret, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	jwtTok, jwtIDT := jwtRP.login(b, "alice", tokensPassword)
	// A code issued now and redeemed last, once it has expired.
	expiredVerifier := oauth2.GenerateVerifier()
	expiredCode := jwtRP.authorize(b, jwtRP.cfg.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(expiredVerifier)), "alice", tokensPassword).Get("code")
	expiredAt := time.Now().Add(11 * time.Second)
	opaqueRP := newRP(t, issuer, "opaque", opaqueSecret, oidc.ScopeOpenID, "profile")
	opaqueTok, _ := opaqueRP.login(b, "alice", tokensPassword)
	keys := fetchJWKS(t, issuer)

	t.Run("jwt access token verifies against the JWKS", func(t *testing.T) {
		c := verifyAccessToken(t, keys, jwtTok.AccessToken)
		if c.Issuer != issuer || c.Subject != jwtIDT.Subject || !slices.Equal([]string(c.Audience), []string{"jwtapp"}) || c.ClientID != "jwtapp" {
			t.Fatalf("claims: %+v", c)
		}
		if c.Scope != "openid profile offline_access" || c.ID == "" || c.IssuedAt == nil || c.Expiry == nil || !c.Expiry.Time().After(c.IssuedAt.Time()) {
			t.Fatalf("claims: %+v", c)
		}
		if c.AuthTime == 0 || c.ACR != "1" || !slices.Contains(c.AMR, "pwd") {
			t.Fatalf("authentication claims: %+v", c)
		}
		if !strings.HasPrefix(jwtTok.RefreshToken, "ory_rt_") {
			t.Fatal("the refresh token of a jwt client is not opaque")
		}
	})

	t.Run("opaque client keeps opaque tokens", func(t *testing.T) {
		if !strings.HasPrefix(opaqueTok.AccessToken, "ory_at_") || strings.Count(opaqueTok.AccessToken, ".") != 1 {
			t.Fatal("the opaque client was given a token that is not opaque")
		}
	})

	t.Run("userinfo and introspection accept both formats", func(t *testing.T) {
		for _, c := range []struct {
			name, token, id, secret string
		}{{"jwt", jwtTok.AccessToken, "jwtapp", jwtSecret}, {"opaque", opaqueTok.AccessToken, "opaque", opaqueSecret}} {
			if status, claims := userinfo(t, issuer, c.token); status != http.StatusOK || claims["sub"] != jwtIDT.Subject {
				t.Fatalf("%s: userinfo %d %v", c.name, status, claims)
			}
			if got := jwtRP.introspect(c.id, c.secret, c.token); got["active"] != true || got["client_id"] != c.id {
				t.Fatalf("%s: introspection %v", c.name, got)
			}
		}
	})

	t.Run("refresh gives a jwt client a new jwt", func(t *testing.T) {
		fresh, err := jwtRP.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: jwtTok.RefreshToken}).Token()
		if err != nil {
			t.Fatal(err)
		}
		if c := verifyAccessToken(t, keys, fresh.AccessToken); c.Subject != jwtIDT.Subject || c.ID == "" {
			t.Fatalf("claims: %+v", c)
		}
		jwtTok = fresh
	})

	t.Run("client credentials jwt names the client and the audience", func(t *testing.T) {
		status, resp := postToken(t, issuer, url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"},
			"audience": {"https://reports.example.org"}}, "jwtbatch", batchSecret)
		token, _ := resp["access_token"].(string)
		if status != http.StatusOK || token == "" {
			t.Fatalf("%d %v", status, resp)
		}
		c := verifyAccessToken(t, keys, token)
		if c.Subject != "jwtbatch" || c.ClientID != "jwtbatch" || !slices.Equal([]string(c.Audience), []string{"https://reports.example.org"}) || c.Scope != "reports" {
			t.Fatalf("claims: %+v", c)
		}
		if c.AuthTime != 0 || c.ACR != "" || c.AMR != nil {
			t.Fatalf("a client token carries a person's authentication: %+v", c)
		}
	})

	t.Run("revoking a jwt access token makes it inactive", func(t *testing.T) {
		tok, _ := jwtRP.login(b, "alice", tokensPassword)
		revoke(t, issuer, "jwtapp", jwtSecret, tok.AccessToken)
		if got := jwtRP.introspect("jwtapp", jwtSecret, tok.AccessToken); got["active"] != false {
			t.Fatalf("revoked jwt still active: %v", got)
		}
		if status, _ := userinfo(t, issuer, tok.AccessToken); status != http.StatusUnauthorized {
			t.Fatalf("userinfo took a revoked jwt: %d", status)
		}
		// The signature still verifies: only the server knows it was revoked.
		verifyAccessToken(t, keys, tok.AccessToken)
	})

	pk := newRP(t, issuer, "pkjwt", "", oidc.ScopeOpenID, "profile")
	pk.cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	tokenURL := issuer + "/oauth2/token"
	pkCode := func(t *testing.T) string {
		q := pk.authorize(b, pk.cfg.AuthCodeURL(rand.Text(), oidc.Nonce(rand.Text())), "alice", tokensPassword)
		if q.Get("code") == "" {
			t.Fatalf("no code: %v", q)
		}
		return q.Get("code")
	}
	exchange := func(code, assertion string) (*oauth2.Token, error) {
		return pk.cfg.Exchange(ctx, code, oauth2.SetAuthURLParam("client_assertion_type", assertionType),
			oauth2.SetAuthURLParam("client_assertion", assertion))
	}

	t.Run("private_key_jwt", func(t *testing.T) {
		assertion := clientAssertion(t, pkKey, pkKid, "pkjwt", tokenURL)
		tok, err := exchange(pkCode(t), assertion)
		if err != nil {
			t.Fatalf("exchange with a client assertion: %v", err)
		}
		if _, err := pk.provider.Verifier(&oidc.Config{ClientID: "pkjwt"}).Verify(ctx, tok.Extra("id_token").(string)); err != nil {
			t.Fatalf("id token: %v", err)
		}
		if _, err := exchange(pkCode(t), assertion); !isOAuthError(err) {
			t.Fatalf("a replayed assertion (same jti) was accepted: %v", err)
		}
		forged := clientAssertion(t, newRSAKey(t), pkKid, "pkjwt", tokenURL)
		if _, err := exchange(pkCode(t), forged); !isOAuthError(err) {
			t.Fatalf("an assertion signed by another key was accepted: %v", err)
		}
		if _, err := exchange(pkCode(t), clientAssertion(t, pkKey, pkKid, "pkjwt", issuer)); !isOAuthError(err) {
			t.Fatalf("an assertion for another audience was accepted: %v", err)
		}
	})

	// Forged access tokens copy a real one's claims and kid.
	sample, err := jwt.ParseSigned(jwtTok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	var realClaims map[string]any
	if err := sample.UnsafeClaimsWithoutVerification(&realClaims); err != nil {
		t.Fatal(err)
	}
	kid := sample.Headers[0].KeyID
	refuseForged := func(t *testing.T, forged string) {
		if status, _ := userinfo(t, issuer, forged); status != http.StatusUnauthorized {
			t.Fatalf("userinfo answered %d to a forged token", status)
		}
		if got := jwtRP.introspect("jwtapp", jwtSecret, forged); got["active"] != false {
			t.Fatalf("introspection of a forged token: %v", got)
		}
	}

	for _, c := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"scope widened on refresh", func(t *testing.T) {
			status, resp := postToken(t, issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {jwtTok.RefreshToken},
				"scope": {"openid profile email"}}, "jwtapp", jwtSecret)
			if status != http.StatusBadRequest || resp["error"] != "invalid_scope" {
				t.Fatalf("widened refresh answered %d %v", status, resp["error"])
			}
		}},
		{"scope narrowed on refresh: the access token narrows, the grant does not", func(t *testing.T) {
			status, resp := postToken(t, issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {jwtTok.RefreshToken},
				"scope": {"openid"}}, "jwtapp", jwtSecret)
			if status != http.StatusOK || resp["scope"] != "openid" {
				t.Fatalf("narrowed refresh: %d scope %v", status, resp["scope"])
			}
			if c := verifyAccessToken(t, keys, resp["access_token"].(string)); c.Scope != "openid" {
				t.Fatalf("narrowed access token has scope %q", c.Scope)
			}
			status, resp = postToken(t, issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {resp["refresh_token"].(string)}},
				"jwtapp", jwtSecret)
			if status != http.StatusOK || resp["scope"] != "openid profile offline_access" {
				t.Fatalf("the next refresh without scope: %d scope %v, want the grant's full scopes", status, resp["scope"])
			}
		}},
		{"access token with alg none", func(t *testing.T) {
			refuseForged(t, unsignedJWT(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, realClaims))
		}},
		{"access token signed HS256 with the public key as secret", func(t *testing.T) {
			pub, err := x509.MarshalPKIXPublicKey(keys.Key(kid)[0].Key)
			if err != nil {
				t.Fatal(err)
			}
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
				(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
			if err != nil {
				t.Fatal(err)
			}
			forged, err := jwt.Signed(signer).Claims(realClaims).CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			refuseForged(t, forged)
		}},
		{"request object with alg none", func(t *testing.T) {
			// pkjwt has keys, so fosite reaches the algorithm check.
			object := unsignedJWT(t, map[string]any{"alg": "none"}, map[string]any{
				"iss": "pkjwt", "aud": issuer, "client_id": "pkjwt", "response_type": "code", "scope": "openid profile",
				"redirect_uri": tokensCallback, "state": rand.Text(), "nonce": rand.Text()})
			authURL := pk.cfg.AuthCodeURL(rand.Text(), oidc.Nonce(rand.Text()), oauth2.SetAuthURLParam("request", object))
			resp, err := b.Get(authURL)
			if err != nil {
				t.Fatal(err)
			}
			page := body(t, resp)
			loc, _ := resp.Location()
			// fosite refuses before it has checked the redirect URI, so the
			// error is shown to the person rather than sent to the client.
			if loc != nil && strings.HasPrefix(loc.Path, "/cb") {
				if q := loc.Query(); q.Get("code") != "" || q.Get("error") != "invalid_request_object" {
					t.Fatalf("request object with alg none: %v", q)
				}
			} else if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "invalid_request_object") {
				t.Fatalf("request object with alg none: %d %.300s", resp.StatusCode, page)
			}
		}},
		{"expired authorization code", func(t *testing.T) {
			time.Sleep(time.Until(expiredAt)) // the code lifetime is 10 s, the least the server allows
			_, err := jwtRP.cfg.Exchange(ctx, expiredCode, oauth2.VerifierOption(expiredVerifier))
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("expired code: %v", err)
			}
		}},
	} {
		t.Run(c.name, c.run)
	}
}

// isOAuthError reports whether err is an error response of the token endpoint.
func isOAuthError(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeJWKS writes the public key set a client registers.
func writeJWKS(t *testing.T, path string, pub *rsa.PublicKey, kid string) {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: "RS256", Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientAssertion is an RFC 7523 client authentication JWT with a fresh jti.
func clientAssertion(t *testing.T, key *rsa.PrivateKey, kid, clientID, aud string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud}, ID: rand.Text(),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedJWT is header.claims. with no signature.
func unsignedJWT(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func fetchJWKS(t *testing.T, issuer string) *jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body(t, resp)), &set); err != nil {
		t.Fatal(err)
	}
	return &set
}

// verifyAccessToken checks an RFC 9068 token as a resource server would:
// RS256 by a key of the JWKS, typ at+jwt, not expired.
func verifyAccessToken(t *testing.T, keys *jose.JSONWebKeySet, token string) accessClaims {
	t.Helper()
	parsed, err := jwt.ParseSigned(token)
	if err != nil {
		t.Fatalf("access token is not a JWS: %v", err)
	}
	h := parsed.Headers[0]
	if h.Algorithm != "RS256" || h.ExtraHeaders[jose.HeaderType] != "at+jwt" || h.KeyID == "" {
		t.Fatalf("header: alg %s typ %v kid %q", h.Algorithm, h.ExtraHeaders[jose.HeaderType], h.KeyID)
	}
	found := keys.Key(h.KeyID)
	if len(found) != 1 {
		t.Fatalf("kid %s is not in the JWKS", h.KeyID)
	}
	var c accessClaims
	if err := parsed.Claims(found[0].Key, &c); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, 0); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return c
}

func userinfo(t *testing.T, issuer, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal([]byte(body(t, resp)), &out)
	return resp.StatusCode, out
}

func postToken(t *testing.T, issuer string, form url.Values, id, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal([]byte(body(t, resp)), &out)
	return resp.StatusCode, out
}

func revoke(t *testing.T, issuer, id, secret, token string) {
	t.Helper()
	req, _ := http.NewRequest("POST", issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body(t, resp))
	}
	resp.Body.Close()
}

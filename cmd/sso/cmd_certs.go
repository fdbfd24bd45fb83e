package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/govsso/sso/certs"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/ratelimit"
	"github.com/govsso/sso/users"
)

// certService builds the SM2 certificate authority over the app's database.
func certService(a *app) (*certs.Service, error) {
	// Public verification: SSO_VERIFY_RATE_LIMIT requests a minute per
	// address (a counter serving many citizens behind one NAT), then a
	// minute's wait; in Redis when SSO_REDIS_URL is set.
	limiter, err := a.limits.Limiter("certs_verify", ratelimit.Policy{Limit: a.cfg.VerifyRateLimit, Window: time.Minute})
	if err != nil {
		return nil, err
	}
	return certs.New(a.db, a.kek, certs.Config{BaseURL: a.cfg.Issuer, Audit: a.audit, Logger: a.log, VerifyLimiter: limiter})
}

// registerCerts serves the CRL, the verification endpoint and the licence
// API, whose department clients authenticate with the provider's tokens.
func registerCerts(mux *http.ServeMux, a *app, provider *oauth.Provider) error {
	s, err := certService(a)
	if err != nil {
		return err
	}
	s.Register(mux)
	certs.NewLicences(s, a.kek, certs.LicenceConfig{Authenticate: bearerClient(provider),
		AuthenticatePerson: bearerPerson(provider), ResolveSubject: provider.UserForSubject, Users: a.users,
		Enterprises: users.NewEnterprises(a.db, a.users), ActingFor: bearerActingFor(provider)}).Register(mux)
	return nil
}

// bearerClient reads the request's Bearer access token and says which
// client holds it and with which scopes.
func bearerClient(provider *oauth.Provider) func(r *http.Request) (string, []string, error) {
	return func(r *http.Request) (string, []string, error) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", nil, errors.New("no bearer token")
		}
		clientID, _, scopes, err := provider.IntrospectAccessToken(r.Context(), strings.TrimSpace(token))
		return clientID, scopes, err
	}
}

// bearerPerson is bearerClient that also says which account the token
// was issued for ("" for a client_credentials token).
func bearerPerson(provider *oauth.Provider) func(r *http.Request) (string, string, []string, error) {
	return func(r *http.Request) (string, string, []string, error) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", "", nil, errors.New("no bearer token")
		}
		return provider.IntrospectAccessToken(r.Context(), strings.TrimSpace(token))
	}
}

// bearerActingFor says which enterprise the request's access token was
// issued to act for, "" when none.
func bearerActingFor(provider *oauth.Provider) func(r *http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		return provider.AccessTokenActingFor(r.Context(), strings.TrimSpace(token))
	}
}

func runCertsInit(ctx context.Context, e env, args []string) error {
	f := newFlags("certs init", e)
	name := f.String("name", "sso", "name of the certificate authority (organisation and CN prefix)")
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := certService(a)
	if err != nil {
		return err
	}
	ca, err := s.Init(ctx, *name)
	if errors.Is(err, certs.ErrCAExists) {
		if ca != nil {
			printCA(e, *f.json, ca)
		}
		return fmt.Errorf("the certificate authority above already exists; nothing was changed")
	}
	if err != nil {
		return err
	}
	return printCA(e, *f.json, ca)
}

func runCertsImport(ctx context.Context, e env, args []string) error {
	f := newFlags("certs import", e)
	rootFile := f.String("root-cert", "", "PEM file of the root CA certificate")
	caFile := f.String("ca-cert", "", "PEM file of the issuing CA certificate, signed by the root")
	keyFile := f.String("ca-key", "", "PEM file of the issuing CA's unencrypted SM2 private key")
	if err := f.parse(args); err != nil {
		return err
	}
	if *rootFile == "" || *caFile == "" || *keyFile == "" {
		return usageError{msg: "--root-cert, --ca-cert and --ca-key are required"}
	}
	var pems [3][]byte
	for i, p := range []string{*rootFile, *caFile, *keyFile} {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		pems[i] = b
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := certService(a)
	if err != nil {
		return err
	}
	ca, err := s.Import(ctx, pems[0], pems[1], pems[2])
	if errors.Is(err, certs.ErrCAExists) {
		if ca != nil {
			printCA(e, *f.json, ca)
		}
		return fmt.Errorf("the certificate authority above already exists; nothing was changed")
	}
	if err != nil {
		return err
	}
	return printCA(e, *f.json, ca)
}

func printCA(e env, asJSON bool, ca *certs.CA) error {
	list := []*certs.Certificate{ca.Root, ca.Issuer}
	return printCerts(e, asJSON, list)
}

func printCerts(e env, asJSON bool, list []*certs.Certificate) error {
	return output(e.stdout, asJSON, list, []string{"ID", "KIND", "SERIAL", "SUBJECT", "NOT AFTER", "STATUS"}, func() [][]string {
		var rows [][]string
		for _, c := range list {
			rows = append(rows, []string{c.ID, string(c.Kind), c.Serial, c.Subject, formatTime(c.NotAfter), string(c.Status)})
		}
		return rows
	})
}

func runCertsList(ctx context.Context, e env, args []string) error {
	f := newFlags("certs list", e)
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := certService(a)
	if err != nil {
		return err
	}
	list, err := s.List(ctx)
	if err != nil {
		return err
	}
	return printCerts(e, *f.json, list)
}

func runCertsPEM(ctx context.Context, e env, args []string) error {
	f := newFlags("certs pem", e)
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return usageError{msg: "usage: sso certs pem <certificate id>"}
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := certService(a)
	if err != nil {
		return err
	}
	c, err := s.Get(ctx, f.args[0])
	if err != nil {
		return fmt.Errorf("certificate %s: %w", f.args[0], err)
	}
	_, err = e.stdout.Write(certs.PEM(c.DER))
	return err
}

func runCertsRevoke(ctx context.Context, e env, args []string) error {
	f := newFlags("certs revoke", e)
	reason := f.Int("reason", certs.ReasonUnspecified, "RFC 5280 CRLReason code (1 key compromise, 3 affiliation changed, 4 superseded, 5 cessation of operation)")
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return usageError{msg: "usage: sso certs revoke <serial in hex> [--reason N]"}
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := certService(a)
	if err != nil {
		return err
	}
	if err := s.Revoke(ctx, f.args[0], *reason); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %s (reason %s); the CRL was republished\n", f.args[0], strconv.Itoa(*reason))
	return nil
}

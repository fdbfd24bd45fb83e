package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/webhooks"
)

// listFlag collects a flag given several times; values may also be separated
// by spaces (as OAuth scopes are) when split is set.
type listFlag struct {
	values *[]string
	split  bool
}

func (l listFlag) String() string {
	if l.values == nil {
		return ""
	}
	return strings.Join(*l.values, " ")
}

func (l listFlag) Set(v string) error {
	if l.split {
		*l.values = append(*l.values, strings.Fields(v)...)
	} else {
		*l.values = append(*l.values, v)
	}
	return nil
}

func runClientCreate(ctx context.Context, e env, args []string) error {
	f := newFlags("client create", e)
	c := &oauth.Client{}
	f.StringVar(&c.ID, "id", "", "client_id (required)")
	f.StringVar(&c.Name, "name", "", "name shown to people on the consent page")
	secretStdin := f.Bool("secret-stdin", false, "read the client secret from standard input; otherwise one is generated and printed once")
	f.Var(listFlag{values: &c.RedirectURIs}, "redirect-uri", "redirect URI (repeat for several)")
	f.Var(listFlag{values: &c.GrantTypes, split: true}, "grant-type", "grant type: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code (repeat for several)")
	f.Var(listFlag{values: &c.Scopes, split: true}, "scope", "scope the client may ask for (repeat, or space-separated)")
	f.Var(listFlag{values: &c.Audience, split: true}, "audience", "audience the client may ask for (repeat for several)")
	f.BoolVar(&c.Public, "public", false, "public client (mobile or single-page app): no secret, PKCE required")
	f.StringVar(&c.TokenEndpointAuthMethod, "auth-method", "", "client_secret_basic, client_secret_post, private_key_jwt or none")
	f.Var(listFlag{values: &c.PostLogoutRedirectURIs}, "post-logout-redirect-uri", "where RP-initiated logout may return (repeat for several)")
	f.StringVar(&c.BackchannelLogoutURI, "backchannel-logout-uri", "", "URL that receives back-channel logout tokens")
	f.StringVar(&c.FrontchannelLogoutURI, "frontchannel-logout-uri", "", "URL loaded in a hidden frame at logout")
	f.StringVar(&c.JWKSURI, "jwks-uri", "", "URL of the client's public keys (private_key_jwt)")
	jwksFile := f.String("jwks-file", "", "file with the client's public JWK set (private_key_jwt)")
	logoFile := f.String("logo-file", "", "PNG or JPEG logo (at most 32 KiB) shown on the sign-in and consent pages")
	f.BoolVar(&c.FirstParty, "first-party", false, "the city's own application: no consent page")
	f.StringVar(&c.AccessTokenFormat, "token-format", "", "access token format: opaque (default) or jwt")
	f.StringVar(&c.IDTokenSignedResponseAlg, "id-token-alg", "", "ID token signature: RS256 (default) or ES256")
	f.StringVar(&c.SubjectType, "subject-type", "", "public (default) or pairwise")
	f.StringVar(&c.SectorIdentifierURI, "sector-identifier-uri", "", "sector of pairwise subjects")
	f.BoolVar(&c.RequirePKCE, "require-pkce", false, "require PKCE even for this confidential client")
	f.BoolVar(&c.RequirePAR, "require-par", false, "require pushed authorization requests")
	f.BoolVar(&c.AllowIntrospection, "allow-introspection", false, "may introspect tokens issued to other clients")
	if err := f.parse(args); err != nil {
		return err
	}
	if c.ID == "" {
		return usageError{msg: "--id is required"}
	}
	if len(f.args) > 0 {
		return usageError{msg: fmt.Sprintf("unexpected argument %q", f.args[0])}
	}
	if *jwksFile != "" {
		b, err := os.ReadFile(*jwksFile)
		if err != nil {
			return fmt.Errorf("--jwks-file: %w", err)
		}
		if !json.Valid(b) {
			return fmt.Errorf("--jwks-file: %s is not JSON", *jwksFile)
		}
		c.JWKS = json.RawMessage(b)
	}
	if *logoFile != "" {
		b, err := os.ReadFile(*logoFile)
		if err != nil {
			return fmt.Errorf("--logo-file: %w", err)
		}
		if c.LogoURI, err = oauth.LogoDataURI(b); err != nil {
			return fmt.Errorf("--logo-file: %w", err)
		}
	}
	c.ApplyDefaults()
	var secret string
	needsSecret := !c.Public && c.TokenEndpointAuthMethod != "private_key_jwt"
	if *secretStdin {
		if !needsSecret {
			return usageError{msg: "--secret-stdin: this client authenticates without a secret"}
		}
		s, err := readSecretLine(e.stdin)
		if err != nil {
			return fmt.Errorf("read secret: %w", err)
		}
		if len(s) < 32 {
			return fmt.Errorf("client secret must be at least 32 characters; omit --secret-stdin to have one generated")
		}
		secret = s
	} else if needsSecret {
		s, err := oauth.GenerateSecret()
		if err != nil {
			return err
		}
		secret = s
	}
	if err := c.Validate(); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	if secret != "" {
		c.SecretHash = a.secrets.Hash(secret)
	}
	err = a.db.InTx(ctx, func(ctx context.Context) error {
		if err := a.oauth.CreateClient(ctx, c); err != nil {
			return err
		}
		_, err := a.audit.Append(ctx, audit.Event{Actor: "cli", ClientID: c.ID, Action: audit.ActionClientCreate, Result: audit.ResultSuccess})
		return err
	})
	if err != nil {
		return err
	}
	shown := ""
	if secret != "" && !*secretStdin {
		shown = secret
	}
	if *f.json {
		return printJSON(e.stdout, struct {
			*oauth.Client
			Secret string `json:"client_secret,omitempty"`
		}{c, shown})
	}
	if err := printClients(e, false, []*oauth.Client{c}); err != nil {
		return err
	}
	if shown != "" {
		fmt.Fprintf(e.stdout, "\nclient_secret: %s\nIt is shown only now; store it in the client's configuration.\n", shown)
	}
	return nil
}

func runClientList(ctx context.Context, e env, args []string) error {
	f := newFlags("client list", e)
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	list, err := a.oauth.ListClients(ctx)
	if err != nil {
		return err
	}
	return printClients(e, *f.json, list)
}

func printClients(e env, asJSON bool, list []*oauth.Client) error {
	return output(e.stdout, asJSON, list, []string{"ID", "NAME", "PUBLIC", "AUTH METHOD", "GRANT TYPES", "REDIRECT URIS", "SCOPES"}, func() [][]string {
		var rows [][]string
		for _, c := range list {
			rows = append(rows, []string{c.ID, orDash(c.Name), strconv.FormatBool(c.Public), c.TokenEndpointAuthMethod,
				strings.Join(c.GrantTypes, ","), orDash(strings.Join(c.RedirectURIs, ",")), strings.Join(c.Scopes, " ")})
		}
		return rows
	})
}

func runClientDelete(ctx context.Context, e env, args []string) error {
	f := newFlags("client delete", e)
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return usageError{msg: "give exactly one client id"}
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	id := f.args[0]
	err = a.db.InTx(ctx, func(ctx context.Context) error {
		if err := a.oauth.DeleteClient(ctx, id); err != nil {
			return err
		}
		if err := webhooks.NewHub(a.db, a.kek).UnsubscribeClient(ctx, id); err != nil {
			return err
		}
		_, err := a.audit.Append(ctx, audit.Event{Actor: "cli", ClientID: id, Action: audit.ActionClientDelete, Result: audit.ResultSuccess})
		return err
	})
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(e.stdout, map[string]string{"deleted": id})
	}
	fmt.Fprintf(e.stdout, "deleted client %s\n", id)
	return nil
}

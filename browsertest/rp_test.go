package browsertest

import (
	"context"
	"crypto/rand"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// relyingParty is a department system under test's control: /start?client=
// sends the browser to sign in (code flow with PKCE), /cb exchanges the
// code, checks the ID token and shows who signed in.
type relyingParty struct {
	url, issuer string
	srv         *httptest.Server
	secrets     map[string]string // client secrets by client ID, set before use

	mu       sync.Mutex
	provider *oidc.Provider
	pending  map[string]pendingAuth // by state
}

type pendingAuth struct{ client, verifier, nonce string }

func newRelyingParty(issuer string) *relyingParty {
	rp := &relyingParty{issuer: issuer, secrets: map[string]string{}, pending: map[string]pendingAuth{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /start", rp.start)
	mux.HandleFunc("GET /cb", rp.callback)
	rp.srv = httptest.NewServer(mux)
	rp.url = rp.srv.URL
	return rp
}

func (rp *relyingParty) close() { rp.srv.Close() }

// config is the OAuth configuration of one client, discovering the
// provider on first use (the server starts after the relying party).
func (rp *relyingParty) config(ctx context.Context, client string) (*oauth2.Config, *oidc.Provider, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.provider == nil {
		p, err := oidc.NewProvider(ctx, rp.issuer)
		if err != nil {
			return nil, nil, err
		}
		rp.provider = p
	}
	return &oauth2.Config{
		ClientID: client, ClientSecret: rp.secrets[client], Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.url + "/cb", Scopes: []string{oidc.ScopeOpenID, "profile"},
	}, rp.provider, nil
}

func (rp *relyingParty) start(w http.ResponseWriter, r *http.Request) {
	client := r.URL.Query().Get("client")
	cfg, _, err := rp.config(r.Context(), client)
	if err != nil {
		rp.show(w, http.StatusBadGateway, rpPage{Error: err.Error()})
		return
	}
	state, a := rand.Text(), pendingAuth{client: client, verifier: oauth2.GenerateVerifier(), nonce: rand.Text()}
	rp.mu.Lock()
	rp.pending[state] = a
	rp.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier)}
	if l := r.URL.Query().Get("ui_locales"); l != "" {
		opts = append(opts, oauth2.SetAuthURLParam("ui_locales", l))
	}
	http.Redirect(w, r, cfg.AuthCodeURL(state, opts...), http.StatusFound)
}

func (rp *relyingParty) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rp.mu.Lock()
	a, ok := rp.pending[q.Get("state")]
	delete(rp.pending, q.Get("state"))
	rp.mu.Unlock()
	if !ok || q.Get("code") == "" {
		rp.show(w, http.StatusBadRequest, rpPage{Error: "unknown state or no code: " + q.Get("error")})
		return
	}
	cfg, provider, err := rp.config(r.Context(), a.client)
	if err != nil {
		rp.show(w, http.StatusBadGateway, rpPage{Error: err.Error()})
		return
	}
	tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		rp.show(w, http.StatusBadGateway, rpPage{Error: "exchange: " + err.Error()})
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: a.client}).Verify(r.Context(), raw)
	if err != nil || idt.Nonce != a.nonce {
		rp.show(w, http.StatusBadGateway, rpPage{Error: "id token refused"})
		return
	}
	var claims struct {
		Name string   `json:"name"`
		AMR  []string `json:"amr"`
		ACR  string   `json:"acr"`
	}
	idt.Claims(&claims)
	// The name comes from userinfo, as most department systems read it.
	info, err := provider.UserInfo(r.Context(), oauth2.StaticTokenSource(tok))
	if err != nil {
		rp.show(w, http.StatusBadGateway, rpPage{Error: "userinfo: " + err.Error()})
		return
	}
	info.Claims(&claims)
	rp.show(w, http.StatusOK, rpPage{Name: claims.Name, AMR: strings.Join(claims.AMR, " "), ACR: claims.ACR})
}

// rpPage is what the relying party shows.
type rpPage struct {
	Name, AMR, ACR, Error string
}

var rpTemplate = template.Must(template.New("rp").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test department system</title></head>
<body><main><h1>Test department system</h1>
{{if .Error}}<p id="error">{{.Error}}</p>{{else}}<p id="welcome">Signed in as {{.Name}}</p>
<p id="amr">amr: {{.AMR}}</p><p id="acr">acr: {{.ACR}}</p>{{end}}
</main></body></html>`))

func (rp *relyingParty) show(w http.ResponseWriter, status int, p rpPage) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	rpTemplate.Execute(w, p)
}

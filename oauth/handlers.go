package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// Register adds the provider's endpoints to mux.
func (p *Provider) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /oauth2/auth", p.authorize)
	mux.HandleFunc("POST /oauth2/auth", p.authorize)
	mux.HandleFunc("POST /oauth2/token", p.token)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	mux.HandleFunc("POST /userinfo", p.userinfo)
	mux.HandleFunc("POST /oauth2/introspect", p.introspect)
	mux.HandleFunc("POST /oauth2/revoke", p.revoke)
	mux.HandleFunc("POST /oauth2/par", p.par)
	mux.HandleFunc("POST /oauth2/device/authorize", p.deviceAuthorize)
	p.registerLogout(mux)
}

// Scopes this server knows; clients may only be given these.
var supportedScopes = []string{"openid", "profile", "email", "phone", "offline_access", "realname"}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	iss := p.cfg.Issuer
	w.Header().Set("Cache-Control", "public, max-age=3600")
	server.WriteJSON(w, http.StatusOK, map[string]any{
		"issuer":                                           iss,
		"authorization_endpoint":                           iss + "/oauth2/auth",
		"token_endpoint":                                   iss + "/oauth2/token",
		"userinfo_endpoint":                                iss + "/userinfo",
		"jwks_uri":                                         iss + "/.well-known/jwks.json",
		"introspection_endpoint":                           iss + "/oauth2/introspect",
		"revocation_endpoint":                              iss + "/oauth2/revoke",
		"pushed_authorization_request_endpoint":            iss + "/oauth2/par",
		"device_authorization_endpoint":                    iss + "/oauth2/device/authorize",
		"scopes_supported":                                 supportedScopes,
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"grant_types_supported":                            []string{"authorization_code", "refresh_token", "client_credentials", GrantDeviceCode},
		"subject_types_supported":                          []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported":            []string{"RS256", "ES256"},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256"},
		"introspection_endpoint_auth_methods_supported":    []string{"client_secret_basic"},
		"revocation_endpoint_auth_methods_supported":       []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash",
			"name", "preferred_username", "updated_at", "email", "email_verified", "phone_number", "phone_number_verified", "assurance_level", "acting_for"},
		"acr_values_supported":                  []string{"1", "2", "3"},
		"prompt_values_supported":               []string{"none", "login", "consent", "select_account"},
		"ui_locales_supported":                  []string{"zh-CN", "en"},
		"claims_parameter_supported":            false,
		"request_parameter_supported":           false,
		"request_uri_parameter_supported":       false,
		"require_pushed_authorization_requests": false,
		"end_session_endpoint":                  iss + "/oauth2/logout",
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"frontchannel_logout_supported":         true,
		"frontchannel_logout_session_supported": true,
	})
}

// errorPage shows an authorization error to the person when it must not be
// sent to the client (its redirect URI is unknown or invalid).
var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>无法登录 / Cannot sign in</title></head>
<body><main><h1>无法继续登录 / Cannot continue to sign in</h1>
<p>{{.}}</p>
<p>请返回您来自的应用并重试；如果问题持续，请联系该应用的管理员。<br>
Go back to the application you came from and try again; if it keeps happening, contact that application's administrator.</p>
</main></body></html>`))

func (p *Provider) writeAuthorizeError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	err = authorizeErr(err)
	if errors.Is(err, fosite.ErrTemporarilyUnavailable) {
		w.Header().Set("Retry-After", "5")
	}
	if ar == nil || !ar.IsRedirectURIValid() {
		rfc := fosite.ErrorToRFC6749Error(err)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(rfc.CodeField)
		errorPage.Execute(w, rfc.ErrorField+": "+rfc.GetDescription())
		return
	}
	p.oauth.WriteAuthorizeError(ctx, w, ar, err)
}

// authorizeErr makes a database that cannot be reached the authorization
// endpoint's temporarily_unavailable (RFC 6749 4.1.2.1), so that the client
// tries again instead of taking it for a server fault or, worse, a refusal.
func authorizeErr(err error) error {
	if errors.Is(err, db.ErrUnavailable) && !errors.Is(err, fosite.ErrTemporarilyUnavailable) {
		return fosite.ErrTemporarilyUnavailable.WithWrap(err)
	}
	return err
}

// authorize runs the authorization endpoint: it checks the request, sends the
// person to sign in or to consent when needed, and issues the code.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if err != nil {
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	client := ar.GetClient().(fositeClient).Client
	form := ar.GetRequestForm()
	if err := checkClientPolicy(client, ar, false); err != nil {
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	if form.Get("consent") == "denied" {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The person declined to share their information."))
		return
	}
	prompts := strings.Fields(form.Get("prompt"))
	if slices.Contains(prompts, "none") && len(prompts) > 1 {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values."))
		return
	}

	bs, err := p.sessions(r)
	if errors.Is(err, db.ErrUnavailable) { // not "no one is signed in"
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	if reason := p.needsLogin(bs, form, prompts); reason != "" {
		if slices.Contains(prompts, "none") {
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint(reason))
			return
		}
		p.redirectToPage(ctx, w, r, ar, "/login", true)
		return
	}
	user, err := p.users.Get(ctx, bs.UserID)
	if errors.Is(err, db.ErrUnavailable) { // not "the account is not active"
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	if err != nil || user.Status != users.StatusActive {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint("The account is not active."))
		return
	}
	if need := requiredLevel(form.Get("acr_values")); need > bs.ACR {
		// The session is below the level asked for. Signing in again helps
		// only if the account has reached that level since; otherwise the
		// client is told, never given a lower level silently.
		if user.AssuranceLevel >= need && !slices.Contains(prompts, "none") {
			p.redirectToPage(ctx, w, r, ar, "/login", true)
			return
		}
		if need == 2 && p.cfg.IdentityVerification && !slices.Contains(prompts, "none") {
			// Level 2 is one form away: name and ID number checked with the
			// population register, then back here with the session raised.
			p.redirectToPage(ctx, w, r, ar, "/account/verify", false)
			return
		}
		p.writeAuthorizeError(ctx, w, ar, errUnmetAuthenticationRequirements.WithHintf(
			"The account has not reached assurance level %d; the person must raise it first (for example by verifying their identity).", need))
		return
	}

	scopes := ar.GetRequestedScopes()
	if !client.FirstParty {
		ok := false
		if !slices.Contains(prompts, "consent") {
			if ok, err = p.store.UseConsent(ctx, user.ID, client.ID, scopes); err != nil {
				p.writeAuthorizeError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
				return
			}
		}
		if !ok {
			if slices.Contains(prompts, "none") {
				p.writeAuthorizeError(ctx, w, ar, fosite.ErrConsentRequired)
				return
			}
			p.redirectToPage(ctx, w, r, ar, "/consent", false)
			return
		}
	}
	for _, s := range scopes {
		ar.GrantScope(s)
	}
	for _, a := range ar.GetRequestedAudience() {
		ar.GrantAudience(a)
	}
	session := newIDSession(p.subjectFor(client, user.ID), user.ID, bs, client.ID, p.cfg.Issuer)
	session.Claims.Nonce = form.Get("nonce")
	// The code, its OpenID Connect request and its PKCE challenge: one INSERT.
	batchCtx, batch := withTokenBatch(ctx)
	resp, err := p.oauth.NewAuthorizeResponse(batchCtx, ar, session)
	if err == nil {
		err = batch.flushCreates(ctx, p.store)
	}
	if err != nil {
		// The redirect carries temporarily_unavailable (with Retry-After)
		// when the database is out, so that the client can tell its user.
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	p.record(ctx, r, audit.Event{Actor: user.ID, Subject: user.ID, ClientID: client.ID, Action: "oauth.authorize", Result: audit.ResultSuccess,
		Details: map[string]string{"scope": strings.Join(scopes, " ")}})
	p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// checkClientPolicy applies what fosite leaves to the server: PKCE and PAR
// required per client, and only the code flow. pushing is set at the PAR
// endpoint, where the request cannot have been pushed yet.
func checkClientPolicy(c *Client, ar fosite.AuthorizeRequester, pushing bool) error {
	form := ar.GetRequestForm()
	if form.Get("request") != "" {
		// Discovery says request objects are not offered; fosite would
		// still take a signed one from a client with keys.
		return fosite.ErrRequestNotSupported.WithHint("Request objects are not supported; send the parameters, or push them to the PAR endpoint.")
	}
	if !ar.GetResponseTypes().ExactOne("code") {
		return fosite.ErrUnsupportedResponseType.WithHint("Only the authorization code flow is offered.")
	}
	if (c.RequirePKCE || c.Public) && form.Get("code_challenge") == "" {
		return fosite.ErrInvalidRequest.WithHint("This client must use PKCE (code_challenge with S256).")
	}
	if form.Get("code_challenge") != "" && form.Get("code_challenge_method") != "S256" {
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method must be S256.")
	}
	if c.RequirePAR && !pushing && !strings.HasPrefix(form.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
		return fosite.ErrInvalidRequest.WithHint("This client must push its authorization request to the PAR endpoint first.")
	}
	return nil
}

// needsLogin says why the person must sign in (again), or "" when the
// browser's session will do.
func (p *Provider) needsLogin(bs *users.Session, form url.Values, prompts []string) string {
	if bs == nil {
		return "No one is signed in."
	}
	if slices.Contains(prompts, "login") || slices.Contains(prompts, "select_account") {
		return "The client asked for a fresh sign-in."
	}
	if v := form.Get("max_age"); v != "" {
		if maxAge, err := strconv.Atoi(v); err == nil && time.Since(bs.AuthTime) > time.Duration(maxAge)*time.Second {
			return "The sign-in is older than max_age."
		}
	}
	return ""
}

// errUnmetAuthenticationRequirements is the OpenID Connect error for an
// acr_values request the person cannot meet.
var errUnmetAuthenticationRequirements = &fosite.RFC6749Error{
	ErrorField:       "unmet_authentication_requirements",
	DescriptionField: "The authorization server cannot meet the requested authentication requirements.",
	CodeField:        http.StatusBadRequest,
}

// requiredLevel is the lowest level among acr_values (any one satisfies the
// client), or 0 when none are asked for.
func requiredLevel(acrValues string) int {
	need := 0
	for _, v := range strings.Fields(acrValues) {
		if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= 3 && (need == 0 || n < need) {
			need = n
		}
	}
	return need
}

// redirectToPage sends the browser to the sign-in or consent page, which
// comes back to the authorization endpoint when done. prompt=login is taken
// out of the way back, so the fresh sign-in is not asked for twice. A pushed
// request is stored again under a new request_uri, since fosite used up the
// old one.
func (p *Provider) redirectToPage(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, page string, login bool) {
	q := url.Values{}
	for k, v := range ar.GetRequestForm() {
		q[k] = v
	}
	if uri := q.Get("request_uri"); uri != "" {
		fresh := p.fcfg.GetPushedAuthorizeRequestURIPrefix(ctx) + rand.Text()
		if err := p.storage.CreatePARSession(ctx, fresh, ar); err != nil {
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
		q = url.Values{"client_id": {ar.GetClient().GetID()}, "request_uri": {fresh}}
	}
	if login {
		var kept []string
		for _, v := range strings.Fields(q.Get("prompt")) {
			if v != "login" && v != "select_account" {
				kept = append(kept, v)
			}
		}
		q.Del("prompt")
		if len(kept) > 0 {
			q.Set("prompt", strings.Join(kept, " "))
		}
	}
	q.Del("consent")
	back := "/oauth2/auth?" + q.Encode()
	target := page + "?" + url.Values{"return_to": {back}}.Encode()
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// token runs the token endpoint.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("grant_type") == GrantDeviceCode { // fosite does not know this grant
		p.deviceToken(w, r)
		return
	}
	ctx := r.Context()
	var ar fosite.AccessRequester
	var resp fosite.AccessResponder
	issue := func(ctx context.Context) error {
		var err error
		ar, resp, err = p.issueTokens(ctx, r)
		return err
	}
	var err error
	switch grant := r.PostFormValue("grant_type"); grant {
	case GrantClientCredentials:
		// One token and its audit record: one transaction, one commit (the
		// other grants manage their own transactions inside fosite, whose
		// reuse revocations must commit even though the request fails).
		err = p.d.InTx(ctx, issue)
	case GrantAuthorizationCode, GrantRefreshToken:
		err = p.batched(ctx, r, grant, issue)
	default:
		err = issue(ctx)
	}
	switch {
	case errors.Is(err, errCodeRedeemed):
		err = p.refuseReuse(ctx, ar, "The authorization code has already been used.")
	case errors.Is(err, errRefreshReused):
		err = p.refuseReuse(ctx, ar, "The refresh token has already been used.")
	}
	if err != nil {
		if !unavailable(w, r, err) {
			p.oauth.WriteAccessError(ctx, w, ar, err)
		}
		return
	}
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// batched runs a code exchange or a refresh with its token rows gathered in
// a tokenBatch: a code's three rows read with one query, the new access and
// refresh tokens written with one statement, the used PKCE and OpenID
// Connect rows deleted with one more.
func (p *Provider) batched(ctx context.Context, r *http.Request, grant string, issue func(context.Context) error) error {
	ctx, batch := withTokenBatch(ctx)
	if code := r.PostFormValue("code"); grant == GrantAuthorizationCode && code != "" {
		sig := key(p.tokens.AuthorizeCodeSignature(ctx, code))
		refs := []TokenRef{{KindAuthorizeCode, sig}, {KindPKCE, sig}, {KindOpenIDSession, key(code)}}
		if err := batch.prefetch(ctx, p.store, refs); err != nil {
			return err
		}
	}
	err := issue(ctx)
	if err == nil {
		err = batch.flushCreates(ctx, p.store) // fosite committed them already; this is a safety net
	}
	// What is left of a redeemed code goes once the answer is final: on
	// success, or on a refusal such as a wrong verifier. After a server
	// error the code is still active (its transaction rolled back) and the
	// client may try again, which needs its PKCE row.
	if err == nil || fosite.ErrorToRFC6749Error(err).CodeField < http.StatusInternalServerError {
		// Should this fail, the rows are unusable without the code and
		// housekeeping purges them.
		if ferr := batch.flushDeletes(context.WithoutCancel(ctx), p.store); ferr != nil {
			p.log.WarnContext(ctx, "deleting used code rows failed", "err", ferr)
		}
	}
	return err
}

// refuseReuse answers a code exchange or refresh that lost the race to
// another use of the same code or refresh token as invalid_grant, and
// revokes the grant's tokens, the winner's included: what RFC 6749 section
// 4.1.2 asks of a code used twice and RFC 9700 of a reused refresh token.
func (p *Provider) refuseReuse(ctx context.Context, ar fosite.AccessRequester, hint string) error {
	if ar != nil && ar.GetID() != "" {
		// Not cut short by the losing client going away: the winner's
		// tokens must go whatever happens to this request.
		ctx := context.WithoutCancel(ctx)
		for _, revoke := range []func(context.Context, string) error{p.storage.RevokeAccessToken, p.storage.RevokeRefreshToken} {
			if err := revoke(ctx, ar.GetID()); err != nil {
				return fosite.ErrServerError.WithWrap(err)
			}
		}
	}
	return fosite.ErrInvalidGrant.WithHint(hint)
}

// unavailable answers 503 with Retry-After when err says the database
// cannot be reached, so that a client retries shortly instead of taking
// its token or credentials for bad; it reports whether it answered.
func unavailable(w http.ResponseWriter, r *http.Request, err error) bool {
	if !errors.Is(err, db.ErrUnavailable) {
		return false
	}
	w.Header().Set("Retry-After", "5")
	server.WriteError(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "The service cannot reach its database; try again in a few seconds.")
	return true
}

// issueTokens runs the token request through fosite and records it.
func (p *Provider) issueTokens(ctx context.Context, r *http.Request) (fosite.AccessRequester, fosite.AccessResponder, error) {
	session := newSession()
	ar, err := p.oauth.NewAccessRequest(ctx, r, session)
	if err != nil {
		return ar, nil, err
	}
	client := ar.GetClient().(fositeClient).Client
	if err := checkRefreshScope(ar); err != nil {
		return ar, nil, err
	}
	narrowRefreshScope(ar)
	if ar.GetGrantTypes().ExactOne(GrantClientCredentials) {
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
		session.Subject = client.ID
		session.ClientID = client.ID
	}
	if kid, err := p.signingKey(withIDTokenAlg(ctx, client.IDTokenSignedResponseAlg)); err == nil && session.DefaultSession.Headers != nil {
		session.DefaultSession.Headers.Add("kid", kid.KeyID)
	}
	event := func() audit.Event {
		return audit.Event{Actor: client.ID, Subject: session.Username, ClientID: client.ID, Action: "oauth.token", Result: audit.ResultSuccess,
			Details: map[string]string{"grant_type": strings.Join(ar.GetGrantTypes(), " "), "scope": strings.Join(ar.GetGrantedScopes(), " ")},
			IP:      server.ClientIP(r), UserAgent: r.UserAgent()}
	}
	// The other grants commit their tokens in fosite's own transaction:
	// the record goes into it (see fositeStorage.Commit), so that a
	// database lost in between cannot leave tokens handed out unrecorded.
	pending := &auditOnCommit{append: func(ctx context.Context) error {
		_, err := p.audit.Append(ctx, event())
		return err
	}}
	respCtx := withIDTokenAlg(ctx, client.IDTokenSignedResponseAlg)
	if !db.InTransaction(ctx) {
		respCtx = context.WithValue(respCtx, auditOnCommitKey{}, pending)
	}
	resp, err := p.oauth.NewAccessResponse(respCtx, ar)
	if err != nil {
		return ar, nil, err
	}
	switch {
	case db.InTransaction(ctx): // client_credentials: the handler's transaction
		if _, err := p.audit.Append(ctx, event()); err != nil {
			return ar, nil, fosite.ErrServerError.WithWrap(err)
		}
	case !pending.done: // a flow that committed no transaction of ours
		p.record(ctx, r, event())
	}
	return ar, resp, nil
}

// auditOnCommitKey carries an *auditOnCommit in a token request's context.
type auditOnCommitKey struct{}

// auditOnCommit is the oauth.token record that fositeStorage.Commit
// appends in the transaction that stores the tokens, once.
type auditOnCommit struct {
	append func(ctx context.Context) error
	done   bool
}

// checkRefreshScope refuses a refresh that asks for a scope the grant does
// not hold (RFC 6749 section 6). fosite ignores the scope parameter of a
// refresh and would quietly issue the original scopes instead.
func checkRefreshScope(ar fosite.AccessRequester) error {
	if !ar.GetGrantTypes().ExactOne("refresh_token") {
		return nil
	}
	for _, s := range fosite.RemoveEmpty(strings.Split(ar.GetRequestForm().Get("scope"), " ")) {
		if !ar.GetGrantedScopes().Has(s) {
			return fosite.ErrInvalidScope.WithHintf("The scope %q was not granted to this refresh token.", s)
		}
	}
	return nil
}

// narrowRefreshScope gives the new access token only the scopes a refresh
// asks for (checkRefreshScope has refused any the grant lacks); the new
// refresh token keeps the grant's full scopes (RFC 6749 section 6), which
// fositeStorage reads from Session.RefreshScopes. fosite 0.49 would
// otherwise issue the full scopes whatever was asked.
func narrowRefreshScope(ar fosite.AccessRequester) {
	if !ar.GetGrantTypes().ExactOne("refresh_token") {
		return
	}
	asked := fosite.RemoveEmpty(strings.Split(ar.GetRequestForm().Get("scope"), " "))
	r, ok := ar.(*fosite.AccessRequest)
	session, ok2 := ar.GetSession().(*Session)
	if len(asked) == 0 || !ok || !ok2 {
		return
	}
	full := slices.Clone(ar.GetGrantedScopes())
	narrowed := fosite.Arguments{}
	for _, s := range full {
		if slices.Contains(asked, s) {
			narrowed = append(narrowed, s)
		}
	}
	if len(narrowed) == len(full) {
		return
	}
	session.RefreshScopes = full
	r.GrantedScope = narrowed
}

// userinfo returns the claims the access token's scopes allow.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token := fosite.AccessTokenFromRequest(r)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request", error_description="access token missing"`)
		server.WriteError(w, r, http.StatusUnauthorized, "invalid_request", "access token missing")
		return
	}
	session := newSession()
	_, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, session)
	if unavailable(w, r, err) {
		return
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the access token is invalid, expired or revoked"`)
		server.WriteError(w, r, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return
	}
	granted := ar.GetGrantedScopes()
	if !granted.Has("openid") || session.Username == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="openid"`)
		server.WriteError(w, r, http.StatusForbidden, "insufficient_scope", "the token was not granted the openid scope")
		return
	}
	u, err := p.users.Get(ctx, session.Username)
	if unavailable(w, r, err) {
		return
	}
	if err != nil || u.Status != users.StatusActive {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the account is no longer active"`)
		server.WriteError(w, r, http.StatusUnauthorized, "invalid_token", "the account is no longer active")
		return
	}
	claims := userClaims(u, session.Subject, granted)
	if session.ActingFor != "" {
		claims["acting_for"] = session.ActingFor
	}
	server.WriteJSON(w, http.StatusOK, claims)
}

// userClaims picks the claims each granted scope allows.
func userClaims(u *users.User, sub string, granted fosite.Arguments) map[string]any {
	c := map[string]any{"sub": sub}
	if granted.Has("profile") {
		c["name"] = u.DisplayName
		c["preferred_username"] = u.Username
		c["updated_at"] = u.UpdatedAt.Unix()
	}
	if granted.Has("email") && u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = false
	}
	if granted.Has("phone") && u.Phone != "" {
		c["phone_number"] = "+86" + u.Phone
		c["phone_number_verified"] = false
	}
	if granted.Has("realname") {
		c["assurance_level"] = u.AssuranceLevel
	}
	return c
}

// introspect answers RFC 7662 requests. A client learns only about its own
// tokens unless it was given the introspection permission.
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	resp, err := p.oauth.NewIntrospectionRequest(ctx, r, newSession())
	if err != nil {
		if unavailable(w, r, err) {
			return // not "active": false, which would make a resource server refuse a good token
		}
		if errors.Is(err, fosite.ErrInactiveToken) || errors.Is(err, fosite.ErrTokenExpired) || errors.Is(err, fosite.ErrRequestUnauthorized) {
			server.WriteJSON(w, http.StatusOK, map[string]bool{"active": false})
			return
		}
		p.oauth.WriteIntrospectionError(ctx, w, err)
		return
	}
	caller, _, _ := r.BasicAuth()
	if caller == "" {
		caller = r.PostFormValue("client_id")
	}
	if owner := resp.GetAccessRequester().GetClient().GetID(); caller != owner {
		c, err := p.store.GetClient(ctx, caller)
		if err != nil || !c.AllowIntrospection {
			server.WriteJSON(w, http.StatusOK, map[string]bool{"active": false})
			return
		}
	}
	p.oauth.WriteIntrospectionResponse(ctx, w, resp)
}

// revoke answers RFC 7009 requests; revoking a refresh token revokes its grant.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := p.oauth.NewRevocationRequest(ctx, r)
	if unavailable(w, r, err) {
		return
	}
	if err == nil {
		p.record(ctx, r, audit.Event{ClientID: r.PostFormValue("client_id"), Action: "oauth.revoke", Result: audit.ResultSuccess})
	}
	p.oauth.WriteRevocationResponse(ctx, w, err)
}

// par accepts pushed authorization requests (RFC 9126).
func (p *Provider) par(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := p.oauth.NewPushedAuthorizeRequest(ctx, r)
	if err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	if err := checkClientPolicy(ar.GetClient().(fositeClient).Client, ar, true); err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	resp, err := p.oauth.NewPushedAuthorizeResponse(ctx, ar, newSession())
	if err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	p.oauth.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

// record writes an audit event with the request's address and agent; a
// failed write is logged, since the response has already been decided.
func (p *Provider) record(ctx context.Context, r *http.Request, e audit.Event) {
	e.IP, e.UserAgent = server.ClientIP(r), r.UserAgent()
	if _, err := p.audit.Append(ctx, e); err != nil {
		p.log.ErrorContext(ctx, "audit write failed", "action", e.Action, "err", err)
	}
}

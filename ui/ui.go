package ui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/govsso/sso/users"
)

// Authenticator checks what a person typed on the sign-in form.
type Authenticator interface {
	// PasswordLogin returns the user, or an error: errors.Is(err, users.ErrInvalidCredentials) (wrong account or password),
	// errors.Is(err, users.ErrLocked) (the error may be a *users.LockedError with an Until time.Time field),
	// errors.Is(err, users.ErrAccountDisabled).
	PasswordLogin(ctx context.Context, identifier, password string, m users.RequestMeta) (*users.User, error)
}

// SessionStarter keeps browser sessions; ui only carries their cookie.
type SessionStarter interface {
	// Create starts a session and returns it with the token for the cookie.
	Create(ctx context.Context, userID string, amr []string, acr int, ip, userAgent string) (*users.Session, string, error)
	// Lookup returns the live session a cookie token names.
	Lookup(ctx context.Context, token string) (*users.Session, error)
	// Revoke ends a session.
	Revoke(ctx context.Context, id string) error
}

// ClientInfo is what the pages show of an OAuth client.
type ClientInfo struct {
	ID, Name   string
	FirstParty bool
	// Logo is a data:image/png or data:image/jpeg URI ("" for none);
	// Department names the org unit the client belongs to ("" for none).
	Logo, Department string
}

// clientMark fills the view's logo and department of c. Only a PNG or
// JPEG data URI is shown, whatever the store holds.
func (v *view) clientMark(c ClientInfo) {
	v.ClientName, v.ClientDepartment = c.Name, c.Department
	if strings.HasPrefix(c.Logo, "data:image/png;base64,") || strings.HasPrefix(c.Logo, "data:image/jpeg;base64,") {
		v.ClientLogo = template.URL(c.Logo)
	}
}

// Clients names the OAuth clients a sign-in or consent is for.
type Clients interface {
	// ClientInfo returns the client with this ID.
	ClientInfo(ctx context.Context, id string) (ClientInfo, error)
}

// Consents records what a person allowed a client to do.
type Consents interface {
	// GrantConsent records that userID lets clientID use scopes.
	GrantConsent(ctx context.Context, userID, clientID string, scopes []string, remember bool) error
}

// SessionEnder ends a browser session the way OpenID Connect logout does:
// the session's grants are revoked and every department system that shared
// it is told (back-channel logout). It returns front-channel logout URLs,
// which these pages do not load yet.
type SessionEnder interface {
	EndSession(ctx context.Context, r *http.Request, s *users.Session) ([]string, error)
}

// Config holds the services the pages call.
type Config struct {
	// Logout, when set, ends sessions on sign-out instead of Sessions.Revoke.
	Logout   SessionEnder
	Auth     Authenticator
	Sessions SessionStarter
	Clients  Clients
	Consents Consents
	// Passkeys signs people in with WebAuthn passkeys; nil turns them off.
	Passkeys Passkeys
	// TOTP is two-step verification with an authenticator app; nil turns it off.
	TOTP SecondFactor
	// MFAChallenges holds sign-ins waiting for their second factor; needed with TOTP.
	MFAChallenges MFAChallenges
	// Accounts lets people register and reset their password with an SMS
	// code; nil turns both off.
	Accounts *AccountServices
	// Verify checks a name and ID number with the population register to
	// reach level 2, and StepUp raises the session to it; nil turns the
	// identity-verification page off.
	Verify IdentityVerification
	StepUp SessionStepUp
	// Acting lets agents of enterprises act for them; nil turns it off.
	Acting ActingFor
	// Account shows the account centre at /account; nil turns it off.
	Account AccountCentre
	// Passwords lets people change their password in the account centre;
	// nil (or no Account) turns the page off.
	Passwords PasswordChanger
	// Logger receives server-side failures; nil discards them.
	Logger *slog.Logger
	// QR turns on QR-code sign-in (扫码登录); QRLimiter then bounds the
	// codes each client address may make, and Issuer is the base URL the
	// codes point to (the request's host when empty).
	QR        QRLogins
	QRLimiter RateLimiter
	Issuer    string
	// SecureCookies marks cookies Secure and expects https Origins. It is
	// false only for an http://localhost issuer in development.
	SecureCookies bool
}

// Pages serves the sign-in, sign-out and consent pages.
type Pages struct {
	auth      Authenticator
	sessions  SessionStarter
	clients   Clients
	consents  Consents
	passkeys  Passkeys
	totp      SecondFactor
	mfa       MFAChallenges
	accounts  *AccountServices
	log       *slog.Logger
	secure    bool
	ender     SessionEnder
	verify    IdentityVerification
	stepUp    SessionStepUp
	acting    ActingFor
	account   AccountCentre
	passwords PasswordChanger
	// signing is set by NewSignRequestPages: the centre links its page.
	signing bool
	// licences is set by NewLicencePages: the centre links its page.
	licences bool
	// certificates is set by NewCertificatePages: the centre links its page.
	certificates bool

	tmpl     templates
	cssURL   string
	staticFS http.Handler
	// passkeyJS is the URL of passkeys.js, "" when passkeys are off.
	passkeyJS string

	// QR-code sign-in; qr is nil when it is off.
	qr      QRLogins
	qrLimit RateLimiter
	qrTmpl  *template.Template
	qrJS    string
	issuer  string
}

// ErrNoSession means the request carries no session cookie.
var ErrNoSession = errors.New("no session cookie")

// New checks c and parses the embedded templates.
func New(c Config) (*Pages, error) {
	if c.Auth == nil || c.Sessions == nil || c.Clients == nil || c.Consents == nil {
		return nil, errors.New("ui: Config needs Auth, Sessions, Clients and Consents")
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	cssURL, static, err := staticHandler()
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	passkeyJS := ""
	if c.Passkeys != nil {
		if passkeyJS, err = passkeyScriptURL(); err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
	}
	if c.TOTP != nil && c.MFAChallenges == nil {
		return nil, errors.New("ui: Config.TOTP needs MFAChallenges")
	}
	p := &Pages{
		totp: c.TOTP, mfa: c.MFAChallenges, accounts: c.Accounts,
		auth: c.Auth, sessions: c.Sessions, clients: c.Clients, consents: c.Consents, passkeys: c.Passkeys,
		log: log, secure: c.SecureCookies, ender: c.Logout, verify: c.Verify, stepUp: c.StepUp, acting: c.Acting, account: c.Account, passwords: c.Passwords,
		tmpl: tmpl, cssURL: cssURL, staticFS: static, passkeyJS: passkeyJS,
	}
	if err := p.setupQR(c); err != nil {
		return nil, err
	}
	return p, nil
}

// Register adds the pages and their static files to mux.
func (p *Pages) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", p.loginForm)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("GET /logout", p.logoutForm)
	mux.HandleFunc("POST /logout", p.logout)
	mux.HandleFunc("GET /consent", p.consentForm)
	mux.HandleFunc("POST /consent", p.consent)
	mux.Handle("GET /static/", p.staticFS)
	if p.passkeys != nil {
		p.registerPasskeys(mux)
	}
	if p.totp != nil {
		p.registerSecondFactor(mux)
	}
	if p.accounts != nil {
		p.registerAccounts(mux)
	}
	p.registerVerify(mux)
	p.registerActing(mux)
	p.registerAccount(mux)
	p.registerPassword(mux)
	p.registerQR(mux)
}

// CurrentSession returns the live session of the browser that sent r, for
// the OAuth handlers to decide whether a person must sign in first. It
// returns ErrNoSession without a cookie, else whatever Lookup returns.
func (p *Pages) CurrentSession(r *http.Request) (*users.Session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, ErrNoSession
	}
	s, err := p.sessions.Lookup(r.Context(), c.Value)
	if err != nil {
		return nil, fmt.Errorf("ui: session lookup: %w", err)
	}
	return s, nil
}

package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

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

// Config holds the services the pages call.
type Config struct {
	Auth     Authenticator
	Sessions SessionStarter
	Clients  Clients
	Consents Consents
	// Logger receives server-side failures; nil discards them.
	Logger *slog.Logger
	// SecureCookies marks cookies Secure and expects https Origins. It is
	// false only for an http://localhost issuer in development.
	SecureCookies bool
}

// Pages serves the sign-in, sign-out and consent pages.
type Pages struct {
	auth     Authenticator
	sessions SessionStarter
	clients  Clients
	consents Consents
	log      *slog.Logger
	secure   bool

	tmpl     templates
	cssURL   string
	staticFS http.Handler
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
	return &Pages{
		auth: c.Auth, sessions: c.Sessions, clients: c.Clients, consents: c.Consents,
		log: log, secure: c.SecureCookies,
		tmpl: tmpl, cssURL: cssURL, staticFS: static,
	}, nil
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

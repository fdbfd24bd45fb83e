package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/ratelimit"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/ui"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

func runServe(ctx context.Context, e env, args []string) error {
	f := newFlags("serve", e)
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(f, e)
	if err != nil {
		return err
	}
	start := time.Now()
	a, err := openApp(ctx, cfg, e.stderr, true)
	if err != nil {
		return err
	}
	defer a.close()

	created, err := a.keys.EnsureKeys(ctx)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	for _, k := range created {
		a.log.Info("generated signing key", "kid", k.ID, "alg", k.Algorithm)
	}
	if err := bootstrapAdmin(ctx, a, e); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	metrics := server.NewMetrics(reg)
	metrics.RegisterDBStats("main", a.db.SQL())
	reg.MustRegister(a.limits.Collectors()...)
	checkRateLimits(ctx, a)
	ctx, stopWorkers := context.WithCancel(ctx) // background work ends with serve
	defer stopWorkers()
	// Other nodes' changes to clients and signing keys reach this node's
	// caches through PostgreSQL LISTEN/NOTIFY (nothing to do on SQLite).
	go a.db.ListenInvalidations(ctx, a.log)
	mux, err := routes(ctx, a, metrics)
	if err != nil {
		return err
	}
	handler := server.Wrap(mux, server.Options{
		Logger:         a.log,
		Metrics:        metrics,
		MaxBodyBytes:   cfg.HTTPMaxBodyBytes,
		TrustedProxies: cfg.TrustedProxies,
	})
	srv := server.NewHTTPServer(handler, server.Timeouts{
		ReadHeader: cfg.HTTPReadHeaderTimeout,
		Read:       cfg.HTTPReadTimeout,
		Write:      cfg.HTTPWriteTimeout,
		Idle:       cfg.HTTPIdleTimeout,
	}, a.log)
	if cfg.TLSCertFile != "" {
		certs, err := server.NewCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, a.log)
		if err != nil {
			return fmt.Errorf("SSO_TLS_CERT_FILE/SSO_TLS_KEY_FILE: %w", err)
		}
		srv.TLSConfig = certs.TLSConfig()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	a.log.Info("sso is ready", "issuer", cfg.Issuer, "addr", ln.Addr().String(),
		"database", string(a.db.Dialect())+":"+a.db.Target(), "tls", cfg.TLSCertFile != "", "startup", time.Since(start).Round(time.Millisecond).String())
	// The audit sealer chains new records every second; it makes a last pass
	// after the server stops, before the database closes.
	sealCtx, stopSealer := context.WithCancel(ctx)
	sealerDone := make(chan struct{})
	go func() {
		defer close(sealerDone)
		a.audit.RunSealer(sealCtx, time.Second, func(err error) { a.log.Error("audit sealer", "err", err) })
	}()
	err = server.Run(ctx, srv, ln, cfg.ShutdownTimeout, a.log)
	stopSealer()
	<-sealerDone
	a.log.Info("sso stopped")
	return err
}

// routes is the one table of everything the server answers, readable top to
// bottom: the pages people see (ui), the OAuth 2.0 / OpenID Connect
// endpoints (oauth), and the operational endpoints.
func routes(ctx context.Context, a *app, metrics *server.Metrics) (*http.ServeMux, error) {
	passkeys, err := passkeyService(a)
	if err != nil {
		return nil, err
	}
	accounts, err := accountServices(a)
	if err != nil {
		return nil, err
	}
	// Identity verification (level 2) needs the population register's service.
	var verify ui.IdentityVerification
	if a.cfg.IdentityVerifierURL != "" {
		verify = users.NewAssurance(a.db, a.users,
			&users.HTTPIdentityVerifier{URL: a.cfg.IdentityVerifierURL, Secret: []byte(a.cfg.IdentityVerifierSecret)}, a.audit)
	}
	// QR-code sign-in: each address may show 200 codes in ten minutes
	// (an office behind one address reloads often), then waits ten.
	qrLimiter, err := a.limits.Limiter("qr", ratelimit.Policy{Limit: 200, Window: 10 * time.Minute})
	if err != nil {
		return nil, err
	}
	var pages *ui.Pages
	auth := users.NewAuthenticator(a.users, a.hasher, a.lockout, a.audit)
	provider := oauth.NewProvider(oauth.Config{
		Issuer:               a.cfg.Issuer,
		AccessTokenLifetime:  a.cfg.AccessTokenLifetime,
		RefreshTokenLifetime: a.cfg.RefreshTokenLifetime,
		IDTokenLifetime:      a.cfg.IDTokenLifetime,
		AuthCodeLifetime:     a.cfg.AuthCodeLifetime,
		RefreshGracePeriod:   a.cfg.RefreshGracePeriod,
		HMACKey:              a.kek.Derive("sso oauth hmac"),
		PairwiseKey:          a.kek.Derive("sso pairwise subject"),
		IdentityVerification: verify != nil,
	}, oauth.Dependencies{
		DB: a.db, Store: a.oauth, Keys: a.keys, Users: a.users, Audit: a.audit, Logger: a.log, Secrets: a.secrets,
		// The pages are built below; the provider reads sessions through them.
		Sessions: func(r *http.Request) (*users.Session, error) { return pages.CurrentSession(r) },
		Revoker:  a.sessions,
		// Housekeeping purges these with the provider's own expired rows.
		ExpiredSessions: a.sessions,
		Lockouts:        a.lockout,
	})
	pages, err = ui.New(ui.Config{
		Logout:        provider,
		Verify:        verify,
		StepUp:        a.sessions,
		Acting:        actingFor{users.NewEnterprises(a.db, a.users), a.sessions, a.audit},
		Account:       accountCentre{a.users, a.sessions, a.oauth, provider, a.audit},
		Auth:          auth,
		Passwords:     auth,
		Sessions:      a.sessions,
		Clients:       clientInfo{a.oauth, users.NewOrgUnits(a.db)},
		Consents:      a.oauth,
		Passkeys:      passkeys,
		Accounts:      accounts,
		TOTP:          users.NewTOTP(a.db, a.kek, a.users, a.lockout, a.audit),
		MFAChallenges: users.NewMFAChallenges(a.db, 0),
		Logger:        a.log,
		SecureCookies: !strings.HasPrefix(a.cfg.Issuer, "http://"),
		QR:            users.NewQRLogins(a.db, a.users, a.audit),
		QRLimiter:     qrLimiter,
		Issuer:        a.cfg.Issuer,
	})
	if err != nil {
		return nil, err
	}
	// Wrong user codes on the device page are counted per address apart
	// from sign-in failures: after three, each must wait longer, and ten lock it.
	devicePages, err := ui.NewDevicePages(pages, deviceAuthorizations{provider},
		users.NewLockout(a.db, users.LockoutPolicy{MaxFailures: 10, FreeFailures: 3, Window: a.cfg.LockoutWindow, LockFor: a.cfg.LockoutDuration}))
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	pages.Register(mux)
	devicePages.Register(mux)
	provider.Register(mux)
	admins := adminAPI(a, provider, pages, accounts)
	admins.Register(mux)
	console, err := ui.NewAdminConsole(pages, admins)
	if err != nil {
		return nil, err
	}
	console.Register(mux)
	if err := registerCerts(mux, a, provider); err != nil {
		return nil, err
	}
	if err := registerSignRequests(ctx, mux, a, provider, pages); err != nil {
		return nil, err
	}
	if err := registerLicencePages(mux, a, pages); err != nil {
		return nil, err
	}
	go provider.RunLogoutDeliveries(ctx)
	// Change events for department systems, from the outbox the admin API
	// and imports write to; every node sends, each delivery claimed once.
	go (&webhooks.Dispatcher{Hub: webhooks.NewHub(a.db, a.kek), Logger: a.log, InScope: admins.WebhookScope}).Run(ctx)
	go provider.RunHousekeeping(ctx, time.Minute)
	if a.cfg.AuditRetention > 0 {
		go runAuditRetention(ctx, a.audit, a.cfg.AuditRetention, archiveDir(a.cfg), time.Hour, a.log)
	}
	// The right to deletion: personal data of accounts deleted longer ago
	// than the retention is erased.
	eraser := users.NewEraser(a.users, users.NewResetLinks(a.db, 0), a.audit, a.cfg.UserErasureAfter, a.log)
	eraser.OnErase = destroySigningKeys(a)
	go eraser.Run(ctx, time.Hour)
	mux.Handle("GET /.well-known/jwks.json", jwksHandler(a))
	mux.Handle("GET /healthz/live", server.LiveHandler())
	mux.Handle("GET /healthz/ready", server.ReadyHandler(a.db.Ping))
	mux.Handle("GET /metrics", metrics.Handler())
	return mux, nil
}

// clientInfo shows the pages a client's name without giving them the store.
type clientInfo struct {
	s     *oauth.SQLStore
	units *users.OrgUnits
}

func (c clientInfo) ClientInfo(ctx context.Context, id string) (ui.ClientInfo, error) {
	cl, err := c.s.GetClient(ctx, id)
	if err != nil {
		return ui.ClientInfo{}, err
	}
	info := ui.ClientInfo{ID: cl.ID, Name: cl.Name, FirstParty: cl.FirstParty, Logo: cl.LogoURI}
	if cl.OrgUnitID != "" {
		if u, err := c.units.Get(ctx, cl.OrgUnitID); err == nil {
			info.Department = u.Name
		}
	}
	return info, nil
}

// accountCentre gives the account centre its data without ui importing
// oauth or audit.
type accountCentre struct {
	users    *users.SQLStore
	sessions *users.Sessions
	store    *oauth.SQLStore
	provider *oauth.Provider
	audit    *audit.Log
}

// activityWindow is how far back the account centre looks for activity.
const activityWindow = 90 * 24 * time.Hour

func (c accountCentre) Profile(ctx context.Context, userID string) (*users.User, error) {
	return c.users.Get(ctx, userID)
}

func (c accountCentre) ListSessions(ctx context.Context, userID string) ([]*users.Session, error) {
	return c.sessions.ListForUser(ctx, userID)
}

// AuthorisedApps names each consented client; a client deleted since is
// shown by its id, so the person can still revoke what remains.
func (c accountCentre) AuthorisedApps(ctx context.Context, userID string) ([]ui.AuthorisedApp, error) {
	consents, err := c.store.ListConsents(ctx, userID)
	if err != nil {
		return nil, err
	}
	apps := make([]ui.AuthorisedApp, len(consents))
	for i, cs := range consents {
		apps[i] = ui.AuthorisedApp{ClientID: cs.ClientID, Name: cs.ClientID, Scopes: cs.Scopes, GrantedAt: cs.GrantedAt}
		cl, err := c.store.GetClient(ctx, cs.ClientID)
		switch {
		case err == nil:
			apps[i].Name = cl.Name
		case !errors.Is(err, db.ErrNotFound):
			return nil, err
		}
	}
	return apps, nil
}

func (c accountCentre) RevokeApp(ctx context.Context, userID, clientID string, m users.RequestMeta) error {
	return c.provider.RevokeClientAccess(ctx, userID, clientID, m.IP, m.UserAgent)
}

// RecentActivity pages through the person's events of the last 90 days,
// which the log lists oldest first, and keeps the newest n.
func (c accountCentre) RecentActivity(ctx context.Context, userID string, n int) ([]ui.Activity, error) {
	f := audit.Filter{Subject: userID, Since: time.Now().Add(-activityWindow).UTC(), Limit: audit.MaxListLimit}
	var last []audit.Event
	for {
		page, err := c.audit.List(ctx, f)
		if err != nil {
			return nil, err
		}
		last = append(last, page...)
		if len(last) > n {
			last = append([]audit.Event(nil), last[len(last)-n:]...)
		}
		if len(page) < audit.MaxListLimit {
			break
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
	out := make([]ui.Activity, 0, len(last))
	for i := len(last) - 1; i >= 0; i-- {
		e := last[i]
		out = append(out, ui.Activity{At: e.OccurredAt, Action: e.Action, Result: e.Result, IP: e.IP})
	}
	return out, nil
}

// deviceAuthorizations lets the device page find and decide device
// sign-ins without importing oauth.
type deviceAuthorizations struct{ p *oauth.Provider }

func (d deviceAuthorizations) PendingDevice(ctx context.Context, userCode string) (ui.DeviceRequest, error) {
	a, c, err := d.p.PendingDevice(ctx, userCode)
	if err != nil {
		return ui.DeviceRequest{}, deviceErr(err)
	}
	return ui.DeviceRequest{UserCode: oauth.FormatUserCode(a.UserCode), ClientName: c.Name, Scopes: a.Scopes}, nil
}

func (d deviceAuthorizations) DecideDevice(ctx context.Context, userCode string, approve bool, s *users.Session, ip, userAgent string) error {
	return deviceErr(d.p.DecideDevice(ctx, userCode, approve, s, ip, userAgent))
}

// deviceErr tells the page about an unknown user code in its own terms.
func deviceErr(err error) error {
	if errors.Is(err, oauth.ErrUnknownUserCode) {
		return fmt.Errorf("%w: %w", ui.ErrUnknownUserCode, err)
	}
	return err
}

// jwksHandler publishes the public signing keys. A new key signs at once
// after rotation; relying parties that meet an unknown kid fetch the set
// again (go-oidc does), so a five-minute cache is safe.
func jwksHandler(a *app) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := a.keys.JWKS(r.Context(), time.Now())
		if err != nil {
			a.log.ErrorContext(r.Context(), "jwks", "err", err)
			status := http.StatusInternalServerError
			if errors.Is(err, db.ErrUnavailable) {
				status = http.StatusServiceUnavailable
				w.Header().Set("Retry-After", "5")
			}
			server.WriteError(w, r, status, "server_error", "signing keys are unavailable")
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(body)
	})
}

// bootstrapAdmin creates the administrator "admin" on the very first start,
// when the database holds no account. Its password comes from
// SSO_BOOTSTRAP_ADMIN_PASSWORD or is generated and printed once, on standard
// error and never through the logger, so it reaches no log collector.
func bootstrapAdmin(ctx context.Context, a *app, e env) error {
	n, err := a.users.Count(ctx)
	if err != nil {
		return fmt.Errorf("count accounts: %w", err)
	}
	if n > 0 {
		return nil
	}
	password, generated := a.cfg.BootstrapAdminPassword, false
	if password == "" {
		password, generated = randomPassword(), true
	} else if err := users.CheckPasswordPolicy(password, "admin", ""); err != nil {
		return fmt.Errorf("invalid SSO_BOOTSTRAP_ADMIN_PASSWORD: %w", err)
	}
	hash, err := a.hasher.Hash(password)
	if err != nil {
		return err
	}
	u := &users.User{Username: "admin", Kind: users.KindStaff, DisplayName: "Administrator", IsAdmin: true, PasswordHash: hash}
	err = a.db.InTx(ctx, func(ctx context.Context) error {
		if err := a.users.Create(ctx, u); err != nil {
			return err
		}
		_, err := a.audit.Append(ctx, audit.Event{Actor: "system", Subject: u.ID, Action: audit.ActionBootstrapAdmin, Result: audit.ResultSuccess})
		return err
	})
	if errors.Is(err, db.ErrConflict) {
		return nil // another node bootstrapped at the same moment
	}
	if err != nil {
		return fmt.Errorf("create administrator: %w", err)
	}
	a.log.Info("created administrator account", "username", "admin", "id", u.ID)
	if generated {
		fmt.Fprintf(e.stderr, "\n"+
			"  ┌──────────────────────────────────────────────────────────────┐\n"+
			"  │ First start: created administrator \"admin\".                  │\n"+
			"  │ One-time password: %-41s │\n"+
			"  │ It is shown only now. Sign in and change it.                 │\n"+
			"  └──────────────────────────────────────────────────────────────┘\n\n", password)
	}
	return nil
}

// randomPassword returns 26 base32 characters (128 bits) from crypto/rand.
func randomPassword() string { return rand.Text() }

// actingFor lets the pages switch whom a session acts for, and audits it.
type actingFor struct {
	e        *users.Enterprises
	sessions *users.Sessions
	log      *audit.Log
}

func (a actingFor) ActingOptions(ctx context.Context, userID string) ([]*users.Enterprise, error) {
	return a.e.ActingOptions(ctx, userID)
}

func (a actingFor) SwitchActing(ctx context.Context, s *users.Session, enterpriseID string) error {
	err := a.e.SwitchActing(ctx, a.sessions, s, enterpriseID)
	e := audit.Event{Actor: s.UserID, Subject: s.UserID, Action: "user.switch_acting", Result: audit.ResultSuccess,
		Details: map[string]string{"acting_for": enterpriseID, "sid": s.ID}}
	if err != nil {
		e.Result, e.Reason = audit.ResultFailure, err.Error()
	}
	if _, aerr := a.log.Append(ctx, e); aerr != nil && err == nil {
		return aerr
	}
	return err
}

// checkRateLimits says where the rate limits count and, with Redis, whether
// it answers. A Redis that does not is no reason to refuse to start, nor to
// report the node not ready: the limiters count in the database until it
// answers. go-redis's own log lines go to the logger at debug level, since
// the limiters already warn once per outage; its logger is process-wide,
// so the first server sets it once.
func checkRateLimits(ctx context.Context, a *app) {
	if !a.limits.Redis() {
		a.log.Info("rate limits count in the database")
		return
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{a.log}) })
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.limits.Ping(ctx); err != nil {
		a.log.Warn("redis does not answer; rate limits count in the database until it does", "err", err)
		return
	}
	a.log.Info("rate limits count in redis", "redis", a.limits.String())
}

// redisLogOnce guards go-redis's process-wide logger.
var redisLogOnce sync.Once

// redisLog passes go-redis's internal messages to slog.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "redis")
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/config"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/oauth/signing"
	"github.com/govsso/sso/ratelimit"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/ui"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// app holds what the commands need, built once from the configuration and
// passed down explicitly.
type app struct {
	cfg      *config.Config
	log      *slog.Logger
	db       *db.DB
	kek      *kek.KEK
	users    *users.SQLStore
	oauth    *oauth.SQLStore
	keys     *signing.Manager
	audit    *audit.Log
	hasher   *users.PasswordHasher
	secrets  *oauth.SecretHasher
	sessions *users.Sessions
	lockout  *users.Lockout
	// limits makes the per-address rate limiters: database counters, or
	// Redis ones falling back to them when SSO_REDIS_URL is set.
	limits *ratelimit.Backend
}

// flags is a command's flag set with the configuration flags and --json.
type flags struct {
	*flag.FlagSet
	config *config.Flags
	json   *bool
	args   []string // positional arguments, wherever they stood among the flags
}

func newFlags(name string, e env) *flags {
	fs := flag.NewFlagSet("sso "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &flags{FlagSet: fs, config: config.RegisterFlags(fs)}
	f.json = fs.Bool("json", false, "print JSON instead of a table")
	return f
}

// parse parses args, allowing flags after positional arguments
// ("sso user disable alice --json"); a bad flag is a usage error (exit 2).
func (f *flags) parse(args []string) error {
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{msg: err.Error()}
		}
		rest := f.Args()
		if len(rest) == 0 {
			return nil
		}
		f.args = append(f.args, rest[0])
		args = rest[1:]
	}
}

// loadConfig reads the configuration for a command that has parsed its flags.
func loadConfig(f *flags, e env) (*config.Config, error) {
	return config.Load(f.config, e.getenv)
}

// openApp connects to the database, loads the key-encryption key and, when
// migrate is set, applies pending migrations. logOut receives the logs.
func openApp(ctx context.Context, cfg *config.Config, logOut io.Writer, migrate bool) (*app, error) {
	logger, err := server.NewLogger(logOut, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return nil, err
	}
	if p := cfg.SQLitePath(); p != "" {
		if err := ensureDir(filepath.Dir(p)); err != nil {
			return nil, err
		}
	}
	key, err := loadKEK(cfg, logger)
	if err != nil {
		return nil, err
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, db.PoolOptions{
		MaxOpenConns:    cfg.DBMaxOpenConns,
		MaxIdleConns:    cfg.DBMaxIdleConns,
		ConnMaxLifetime: cfg.DBConnMaxLifetime,
	})
	if err != nil {
		return nil, err
	}
	limits, err := ratelimit.Open(d, ratelimit.Options{RedisURL: cfg.RedisURL, Logger: logger})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("SSO_REDIS_URL: %w", err)
	}
	if migrate {
		applied, err := d.Migrate(ctx)
		if err != nil {
			limits.Close()
			d.Close()
			return nil, fmt.Errorf("migrate %s: %w", d.Target(), err)
		}
		for _, m := range applied {
			logger.Info("applied migration", "version", m.Version, "name", m.Name)
		}
	}
	a := &app{
		cfg:   cfg,
		log:   logger,
		db:    d,
		kek:   key,
		users: users.NewSQLStore(d, key),
		oauth: oauth.NewSQLStore(d, key),
		keys:  signing.NewManager(d, key),
		audit: audit.NewLog(d),
		hasher: users.NewPasswordHasher(users.Argon2Params{
			MemoryKiB:   cfg.PasswordHashMemoryKiB,
			Iterations:  cfg.PasswordHashIterations,
			Parallelism: cfg.PasswordHashParallelism,
		}),
		secrets: oauth.NewSecretHasher(key.Derive("sso client secret")),
		sessions: users.NewSessions(d, users.SessionOptions{
			IdleTimeout: cfg.SessionIdleTimeout,
			Lifetime:    cfg.SessionLifetime,
		}),
		lockout: users.NewLockout(d, users.LockoutPolicy{
			MaxFailures: cfg.LockoutMaxFailures,
			Window:      cfg.LockoutWindow,
			LockFor:     cfg.LockoutDuration,
		}),
		limits: limits,
	}
	// Every account change, from the server or a CLI verb, writes its
	// change events for department systems in its own transaction.
	a.users.SetChangeListener(webhooks.Listener{Hub: webhooks.NewHub(d, key)})
	return a, nil
}

func (a *app) close() {
	a.limits.Close()
	a.db.Close()
}

func loadKEK(cfg *config.Config, logger *slog.Logger) (*kek.KEK, error) {
	if cfg.KeyEncryptionKey != "" {
		k, err := kek.Parse(cfg.KeyEncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("invalid SSO_KEY_ENCRYPTION_KEY: %w", err)
		}
		return k, nil
	}
	if err := ensureDir(filepath.Dir(cfg.KeyEncryptionKeyFile)); err != nil {
		return nil, err
	}
	k, created, err := kek.LoadOrCreateFile(cfg.KeyEncryptionKeyFile)
	if err != nil {
		return nil, err
	}
	if created {
		logger.Warn("generated a new key-encryption key; back it up apart from the database: without it, signing keys and encrypted personal data cannot be read",
			"file", cfg.KeyEncryptionKeyFile, "key_id", k.ID())
	}
	return k, nil
}

// ensureDir creates dir with mode 0700 when it does not exist; an existing
// directory is left as the operator made it.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	return nil
}

// accountServices wires self-registration and password reset by SMS code.
func accountServices(a *app) (*ui.AccountServices, error) {
	senders, err := otpSenders(a.cfg, a.log)
	if err != nil {
		return nil, err
	}
	return &ui.AccountServices{
		Codes: users.NewOTP(a.db, a.kek, senders, a.audit, users.OTPOptions{
			SendInterval:     a.cfg.OTPSendInterval,
			DailyLimit:       a.cfg.OTPDailyLimit,
			HourlyLimitPerIP: a.cfg.OTPIPHourlyLimit,
		}),
		Users:            a.users,
		Hasher:           a.hasher,
		Sessions:         a.sessions,
		Lockout:          a.lockout,
		Audit:            a.audit,
		SelfRegistration: a.cfg.SelfRegistration,
		Links:            users.NewResetLinks(a.db, 0),
		LinkOwners:       a.users,
	}, nil
}

// otpSenders builds the SMS and email senders the settings name. The log
// senders write codes to the log and are meant for development only, so
// start-up says so loudly.
func otpSenders(cfg *config.Config, log *slog.Logger) (users.OTPSenders, error) {
	var s users.OTPSenders
	switch cfg.SMSSender {
	case "http":
		if cfg.SMSHTTPURL == "" || cfg.SMSHTTPSecret == "" {
			return s, errors.New("invalid configuration: SSO_SMS_SENDER=http needs SSO_SMS_HTTP_URL and SSO_SMS_HTTP_SECRET")
		}
		if u, err := url.Parse(cfg.SMSHTTPURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return s, errors.New("invalid SSO_SMS_HTTP_URL: must be an absolute http(s) URL")
		}
		s.SMS = users.HTTPSMSSender{URL: cfg.SMSHTTPURL, Secret: []byte(cfg.SMSHTTPSecret)}
	default:
		log.Warn("SSO_SMS_SENDER=log: one-time codes are written to this log instead of being sent; for development only")
		s.SMS = users.LogSender{Log: log}
	}
	switch cfg.EmailSender {
	case "smtp":
		if cfg.SMTPHost == "" || cfg.SMTPFrom == "" {
			return s, errors.New("invalid configuration: SSO_EMAIL_SENDER=smtp needs SSO_SMTP_HOST and SSO_SMTP_FROM")
		}
		s.Email = users.SMTPSender{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword, From: cfg.SMTPFrom}
	default:
		s.Email = users.LogSender{Log: log}
	}
	return s, nil
}

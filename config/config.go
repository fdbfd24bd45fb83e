// Package config is the one place that knows the server's settings: their
// names, defaults and checks, and how flags, SSO_* environment variables and
// an optional YAML file combine (flags win over the environment, which wins
// over the file, which wins over the defaults).
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config holds every setting of sso serve and the CLI.
type Config struct {
	Addr        string
	Issuer      string
	DatabaseURL string
	DataDir     string
	LogLevel    string
	LogFormat   string

	KeyEncryptionKey     string // secret: never logged
	KeyEncryptionKeyFile string

	DBMaxOpenConns    int
	DBMaxIdleConns    int
	DBConnMaxLifetime time.Duration

	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration
	HTTPMaxBodyBytes      int64
	ShutdownTimeout       time.Duration

	AccessTokenLifetime  time.Duration
	RefreshTokenLifetime time.Duration
	IDTokenLifetime      time.Duration
	AuthCodeLifetime     time.Duration
	RefreshGracePeriod   time.Duration

	SessionIdleTimeout time.Duration
	SessionLifetime    time.Duration
	LockoutMaxFailures int
	LockoutWindow      time.Duration
	LockoutDuration    time.Duration

	AuditRetention  time.Duration
	AuditArchiveDir string

	PasswordHashMemoryKiB   uint32
	PasswordHashIterations  uint32
	PasswordHashParallelism uint8

	BootstrapAdminPassword string // secret: never logged

	IdentityVerifierURL    string
	IdentityVerifierSecret string // secret: never logged

	SMSSender        string // log or http
	SMSHTTPURL       string
	SMSHTTPSecret    string // secret: never logged
	EmailSender      string // log or smtp
	SMTPHost         string
	SMTPPort         int
	SMTPUsername     string
	SMTPPassword     string // secret: never logged
	SMTPFrom         string
	SelfRegistration bool
	OTPSendInterval  time.Duration
	OTPDailyLimit    int
	OTPIPHourlyLimit int

	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto are believed; empty trusts no one.
	TrustedProxies []netip.Prefix

	// UserErasureAfter is how long a deleted account keeps its personal
	// data before the housekeeping job erases it.
	UserErasureAfter time.Duration
	// ClientSecretOverlap is how long a rotated client secret keeps working.
	ClientSecretOverlap time.Duration
	// TLSCertFile and TLSKeyFile, both or neither, make sso serve HTTPS
	// itself; the files are read again when they change.
	TLSCertFile string
	TLSKeyFile  string

	// VerifyRateLimit is how many requests one client address may make to
	// the public signature and licence verification endpoints per minute.
	VerifyRateLimit int

	// RedisURL, when set, moves the per-address rate limits (verification
	// endpoints, QR codes) from database counters to Redis; may hold a
	// password: never logged.
	RedisURL string
}

// Option describes one setting; the README table is checked against Options.
type Option struct {
	Key     string // YAML key; the flag is Key with '-' for '_', the variable SSO_ + upper(Key)
	Default string
	Usage   string
	NoFlag  bool // secrets are not flags: command lines show up in ps
	set     func(c *Config, v string) error
}

// Env is the environment variable of the option.
func (o Option) Env() string { return "SSO_" + strings.ToUpper(o.Key) }

// Flag is the command-line flag of the option, without dashes.
func (o Option) Flag() string { return strings.ReplaceAll(o.Key, "_", "-") }

// Options lists every setting in the order the README documents them.
var Options = []Option{
	{Key: "addr", Default: "localhost:8080", Usage: "host:port the HTTP server listens on",
		set: func(c *Config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return errors.New("must be host:port, for example localhost:8080 or :8080")
			}
			c.Addr = v
			return nil
		}},
	{Key: "issuer", Default: "", Usage: "public base URL of this server, the OpenID Connect issuer; https unless the host is localhost (default http://localhost:<port of addr>)",
		set: func(c *Config, v string) error { c.Issuer = strings.TrimRight(v, "/"); return nil }},
	{Key: "database_url", Default: "", Usage: "sqlite:///path/to/file.db or postgres://user:pass@host:5432/db (default sqlite://<data_dir>/sso.db)",
		set: func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{Key: "data_dir", Default: "./data", Usage: "directory for the SQLite database and the generated key file (created with mode 0700)",
		set: func(c *Config, v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			c.DataDir = v
			return nil
		}},
	{Key: "log_level", Default: "info", Usage: "debug, info, warn or error",
		set: oneOf(func(c *Config) *string { return &c.LogLevel }, "debug", "info", "warn", "error")},
	{Key: "log_format", Default: "text", Usage: "text or json",
		set: oneOf(func(c *Config) *string { return &c.LogFormat }, "text", "json")},
	{Key: "key_encryption_key", Default: "", NoFlag: true, Usage: "32-byte key (base64 or hex) that encrypts keys and personal data at rest; default: generated into <data_dir>/key-encryption.key (mode 0600)",
		set: func(c *Config, v string) error { c.KeyEncryptionKey = v; return nil }},
	{Key: "key_encryption_key_file", Default: "", Usage: "file holding the key-encryption key (for mounted secrets); default <data_dir>/key-encryption.key",
		set: func(c *Config, v string) error { c.KeyEncryptionKeyFile = v; return nil }},
	{Key: "db_max_open_conns", Default: "0", Usage: "connection pool size (0: 25 on PostgreSQL, 8 on SQLite)",
		set: intSetting(func(c *Config) *int { return &c.DBMaxOpenConns }, 0, 10000)},
	{Key: "db_max_idle_conns", Default: "0", Usage: "idle connections kept open (0: same as db_max_open_conns)",
		set: intSetting(func(c *Config) *int { return &c.DBMaxIdleConns }, 0, 10000)},
	{Key: "db_conn_max_lifetime", Default: "30m", Usage: "close pooled connections after this long (lets PostgreSQL fail over)",
		set: durationSetting(func(c *Config) *time.Duration { return &c.DBConnMaxLifetime }, 0)},
	{Key: "http_read_header_timeout", Default: "5s", Usage: "time allowed to read request headers",
		set: durationSetting(func(c *Config) *time.Duration { return &c.HTTPReadHeaderTimeout }, time.Second)},
	{Key: "http_read_timeout", Default: "30s", Usage: "time allowed to read a whole request",
		set: durationSetting(func(c *Config) *time.Duration { return &c.HTTPReadTimeout }, time.Second)},
	{Key: "http_write_timeout", Default: "30s", Usage: "time allowed to write a response",
		set: durationSetting(func(c *Config) *time.Duration { return &c.HTTPWriteTimeout }, time.Second)},
	{Key: "http_idle_timeout", Default: "120s", Usage: "keep-alive connections idle longer are closed",
		set: durationSetting(func(c *Config) *time.Duration { return &c.HTTPIdleTimeout }, time.Second)},
	{Key: "http_max_body_bytes", Default: "1048576", Usage: "largest request body accepted, in bytes",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return errors.New("must be a whole number of bytes, at least 1024")
			}
			c.HTTPMaxBodyBytes = n
			return nil
		}},
	{Key: "shutdown_timeout", Default: "30s", Usage: "on SIGTERM/SIGINT, time given to in-flight requests before the server stops",
		set: durationSetting(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, 0)},
	{Key: "access_token_lifetime", Default: "1h", Usage: "lifetime of access tokens",
		set: durationSetting(func(c *Config) *time.Duration { return &c.AccessTokenLifetime }, time.Minute)},
	{Key: "refresh_token_lifetime", Default: "720h", Usage: "lifetime of refresh tokens",
		set: durationSetting(func(c *Config) *time.Duration { return &c.RefreshTokenLifetime }, time.Minute)},
	{Key: "id_token_lifetime", Default: "1h", Usage: "lifetime of ID tokens",
		set: durationSetting(func(c *Config) *time.Duration { return &c.IDTokenLifetime }, time.Minute)},
	{Key: "auth_code_lifetime", Default: "1m", Usage: "lifetime of authorization codes",
		set: durationSetting(func(c *Config) *time.Duration { return &c.AuthCodeLifetime }, 10*time.Second)},
	{Key: "refresh_token_grace_period", Default: "0s", Usage: "a rotated refresh token still works this long, for clients that refresh twice at once; 0 treats any reuse as theft and revokes the grant",
		set: durationSetting(func(c *Config) *time.Duration { return &c.RefreshGracePeriod }, 0)},
	{Key: "session_idle_timeout", Default: "30m", Usage: "a browser session unused this long ends",
		set: durationSetting(func(c *Config) *time.Duration { return &c.SessionIdleTimeout }, time.Minute)},
	{Key: "session_lifetime", Default: "12h", Usage: "a browser session ends this long after sign-in, however active",
		set: durationSetting(func(c *Config) *time.Duration { return &c.SessionLifetime }, time.Minute)},
	{Key: "lockout_max_failures", Default: "5", Usage: "failed sign-ins within lockout_window that lock an account",
		set: intSetting(func(c *Config) *int { return &c.LockoutMaxFailures }, 1, 1000)},
	{Key: "lockout_window", Default: "15m", Usage: "failed sign-ins older than this are forgotten",
		set: durationSetting(func(c *Config) *time.Duration { return &c.LockoutWindow }, time.Second)},
	{Key: "lockout_duration", Default: "15m", Usage: "how long a locked account stays locked (an admin can unlock it sooner)",
		set: durationSetting(func(c *Config) *time.Duration { return &c.LockoutDuration }, time.Second)},
	{Key: "audit_retention", Default: "0s", Usage: "move audit records older than this out of the database into JSON-lines files in audit_archive_dir, hourly (0: keep every record in the database)",
		set: durationSetting(func(c *Config) *time.Duration { return &c.AuditRetention }, 0)},
	{Key: "audit_archive_dir", Default: "", Usage: "directory for audit archive files (default <data_dir>/audit-archive); on several nodes, a shared volume or run `sso audit archive` from one place",
		set: func(c *Config, v string) error { c.AuditArchiveDir = strings.TrimSpace(v); return nil }},
	{Key: "password_hash_memory_kib", Default: "19456", Usage: "argon2id memory per hash, in KiB (19 MiB)",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n < 8*1024 || n > 4*1024*1024 {
				return errors.New("must be between 8192 and 4194304 KiB")
			}
			c.PasswordHashMemoryKiB = uint32(n)
			return nil
		}},
	{Key: "password_hash_iterations", Default: "2", Usage: "argon2id passes over memory",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n < 1 || n > 100 {
				return errors.New("must be between 1 and 100")
			}
			c.PasswordHashIterations = uint32(n)
			return nil
		}},
	{Key: "password_hash_parallelism", Default: "1", Usage: "argon2id lanes",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 8)
			if err != nil || n < 1 || n > 64 {
				return errors.New("must be between 1 and 64")
			}
			c.PasswordHashParallelism = uint8(n)
			return nil
		}},
	{Key: "identity_verifier_url", Default: "", Usage: "URL of the population-register service that confirms a name and resident ID number (level 2); empty turns identity verification off",
		set: func(c *Config, v string) error {
			if v != "" {
				if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && IsLocalhost(u.Hostname()))) {
					return errors.New("must be an https URL (http only on localhost)")
				}
			}
			c.IdentityVerifierURL = v
			return nil
		}},
	{Key: "identity_verifier_secret", Default: "", NoFlag: true, Usage: "key that signs requests to the identity verifier (HMAC-SHA-256)",
		set: func(c *Config, v string) error { c.IdentityVerifierSecret = v; return nil }},
	{Key: "bootstrap_admin_password", Default: "", NoFlag: true, Usage: "password of the administrator 'admin' created on the very first start (default: a random one-time password, printed once)",
		set: func(c *Config, v string) error { c.BootstrapAdminPassword = v; return nil }},
	{Key: "sms_sender", Default: "log", Usage: "how one-time codes reach phones: log (development only: codes are written to the server log) or http (the SMS gateway at sms_http_url)",
		set: oneOf(func(c *Config) *string { return &c.SMSSender }, "log", "http")},
	{Key: "sms_http_url", Default: "", Usage: "URL the http SMS sender POSTs {\"phone\",\"text\"} to, signed with sms_http_secret (see One-time codes)",
		set: func(c *Config, v string) error { c.SMSHTTPURL = strings.TrimSpace(v); return nil }},
	{Key: "sms_http_secret", Default: "", NoFlag: true, Usage: "shared secret of the HMAC-SHA-256 X-SSO-Signature on requests to the SMS gateway",
		set: func(c *Config, v string) error { c.SMSHTTPSecret = v; return nil }},
	{Key: "email_sender", Default: "log", Usage: "how one-time codes reach email addresses: log (development only) or smtp",
		set: oneOf(func(c *Config) *string { return &c.EmailSender }, "log", "smtp")},
	{Key: "smtp_host", Default: "", Usage: "mail server of the smtp email sender (STARTTLS is used when offered)",
		set: func(c *Config, v string) error { c.SMTPHost = strings.TrimSpace(v); return nil }},
	{Key: "smtp_port", Default: "587", Usage: "port of the mail server",
		set: intSetting(func(c *Config) *int { return &c.SMTPPort }, 1, 65535)},
	{Key: "smtp_username", Default: "", Usage: "user name for the mail server (empty: no authentication)",
		set: func(c *Config, v string) error { c.SMTPUsername = v; return nil }},
	{Key: "smtp_password", Default: "", NoFlag: true, Usage: "password for the mail server",
		set: func(c *Config, v string) error { c.SMTPPassword = v; return nil }},
	{Key: "smtp_from", Default: "", Usage: "sender address of code emails, such as sso@example.gov.cn",
		set: func(c *Config, v string) error { c.SMTPFrom = strings.TrimSpace(v); return nil }},
	{Key: "self_registration", Default: "true", Usage: "let people create citizen accounts at /register with an SMS code",
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return errors.New("must be true or false")
			}
			c.SelfRegistration = b
			return nil
		}},
	{Key: "otp_send_interval", Default: "60s", Usage: "least time between two one-time messages to one phone number or address",
		set: durationSetting(func(c *Config) *time.Duration { return &c.OTPSendInterval }, time.Second)},
	{Key: "otp_daily_limit", Default: "10", Usage: "most one-time messages to one phone number or address per day",
		set: intSetting(func(c *Config) *int { return &c.OTPDailyLimit }, 1, 1000)},
	{Key: "otp_ip_hourly_limit", Default: "30", Usage: "most one-time messages asked for from one client address per hour, to any destinations",
		set: intSetting(func(c *Config) *int { return &c.OTPIPHourlyLimit }, 1, 100000)},
	{Key: "trusted_proxies", Default: "", Usage: "comma-separated CIDRs or IPs of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (empty: trust no one, the client is the TCP peer)",
		set: trustedProxies},
	{Key: "user_erasure_after", Default: "720h", Usage: "a deleted account's personal data is erased this long after the deletion, leaving a tombstone (id, kind, times)",
		set: durationSetting(func(c *Config) *time.Duration { return &c.UserErasureAfter }, time.Minute)},
	{Key: "client_secret_overlap", Default: "24h", Usage: "after a client secret is rotated the old one keeps working this long (a rotation request may ask for less)",
		set: durationSetting(func(c *Config) *time.Duration { return &c.ClientSecretOverlap }, 0)},
	{Key: "tls_cert_file", Default: "", Usage: "PEM certificate chain for serving HTTPS directly (with tls_key_file; empty: plain HTTP, TLS ends at the proxy); reloaded when the file changes",
		set: func(c *Config, v string) error { c.TLSCertFile = strings.TrimSpace(v); return nil }},
	{Key: "tls_key_file", Default: "", Usage: "PEM private key of tls_cert_file",
		set: func(c *Config, v string) error { c.TLSKeyFile = strings.TrimSpace(v); return nil }},
	{Key: "verify_rate_limit", Default: "600", Usage: "most requests one client address may make per minute to the public signature and licence verification and status endpoints",
		set: intSetting(func(c *Config) *int { return &c.VerifyRateLimit }, 1, 1000000)},
	{Key: "redis_url", Default: "", NoFlag: true, Usage: "redis://[:password@]host[:port][/db] or rediss:// (TLS) for the per-address rate-limit counters (verification endpoints, QR codes); empty: counted in the database. When Redis fails they are counted in the database until it answers",
		set: redisURL},
}

// redisURL checks the form of a Redis URL; ratelimit.RedisOptions parses
// it. Errors never repeat the URL, which may hold a password.
func redisURL(c *Config, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		c.RedisURL = ""
		return nil
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return errors.New("must start with redis:// or rediss://")
	case u.Hostname() == "":
		return errors.New("must name a host")
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 0 {
			return errors.New("the path must be a database number, for example /0")
		}
	}
	c.RedisURL = v
	return nil
}

// trustedProxies parses a comma-separated list of CIDRs or single addresses.
func trustedProxies(c *Config, v string) error {
	var prefixes []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := parsePrefix(f)
		if err != nil || !p.IsValid() {
			return fmt.Errorf("%q is not a CIDR (10.0.0.0/8) or an IP address", f)
		}
		prefixes = append(prefixes, p)
	}
	c.TrustedProxies = prefixes
	return nil
}

// parsePrefix reads a CIDR or a lone address, which stands for itself alone.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func oneOf(field func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		v = strings.ToLower(strings.TrimSpace(v))
		for _, a := range allowed {
			if v == a {
				*field(c) = v
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func intSetting(field func(*Config) *int, lo, hi int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		*field(c) = n
		return nil
	}
}

func durationSetting(field func(*Config) *time.Duration, lo time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < lo {
			return fmt.Errorf("must be a duration such as 30s, 15m or 1h, at least %s", lo)
		}
		*field(c) = d
		return nil
	}
}

// Flags holds the flags one command registered, to be read after parsing.
type Flags struct {
	fs     *flag.FlagSet
	values map[string]*string
	file   *string
}

// RegisterFlags adds --config and one flag per option to fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: map[string]*string{}}
	f.file = fs.String("config", "", "YAML configuration file (also $SSO_CONFIG)")
	for _, o := range Options {
		if o.NoFlag {
			continue
		}
		f.values[o.Key] = fs.String(o.Flag(), "", o.Usage)
	}
	return f
}

// Load builds the configuration from defaults, the YAML file (--config or
// $SSO_CONFIG), the environment and the flags that were set, then checks it.
// getenv is os.Getenv outside tests. Errors name the setting and the reason.
func Load(f *Flags, getenv func(string) string) (*Config, error) {
	c := &Config{}
	for _, o := range Options {
		if err := o.set(c, o.Default); err != nil && o.Default != "" {
			return nil, fmt.Errorf("default of %s: %w", o.Key, err)
		}
	}
	path := getenv("SSO_CONFIG")
	if f != nil && *f.file != "" {
		path = *f.file
	}
	if path != "" {
		if err := loadFile(c, path); err != nil {
			return nil, err
		}
	}
	for _, o := range Options {
		if v, ok := lookup(getenv, o.Env()); ok {
			if err := o.set(c, v); err != nil {
				return nil, fmt.Errorf("invalid %s=%q: %w", o.Env(), maskSecret(o, v), err)
			}
		}
	}
	if f != nil {
		var err error
		f.fs.Visit(func(fl *flag.Flag) {
			for _, o := range Options {
				if o.Flag() == fl.Name && err == nil {
					if e := o.set(c, fl.Value.String()); e != nil {
						err = fmt.Errorf("invalid --%s=%q: %w", fl.Name, fl.Value.String(), e)
					}
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func lookup(getenv func(string) string, key string) (string, bool) {
	v := getenv(key)
	return v, v != ""
}

func maskSecret(o Option, v string) string {
	if o.NoFlag && v != "" {
		return "…"
	}
	return v
}

func loadFile(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	known := map[string]Option{}
	for _, o := range Options {
		known[o.Key] = o
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o, ok := known[k]
		if !ok {
			return fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		v := raw[k]
		switch v.(type) {
		case map[string]any, []any:
			return fmt.Errorf("config file %s: %s must be a single value", path, k)
		}
		if err := o.set(c, fmt.Sprint(v)); err != nil {
			return fmt.Errorf("config file %s: invalid %s: %w", path, k, err)
		}
	}
	return nil
}

// finish fills the derived defaults and checks settings that depend on each other.
func (c *Config) finish() error {
	if c.Issuer == "" {
		_, port, _ := net.SplitHostPort(c.Addr)
		c.Issuer = "http://localhost:" + port
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("invalid SSO_ISSUER=%q: must be an absolute http(s) URL", c.Issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("invalid SSO_ISSUER=%q: must not have a query, fragment or user info", c.Issuer)
	}
	if u.Scheme != "https" && !IsLocalhost(u.Hostname()) {
		return fmt.Errorf("invalid SSO_ISSUER=%q: must use https unless the host is localhost", c.Issuer)
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.Join(c.DataDir, "sso.db")
	}
	if !strings.HasPrefix(c.DatabaseURL, "sqlite://") && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return errors.New("invalid SSO_DATABASE_URL: must start with sqlite:// or postgres://")
	}
	if c.IdentityVerifierURL != "" && c.IdentityVerifierSecret == "" {
		return errors.New("invalid configuration: SSO_IDENTITY_VERIFIER_URL needs SSO_IDENTITY_VERIFIER_SECRET")
	}
	if c.KeyEncryptionKey != "" && c.KeyEncryptionKeyFile != "" {
		return errors.New("invalid configuration: set SSO_KEY_ENCRYPTION_KEY or SSO_KEY_ENCRYPTION_KEY_FILE, not both")
	}
	if c.KeyEncryptionKeyFile == "" && c.KeyEncryptionKey == "" {
		c.KeyEncryptionKeyFile = filepath.Join(c.DataDir, "key-encryption.key")
	}
	if err := c.checkTLSFiles(); err != nil {
		return err
	}
	return nil
}

// checkTLSFiles refuses at start-up a TLS setting that could not serve: one
// file without the other, an unreadable file, or a key that is not the
// certificate's. Each error names the setting to fix.
func (c *Config) checkTLSFiles() error {
	switch {
	case c.TLSCertFile == "" && c.TLSKeyFile == "":
		return nil
	case c.TLSCertFile == "":
		return errors.New("invalid configuration: SSO_TLS_KEY_FILE needs SSO_TLS_CERT_FILE")
	case c.TLSKeyFile == "":
		return errors.New("invalid configuration: SSO_TLS_CERT_FILE needs SSO_TLS_KEY_FILE")
	}
	certPEM, err := os.ReadFile(c.TLSCertFile)
	if err != nil {
		return fmt.Errorf("invalid SSO_TLS_CERT_FILE=%q: %w", c.TLSCertFile, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("invalid SSO_TLS_CERT_FILE=%q: no PEM CERTIFICATE block", c.TLSCertFile)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return fmt.Errorf("invalid SSO_TLS_CERT_FILE=%q: %w", c.TLSCertFile, err)
	}
	keyPEM, err := os.ReadFile(c.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("invalid SSO_TLS_KEY_FILE=%q: %w", c.TLSKeyFile, err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("invalid SSO_TLS_KEY_FILE=%q: not a usable private key of SSO_TLS_CERT_FILE: %w", c.TLSKeyFile, err)
	}
	return nil
}

// IsLocalhost reports whether host names this machine's loopback.
func IsLocalhost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SQLitePath returns the file of a sqlite:// database URL, or "" for PostgreSQL.
func (c *Config) SQLitePath() string {
	if p, ok := strings.CutPrefix(c.DatabaseURL, "sqlite://"); ok {
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		return p
	}
	return ""
}

// LongestSignedTokenLifetime is how long a retired signing key must stay
// published: the longest life of a token it may have signed.
func (c *Config) LongestSignedTokenLifetime() time.Duration {
	return max(c.AccessTokenLifetime, c.IDTokenLifetime)
}

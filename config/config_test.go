package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func load(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Load(f, envOf(env))
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "localhost:8080" || c.Issuer != "http://localhost:8080" || c.DataDir != "./data" {
		t.Fatalf("defaults: addr %q issuer %q data dir %q", c.Addr, c.Issuer, c.DataDir)
	}
	if c.DatabaseURL != "sqlite://data/sso.db" {
		t.Fatalf("default database URL %q", c.DatabaseURL)
	}
	if c.KeyEncryptionKeyFile != filepath.Join("data", "key-encryption.key") {
		t.Fatalf("default key file %q", c.KeyEncryptionKeyFile)
	}
	if c.ShutdownTimeout != 30*time.Second || c.PasswordHashMemoryKiB != 19456 {
		t.Fatalf("defaults: shutdown %s, argon2 memory %d", c.ShutdownTimeout, c.PasswordHashMemoryKiB)
	}
}

func TestPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sso.yaml")
	yaml := "addr: 127.0.0.1:7000\nlog_level: warn\nlog_format: json\nhttp_read_timeout: 45s\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, []string{"--config", file, "--addr", "127.0.0.1:9000"},
		map[string]string{"SSO_ADDR": "127.0.0.1:8000", "SSO_LOG_LEVEL": "debug"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"flag beats env and file", c.Addr, "127.0.0.1:9000"},
		{"env beats file", c.LogLevel, "debug"},
		{"file beats default", c.LogFormat, "json"},
		{"file duration", c.HTTPReadTimeout.String(), "45s"},
		{"issuer follows addr port", c.Issuer, "http://localhost:9000"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sso.yaml")
	if err := os.WriteFile(file, []byte("data_dir: /var/lib/sso\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, nil, map[string]string{"SSO_CONFIG": file})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/sso" || c.DatabaseURL != "sqlite:///var/lib/sso/sso.db" {
		t.Fatalf("data dir %q, database %q", c.DataDir, c.DatabaseURL)
	}
}

func TestInvalidSettingsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badFile, []byte("adr: x\n"), 0o600)
	brokenFile := filepath.Join(dir, "broken.yaml")
	os.WriteFile(brokenFile, []byte("addr: [unclosed\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad log level", nil, map[string]string{"SSO_LOG_LEVEL": "loud"}, "SSO_LOG_LEVEL"},
		{"bad log format flag", []string{"--log-format", "xml"}, nil, "--log-format"},
		{"bad addr", nil, map[string]string{"SSO_ADDR": "8080"}, "SSO_ADDR"},
		{"http issuer off localhost", nil, map[string]string{"SSO_ISSUER": "http://sso.example.gov.cn"}, "https"},
		{"issuer with query", nil, map[string]string{"SSO_ISSUER": "https://sso.example.gov.cn/?x=1"}, "SSO_ISSUER"},
		{"relative issuer", nil, map[string]string{"SSO_ISSUER": "sso.example"}, "SSO_ISSUER"},
		{"bad database url", nil, map[string]string{"SSO_DATABASE_URL": "mysql://x"}, "SSO_DATABASE_URL"},
		{"bad duration", nil, map[string]string{"SSO_SHUTDOWN_TIMEOUT": "soon"}, "SSO_SHUTDOWN_TIMEOUT"},
		{"pool size out of range", nil, map[string]string{"SSO_DB_MAX_OPEN_CONNS": "-1"}, "SSO_DB_MAX_OPEN_CONNS"},
		{"argon2 memory too small", nil, map[string]string{"SSO_PASSWORD_HASH_MEMORY_KIB": "10"}, "SSO_PASSWORD_HASH_MEMORY_KIB"},
		{"both key settings", nil, map[string]string{"SSO_KEY_ENCRYPTION_KEY": "x", "SSO_KEY_ENCRYPTION_KEY_FILE": "/k"}, "not both"},
		{"unknown file key", []string{"--config", badFile}, nil, `unknown key "adr"`},
		{"broken yaml", []string{"--config", brokenFile}, nil, "broken.yaml"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, nil, "config file"},
		{"bad trusted proxy", nil, map[string]string{"SSO_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "SSO_TRUSTED_PROXIES"},
		{"redis url scheme", nil, map[string]string{"SSO_REDIS_URL": "http://127.0.0.1:6379"}, "SSO_REDIS_URL"},
		{"redis url without scheme", nil, map[string]string{"SSO_REDIS_URL": "127.0.0.1:6379"}, "SSO_REDIS_URL"},
		{"redis url without host", nil, map[string]string{"SSO_REDIS_URL": "redis:///0"}, "must name a host"},
		{"redis url database", nil, map[string]string{"SSO_REDIS_URL": "redis://127.0.0.1:6379/cache"}, "database number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, tc.env)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestSecretsAreNotEchoed(t *testing.T) {
	_, err := load(t, nil, map[string]string{"SSO_KEY_ENCRYPTION_KEY": "s3cr3t-value", "SSO_KEY_ENCRYPTION_KEY_FILE": "/k"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatalf("error leaks the secret or is missing: %v", err)
	}
}

func TestRedisURL(t *testing.T) {
	for _, v := range []string{"", "redis://127.0.0.1:6379/0", "redis://cache.internal", "rediss://sso:pw@cache.internal:6380/2"} {
		c, err := load(t, nil, map[string]string{"SSO_REDIS_URL": v})
		if err != nil || c.RedisURL != v {
			t.Errorf("%q: %v, RedisURL %q", v, err, c.RedisURL)
		}
	}
	// The URL may hold a password: an error does not repeat it, and it is
	// no flag, since command lines show up in ps.
	_, err := load(t, nil, map[string]string{"SSO_REDIS_URL": "redis://:s3cr3t-value@cache.internal/db"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatalf("error leaks the password or is missing: %v", err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	RegisterFlags(fs)
	if fs.Lookup("redis-url") != nil {
		t.Fatal("--redis-url is a flag")
	}
}

func TestLocalhostIssuersMayUseHTTP(t *testing.T) {
	for _, iss := range []string{"http://localhost:8080", "http://127.0.0.1:9000", "http://[::1]:8080", "http://sso.localhost"} {
		if _, err := load(t, nil, map[string]string{"SSO_ISSUER": iss}); err != nil {
			t.Errorf("%s: %v", iss, err)
		}
	}
}

// TestREADMEDocumentsEveryOption keeps the README's configuration table true.
func TestREADMEDocumentsEveryOption(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, o := range Options {
		if !strings.Contains(readme, "`"+o.Env()+"`") {
			t.Errorf("README does not document %s", o.Env())
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	tests := []struct {
		name, value string
		want        []string
	}{
		{"empty trusts no one", "", nil},
		{"cidr", "10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"lone addresses", "127.0.0.1, ::1", []string{"127.0.0.1/32", "::1/128"}},
		{"host bits are masked", "192.168.1.7/24,,", []string{"192.168.1.0/24"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, nil, map[string]string{"SSO_TRUSTED_PROXIES": tc.value})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range c.TrustedProxies {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

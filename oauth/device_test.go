package oauth_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/oauth/signing"
	"github.com/govsso/sso/users"
)

func TestGenerateUserCode(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		code, err := oauth.GenerateUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != 8 || strings.Trim(code, "BCDFGHJKLMNPQRSTVWXZ") != "" {
			t.Fatalf("user code %q is not 8 letters of the alphabet", code)
		}
		if got, ok := oauth.NormalizeUserCode(oauth.FormatUserCode(code)); !ok || got != code {
			t.Fatalf("formatted %q normalizes to %q, %v", oauth.FormatUserCode(code), got, ok)
		}
		seen[code] = true
	}
	if len(seen) < 199 { // 200 draws from 20^8 codes
		t.Fatalf("only %d distinct codes in 200", len(seen))
	}
}

func TestNormalizeUserCode(t *testing.T) {
	tests := []struct {
		typed, want string
		ok          bool
	}{
		{"BCDF-GHJK", "BCDFGHJK", true},
		{"bcdf-ghjk", "BCDFGHJK", true},
		{" bcdf ghjk ", "BCDFGHJK", true},
		{"BCDFGHJK", "BCDFGHJK", true},
		{"BCDF-GHJ", "", false},   // too short
		{"BCDF-GHJKL", "", false}, // too long
		{"ABCD-GHJK", "", false},  // vowel
		{"BCD0-GHJK", "", false},  // digit
		{"BCDF_GHJK", "", false},  // other punctuation
		{"ＢCDF-GHJK", "", false},  // full-width letter
		{strings.Repeat("-", 40), "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := oauth.NormalizeUserCode(tc.typed)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeUserCode(%q) = %q, %v; want %q, %v", tc.typed, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFormatUserCode(t *testing.T) {
	if got := oauth.FormatUserCode("BCDFGHJK"); got != "BCDF-GHJK" {
		t.Fatalf("got %q", got)
	}
}

// deviceEnv is a provider on a test server with a kiosk client and a person.
type deviceEnv struct {
	d       *db.DB
	store   *oauth.SQLStore
	users   *users.SQLStore
	p       *oauth.Provider
	url     string
	user    *users.User
	session *users.Session
	secret  string // of the confidential client "tv"
}

func newDeviceEnv(t testing.TB, d *db.DB) *deviceEnv {
	t.Helper()
	ctx := context.Background()
	k, err := kek.New(randomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	store := oauth.NewSQLStore(d, k)
	keys := signing.NewManager(d, k)
	if _, err := keys.EnsureKeys(ctx); err != nil {
		t.Fatal(err)
	}
	people := users.NewSQLStore(d, k)
	u := &users.User{Username: "p" + strings.ToLower(rand.Text()[:10]), Kind: users.KindCitizen, DisplayName: "Test Person"}
	if err := people.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	secrets := oauth.NewSecretHasher(randomKey(t))
	secret, err := oauth.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*oauth.Client{
		{ID: "kiosk", Name: "Kiosk", Public: true, GrantTypes: []string{oauth.GrantDeviceCode, oauth.GrantRefreshToken},
			Scopes: []string{"openid", "profile", "offline_access"}},
		{ID: "tv", Name: "TV", GrantTypes: []string{oauth.GrantDeviceCode}, Scopes: []string{"openid"}, SecretHash: secrets.Hash(secret)},
		{ID: "web", Name: "Web", GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{"openid"}, SecretHash: secrets.Hash(secret)},
	} {
		c.ApplyDefaults()
		if err := store.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p := oauth.NewProvider(oauth.Config{
		Issuer: srv.URL, AccessTokenLifetime: time.Hour, RefreshTokenLifetime: 24 * time.Hour, IDTokenLifetime: time.Hour,
		AuthCodeLifetime: time.Minute, HMACKey: randomKey(t), PairwiseKey: randomKey(t),
	}, oauth.Dependencies{
		DB: d, Store: store, Keys: keys, Users: people, Audit: audit.NewLog(d), Secrets: secrets,
		Logger:   slog.New(slog.DiscardHandler),
		Sessions: func(*http.Request) (*users.Session, error) { return nil, errors.New("no browser here") },
	})
	p.Register(mux)
	now := time.Now().UTC()
	s := &users.Session{ID: "sid-" + rand.Text(), UserID: u.ID, ACR: 1, AMR: []string{"pwd"}, AuthTime: now.Add(-time.Minute).Truncate(time.Second)}
	return &deviceEnv{d: d, store: store, users: people, p: p, url: srv.URL, user: u, session: s, secret: secret}
}

// post sends a form, with Basic authentication when user is set, and
// decodes the JSON answer.
func (e *deviceEnv) post(t testing.TB, path string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s: %d, body is not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// poll asks the token endpoint for the tokens of a device code as the kiosk.
func (e *deviceEnv) poll(t testing.TB, deviceCode string) (int, map[string]any) {
	t.Helper()
	return e.post(t, "/oauth2/token", url.Values{"grant_type": {oauth.GrantDeviceCode}, "device_code": {deviceCode}, "client_id": {"kiosk"}}, "", "")
}

// authorize starts a device authorization for the kiosk.
func (e *deviceEnv) authorize(t testing.TB, scope string) (deviceCode, userCode string) {
	t.Helper()
	status, out := e.post(t, "/oauth2/device/authorize", url.Values{"client_id": {"kiosk"}, "scope": {scope}}, "", "")
	if status != http.StatusOK {
		t.Fatalf("device authorization: %d %v", status, out)
	}
	return out["device_code"].(string), out["user_code"].(string)
}

// seed stores a device authorization in a given state and returns its device code.
func (e *deviceEnv) seed(t *testing.T, clientID string, status oauth.DeviceStatus, expiresIn time.Duration, scopes ...string) string {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	code := base64.RawURLEncoding.EncodeToString(raw)
	userCode, err := oauth.GenerateUserCode()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	a := &oauth.DeviceAuthorization{DeviceCodeHash: hashCode(code), UserCode: userCode, ClientID: clientID, Scopes: scopes,
		Status: status, Interval: 5 * time.Second, CreatedAt: now.Add(-time.Minute), ExpiresAt: now.Add(expiresIn)}
	if status != oauth.DevicePending {
		a.UserID, a.BrowserSessionID, a.ACR, a.AMR, a.AuthTime = e.user.ID, e.session.ID, e.session.ACR, e.session.AMR, e.session.AuthTime
	}
	if err := e.store.CreateDeviceAuthorization(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return code
}

// hashCode is how the server keys a device code: SHA-256, base64url.
func hashCode(code string) string {
	sum := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestDeviceAuthorizationEndpoint(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		tests := []struct {
			name       string
			form       url.Values
			user, pass string
			status     int
			err        string
		}{
			{"public client by client_id", url.Values{"client_id": {"kiosk"}, "scope": {"openid profile"}}, "", "", 200, ""},
			{"public client without scope", url.Values{"client_id": {"kiosk"}}, "", "", 200, ""},
			{"confidential client with Basic", url.Values{"scope": {"openid"}}, "tv", e.secret, 200, ""},
			{"confidential client with a wrong secret", url.Values{"scope": {"openid"}}, "tv", "wrong", 401, "invalid_client"},
			{"confidential client without a secret", url.Values{"client_id": {"tv"}}, "", "", 401, "invalid_client"},
			{"unknown client", url.Values{"client_id": {"nobody"}}, "", "", 401, "invalid_client"},
			{"client without the device grant", url.Values{"scope": {"openid"}}, "web", e.secret, 400, "unauthorized_client"},
			{"scope the client may not have", url.Values{"client_id": {"kiosk"}, "scope": {"openid email"}}, "", "", 400, "invalid_scope"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				status, out := e.post(t, "/oauth2/device/authorize", tc.form, tc.user, tc.pass)
				if status != tc.status || (tc.err != "" && out["error"] != tc.err) {
					t.Fatalf("got %d %v, want %d %q", status, out, tc.status, tc.err)
				}
				if tc.err != "" {
					return
				}
				userCode, _ := out["user_code"].(string)
				code, ok := oauth.NormalizeUserCode(userCode)
				if !ok || len(userCode) != 9 || userCode[4] != '-' {
					t.Fatalf("user_code %q", userCode)
				}
				if out["verification_uri"] != e.url+"/device" ||
					out["verification_uri_complete"] != e.url+"/device?user_code="+userCode ||
					out["expires_in"] != 600.0 || out["interval"] != 5.0 {
					t.Fatalf("response %v", out)
				}
				deviceCode, _ := out["device_code"].(string)
				if raw, err := base64.RawURLEncoding.DecodeString(deviceCode); err != nil || len(raw) != 32 {
					t.Fatalf("device_code is not 32 random bytes: %v", err)
				}
				a, err := e.store.DeviceAuthorizationByUserCode(context.Background(), code)
				if err != nil {
					t.Fatal(err)
				}
				if a.DeviceCodeHash != hashCode(deviceCode) || a.Status != oauth.DevicePending {
					t.Fatalf("stored %+v: want only the hash of the device code, pending", a)
				}
			})
		}
	})
}

func TestDeviceTokenStates(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		tests := []struct {
			name   string
			code   func() string
			status int
			err    string
		}{
			{"pending", func() string { return e.seed(t, "kiosk", oauth.DevicePending, time.Minute) }, 400, "authorization_pending"},
			{"denied", func() string { return e.seed(t, "kiosk", oauth.DeviceDenied, time.Minute) }, 400, "access_denied"},
			{"expired while pending", func() string { return e.seed(t, "kiosk", oauth.DevicePending, -time.Second) }, 400, "expired_token"},
			{"expired after approval", func() string { return e.seed(t, "kiosk", oauth.DeviceApproved, -time.Second, "openid") }, 400, "expired_token"},
			{"consumed", func() string { return e.seed(t, "kiosk", oauth.DeviceConsumed, time.Minute, "openid") }, 400, "invalid_grant"},
			{"unknown", func() string { return base64.RawURLEncoding.EncodeToString(randomKey(t)) }, 400, "invalid_grant"},
			{"issued to another client", func() string { return e.seed(t, "tv", oauth.DeviceApproved, time.Minute, "openid") }, 400, "invalid_grant"},
			{"approved", func() string { return e.seed(t, "kiosk", oauth.DeviceApproved, time.Minute, "openid", "profile") }, 200, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				status, out := e.poll(t, tc.code())
				if status != tc.status || out["error"] != nilIfEmpty(tc.err) {
					t.Fatalf("got %d %v, want %d %q", status, out, tc.status, tc.err)
				}
				if tc.err == "" && (out["access_token"] == nil || out["id_token"] == nil || out["token_type"] != "bearer") {
					t.Fatalf("tokens missing: %v", out)
				}
			})
		}
		t.Run("missing device_code", func(t *testing.T) {
			status, out := e.post(t, "/oauth2/token", url.Values{"grant_type": {oauth.GrantDeviceCode}, "client_id": {"kiosk"}}, "", "")
			if status != 400 || out["error"] != "invalid_request" {
				t.Fatalf("got %d %v", status, out)
			}
		})
		t.Run("client authentication fails", func(t *testing.T) {
			code := e.seed(t, "tv", oauth.DeviceApproved, time.Minute, "openid")
			status, out := e.post(t, "/oauth2/token", url.Values{"grant_type": {oauth.GrantDeviceCode}, "device_code": {code}}, "tv", "wrong")
			if status != 401 || out["error"] != "invalid_client" {
				t.Fatalf("got %d %v", status, out)
			}
		})
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestDeviceSlowDown(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		ctx := context.Background()
		code := e.seed(t, "kiosk", oauth.DevicePending, time.Minute)
		if _, out := e.poll(t, code); out["error"] != "authorization_pending" {
			t.Fatalf("first poll: %v", out)
		}
		if _, out := e.poll(t, code); out["error"] != "slow_down" {
			t.Fatalf("second poll at once: %v", out)
		}
		a := lockedDevice(t, e, code)
		if a.Interval != 10*time.Second {
			t.Fatalf("interval after slow_down is %v, want 10s", a.Interval)
		}
		// Put the last poll 9 s back: still too soon for the raised interval.
		if err := e.store.RecordDevicePoll(ctx, hashCode(code), time.Now().Add(-9*time.Second), a.Interval); err != nil {
			t.Fatal(err)
		}
		if _, out := e.poll(t, code); out["error"] != "slow_down" {
			t.Fatalf("poll 9 s after the last one: %v", out)
		}
		if a := lockedDevice(t, e, code); a.Interval != 15*time.Second {
			t.Fatalf("interval after the second slow_down is %v, want 15s", a.Interval)
		}
		if err := e.store.RecordDevicePoll(ctx, hashCode(code), time.Now().Add(-16*time.Second), 15*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, out := e.poll(t, code); out["error"] != "authorization_pending" {
			t.Fatalf("poll after waiting the interval: %v", out)
		}
	})
}

func lockedDevice(t *testing.T, e *deviceEnv, code string) *oauth.DeviceAuthorization {
	t.Helper()
	var a *oauth.DeviceAuthorization
	err := e.d.InTx(context.Background(), func(ctx context.Context) error {
		var err error
		a, err = e.store.LockDeviceAuthorization(ctx, hashCode(code))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDeviceCodeConsumedOnce(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		for round := range 3 {
			code := e.seed(t, "kiosk", oauth.DeviceApproved, time.Minute, "openid")
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			errs := make([]any, 2)
			for i := range statuses {
				wg.Go(func() {
					var out map[string]any
					statuses[i], out = e.poll(t, code)
					errs[i] = out["error"]
				})
			}
			wg.Wait()
			slices.Sort(statuses)
			if statuses[0] != 200 || statuses[1] != 400 || !slices.Contains(errs, any("invalid_grant")) {
				t.Fatalf("round %d: statuses %v, errors %v; want one 200 and one invalid_grant", round, statuses, errs)
			}
		}
	})
}

// A person acting for an enterprise approves a kiosk: its tokens say so,
// as those of the authorization code flow do.
func TestDeviceTokensCarryActingFor(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		ctx := context.Background()
		deviceCode, userCode := e.authorize(t, "openid profile")
		acting := *e.session
		acting.ActingFor = "enterprise-account-1"
		if err := e.p.DecideDevice(ctx, userCode, true, &acting, "192.0.2.1", "test"); err != nil {
			t.Fatal(err)
		}
		status, tok := e.poll(t, deviceCode)
		if status != 200 {
			t.Fatalf("tokens: %d %v", status, tok)
		}
		if claims := jwtClaims(t, tok["id_token"].(string)); claims["acting_for"] != "enterprise-account-1" {
			t.Errorf("id token acting_for %v, want enterprise-account-1", claims["acting_for"])
		}
		if status, out := e.userinfo(t, tok["access_token"].(string)); status != 200 || out["acting_for"] != "enterprise-account-1" {
			t.Errorf("userinfo: %d %v, want acting_for", status, out)
		}
	})
}

func TestDeviceFlow(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		ctx := context.Background()
		deviceCode, userCode := e.authorize(t, "openid profile offline_access")

		a, c, err := e.p.PendingDevice(ctx, strings.ToLower(userCode))
		if err != nil || c.ID != "kiosk" || !slices.Equal(a.Scopes, []string{"openid", "profile", "offline_access"}) {
			t.Fatalf("pending device: %v %+v", err, a)
		}
		if _, _, err := e.p.PendingDevice(ctx, "BCDF-BCDF"); !errors.Is(err, oauth.ErrUnknownUserCode) {
			t.Fatalf("unknown code: %v", err)
		}
		if err := e.p.DecideDevice(ctx, userCode, true, e.session, "192.0.2.1", "test"); err != nil {
			t.Fatal(err)
		}
		if err := e.p.DecideDevice(ctx, userCode, false, e.session, "192.0.2.1", "test"); !errors.Is(err, oauth.ErrUnknownUserCode) {
			t.Fatalf("deciding twice: %v", err)
		}
		code, _ := oauth.NormalizeUserCode(userCode)
		stored, err := e.store.DeviceAuthorizationByUserCode(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Status != oauth.DeviceApproved || stored.UserID != e.user.ID || stored.BrowserSessionID != e.session.ID ||
			stored.ACR != 1 || !slices.Equal(stored.AMR, []string{"pwd"}) || !stored.AuthTime.Equal(e.session.AuthTime) {
			t.Fatalf("approval did not record the person's sign-in: %+v", stored)
		}

		status, tok := e.poll(t, deviceCode)
		if status != 200 || tok["refresh_token"] == nil || tok["id_token"] == nil || tok["scope"] != "openid profile offline_access" {
			t.Fatalf("tokens: %d %v", status, tok)
		}
		access := tok["access_token"].(string)
		if status, out := e.poll(t, deviceCode); status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("second poll after the tokens: %d %v", status, out)
		}

		t.Run("id token carries the approver's sign-in", func(t *testing.T) {
			claims := jwtClaims(t, tok["id_token"].(string))
			if claims["sub"] != e.user.ID || claims["aud"] == nil || claims["sid"] != e.session.ID || claims["acr"] != "1" ||
				claims["auth_time"] != float64(e.session.AuthTime.Unix()) || claims["at_hash"] == nil || claims["iss"] != e.url {
				t.Fatalf("claims %v", claims)
			}
		})
		t.Run("access token works at userinfo", func(t *testing.T) {
			if status, out := e.userinfo(t, access); status != 200 || out["sub"] != e.user.ID || out["name"] != "Test Person" {
				t.Fatalf("userinfo: %d %v", status, out)
			}
		})
		t.Run("refresh token refreshes", func(t *testing.T) {
			status, out := e.post(t, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"kiosk"}}, "", "")
			if status != 200 || out["access_token"] == nil || out["id_token"] == nil {
				t.Fatalf("refresh: %d %v", status, out)
			}
			access = out["access_token"].(string)
		})
		t.Run("access token can be revoked", func(t *testing.T) {
			if status, out := e.post(t, "/oauth2/revoke", url.Values{"token": {access}, "client_id": {"kiosk"}}, "", ""); status != 200 {
				t.Fatalf("revoke: %d %v", status, out)
			}
			if status, _ := e.userinfo(t, access); status != 401 {
				t.Fatalf("revoked token at userinfo: %d", status)
			}
		})
		t.Run("audit", func(t *testing.T) {
			for _, action := range []string{"oauth.device_authorize", "oauth.device_approve", "oauth.token"} {
				events, err := audit.NewLog(d).List(ctx, audit.Filter{ClientID: "kiosk", Action: action})
				if err != nil || len(events) == 0 {
					t.Errorf("no %s event: %v", action, err)
				}
			}
		})
	})
}

func TestDeviceDenied(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		deviceCode, userCode := e.authorize(t, "openid")
		if err := e.p.DecideDevice(context.Background(), userCode, false, e.session, "192.0.2.1", "test"); err != nil {
			t.Fatal(err)
		}
		if status, out := e.poll(t, deviceCode); status != 400 || out["error"] != "access_denied" {
			t.Fatalf("got %d %v", status, out)
		}
	})
}

func TestDeviceApprovalByDisabledAccountGivesNoTokens(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		e := newDeviceEnv(t, d)
		code := e.seed(t, "kiosk", oauth.DeviceApproved, time.Minute, "openid")
		disable := func(u *users.User) error { u.Status = users.StatusDisabled; return nil }
		if _, err := e.users.Update(context.Background(), e.user.ID, disable); err != nil {
			t.Fatal(err)
		}
		if status, out := e.poll(t, code); status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("got %d %v", status, out)
		}
	})
}

func (e *deviceEnv) userinfo(t *testing.T, access string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// jwtClaims reads a JWT's payload; the e2e test verifies signatures.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDeviceStore(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s := newStore(t, d)
		ctx := context.Background()
		now := time.Now().UTC()
		seed := func(expires time.Time) *oauth.DeviceAuthorization {
			code, err := oauth.GenerateUserCode()
			if err != nil {
				t.Fatal(err)
			}
			a := &oauth.DeviceAuthorization{DeviceCodeHash: hashCode(rand.Text()), UserCode: code, ClientID: "kiosk",
				Scopes: []string{"openid"}, Status: oauth.DevicePending, Interval: 5 * time.Second, CreatedAt: now, ExpiresAt: expires}
			if err := s.CreateDeviceAuthorization(ctx, a); err != nil {
				t.Fatal(err)
			}
			return a
		}
		live, expired := seed(now.Add(time.Minute)), seed(now.Add(-2*time.Hour))

		t.Run("a user code is unique", func(t *testing.T) {
			dup := *live
			dup.DeviceCodeHash = hashCode(rand.Text())
			if err := s.CreateDeviceAuthorization(ctx, &dup); !errors.Is(err, db.ErrConflict) {
				t.Fatalf("got %v, want ErrConflict", err)
			}
		})
		t.Run("an expired code cannot be decided", func(t *testing.T) {
			err := s.DecideDeviceAuthorization(ctx, expired.UserCode, true, &oauth.DeviceAuthorization{UserID: "u"}, now)
			if !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
		t.Run("only an approved code is consumed", func(t *testing.T) {
			if err := s.ConsumeDeviceAuthorization(ctx, live.DeviceCodeHash, now); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("consuming a pending code: %v", err)
			}
			if err := s.DecideDeviceAuthorization(ctx, live.UserCode, true, &oauth.DeviceAuthorization{UserID: "u"}, now); err != nil {
				t.Fatal(err)
			}
			if err := s.DecideDeviceAuthorization(ctx, live.UserCode, false, &oauth.DeviceAuthorization{UserID: "u"}, now); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("deciding twice: %v", err)
			}
			if err := s.ConsumeDeviceAuthorization(ctx, live.DeviceCodeHash, now); err != nil {
				t.Fatal(err)
			}
			if err := s.ConsumeDeviceAuthorization(ctx, live.DeviceCodeHash, now); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("consuming twice: %v", err)
			}
		})
		t.Run("purge removes what expired before the cut-off", func(t *testing.T) {
			n, err := s.PurgeDeviceAuthorizations(ctx, now.Add(-time.Hour))
			if err != nil || n != 1 {
				t.Fatalf("purged %d, %v; want 1", n, err)
			}
			if _, err := s.DeviceAuthorizationByUserCode(ctx, expired.UserCode); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("expired row: %v", err)
			}
			if _, err := s.DeviceAuthorizationByUserCode(ctx, live.UserCode); err != nil {
				t.Fatalf("live row: %v", err)
			}
		})
	})
}

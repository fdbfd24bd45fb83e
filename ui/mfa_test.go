package ui

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// The services cmd/sso hands to New must fit the interfaces ui declares.
var (
	_ SecondFactor  = (*users.TOTP)(nil)
	_ MFAChallenges = (*users.MFAChallenges)(nil)
)

// fakeTOTP is one account's two-step verification, in memory, checking
// real TOTP codes of a generated secret.
type fakeTOTP struct {
	mu       sync.Mutex
	userID   string
	secret   []byte // nil until enrolment confirmed
	pending  []byte
	recovery []string
	locked   bool
	verified []users.SecondFactor
}

func (f *fakeTOTP) HasTOTP(_ context.Context, userID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return userID == f.userID && f.secret != nil, nil
}

// check is the fake's Verify: a code of the current step (±1) or an unused recovery code.
func (f *fakeTOTP) check(userID, code string) (users.SecondFactor, error) {
	switch {
	case f.locked:
		return "", &users.LockedError{Until: time.Now().Add(time.Hour)}
	case userID != f.userID || f.secret == nil:
		return "", users.ErrTOTPNotEnabled
	case validCode(f.secret, code):
		return users.FactorTOTP, nil
	}
	if i := slices.Index(f.recovery, code); i >= 0 {
		f.recovery = slices.Delete(f.recovery, i, i+1)
		return users.FactorRecoveryCode, nil
	}
	return "", users.ErrInvalidCode
}

func validCode(secret []byte, code string) bool {
	for _, d := range []time.Duration{-users.TOTPPeriod, 0, users.TOTPPeriod} {
		if users.TOTPCode(secret, time.Now().Add(d), users.TOTPDigits) == code {
			return true
		}
	}
	return false
}

func (f *fakeTOTP) Verify(_ context.Context, userID, code string, _ users.RequestMeta) (users.SecondFactor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind, err := f.check(userID, code)
	if err == nil {
		f.verified = append(f.verified, kind)
	}
	return kind, err
}

func (f *fakeTOTP) Status(_ context.Context, userID string) (users.TOTPStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if userID != f.userID || f.secret == nil {
		return users.TOTPStatus{}, nil
	}
	return users.TOTPStatus{Enabled: true, EnabledAt: time.Now(), RecoveryCodesLeft: len(f.recovery)}, nil
}

func (f *fakeTOTP) BeginEnrolment(_ context.Context, userID string, _ users.RequestMeta) (*users.TOTPEnrolment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secret != nil {
		return nil, users.ErrTOTPEnabled
	}
	if f.pending == nil {
		f.pending = make([]byte, 20)
		rand.Read(f.pending)
	}
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(f.pending)
	return &users.TOTPEnrolment{Secret: s, URI: "otpauth://totp/sso:alice?issuer=sso&secret=" + s}, nil
}

func (f *fakeTOTP) ConfirmEnrolment(_ context.Context, userID, code string, _ users.RequestMeta) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.secret != nil:
		return nil, users.ErrTOTPEnabled
	case f.pending == nil:
		return nil, users.ErrNoTOTPEnrolment
	case !validCode(f.pending, code):
		return nil, users.ErrInvalidCode
	}
	f.userID, f.secret, f.pending = userID, f.pending, nil
	f.recovery = newFakeRecoveryCodes()
	return slices.Clone(f.recovery), nil
}

func (f *fakeTOTP) Disable(_ context.Context, userID, code string, _ users.RequestMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.check(userID, code); err != nil {
		return err
	}
	f.secret, f.recovery = nil, nil
	return nil
}

func (f *fakeTOTP) RegenerateRecoveryCodes(_ context.Context, userID, code string, _ users.RequestMeta) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.check(userID, code); err != nil {
		return nil, err
	}
	f.recovery = newFakeRecoveryCodes()
	return slices.Clone(f.recovery), nil
}

func newFakeRecoveryCodes() []string {
	codes := make([]string, users.RecoveryCodeCount)
	for i := range codes {
		codes[i] = rand.Text()[:10]
	}
	return codes
}

// fakeChallenges keeps pending sign-ins by token.
type fakeChallenges struct {
	mu      sync.Mutex
	byToken map[string]*users.MFAChallenge
}

func (c *fakeChallenges) Start(_ context.Context, ch *users.MFAChallenge) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	token := rand.Text()
	ch.ID, ch.ExpiresAt = "ch-"+rand.Text(), time.Now().Add(users.DefaultMFAChallengeTTL)
	stored := *ch
	c.byToken[token] = &stored
	return token, nil
}

func (c *fakeChallenges) Lookup(_ context.Context, token string) (*users.MFAChallenge, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.byToken[token]; ok {
		copied := *ch
		return &copied, nil
	}
	return nil, fmt.Errorf("fake: %w", db.ErrNotFound)
}

func (c *fakeChallenges) Fail(_ context.Context, id string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.byToken {
		if ch.ID == id {
			ch.Attempts++
			return ch.Attempts, nil
		}
	}
	return 0, fmt.Errorf("fake: %w", db.ErrNotFound)
}

func (c *fakeChallenges) Delete(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for token, ch := range c.byToken {
		if ch.ID == id {
			delete(c.byToken, token)
			return nil
		}
	}
	return fmt.Errorf("fake: %w", db.ErrNotFound)
}

func (c *fakeChallenges) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byToken)
}

// mfaFixture is the pages with two-step verification turned on.
type mfaFixture struct {
	*fixture
	totp       *fakeTOTP
	challenges *fakeChallenges
}

func newMFAFixture(t *testing.T, set ...func(*Config)) *mfaFixture {
	t.Helper()
	f := newFixture(t, true)
	m := &mfaFixture{fixture: f, totp: &fakeTOTP{}, challenges: &fakeChallenges{byToken: map[string]*users.MFAChallenge{}}}
	c := Config{
		Auth: f.auth, Sessions: f.sessions, Consents: f.consents,
		Clients:       fakeClients{testClientID: {ID: testClientID, Name: testClientName}},
		TOTP:          m.totp,
		MFAChallenges: m.challenges,
		SecureCookies: true,
	}
	for _, fn := range set {
		fn(&c)
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	f.pages = p
	f.mux = http.NewServeMux()
	p.Register(f.mux)
	return m
}

// enable turns TOTP on for the fixture's user and returns the secret.
func (m *mfaFixture) enable() []byte {
	m.totp.userID = m.user.ID
	m.totp.secret = make([]byte, 20)
	rand.Read(m.totp.secret)
	m.totp.recovery = newFakeRecoveryCodes()
	return m.totp.secret
}

// signInWithPassword posts the right password and returns the pending
// sign-in's cookie.
func (m *mfaFixture) signInWithPassword(returnTo string) *http.Cookie {
	m.t.Helper()
	resp, _ := m.post("/login", url.Values{"identifier": {m.ident}, "password": {m.password}, "return_to": {returnTo}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != mfaPath {
		m.t.Fatalf("password step: status %d, Location %q; want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), mfaPath)
	}
	if findCookie(resp, sessionCookie) != nil || len(m.sessions.created) != 0 {
		m.t.Fatal("a session was created before the second factor")
	}
	c := findCookie(resp, mfaCookie)
	if c == nil {
		m.t.Fatal("no sso_mfa cookie")
	}
	return c
}

func TestSecondFactorSignIn(t *testing.T) {
	tests := []struct {
		name string
		code func(m *mfaFixture, secret []byte) string
		kind users.SecondFactor
	}{
		{"TOTP code", func(m *mfaFixture, secret []byte) string {
			return users.TOTPCode(secret, time.Now(), users.TOTPDigits)
		}, users.FactorTOTP},
		{"recovery code", func(m *mfaFixture, _ []byte) string { return m.totp.recovery[0] }, users.FactorRecoveryCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMFAFixture(t)
			secret := m.enable()
			rt := "/oauth2/auth?client_id=" + testClientID + "&state=x"
			pending := m.signInWithPassword(rt)
			if !pending.HttpOnly || pending.SameSite != http.SameSiteLaxMode || !pending.Secure || pending.Path != mfaPath {
				t.Errorf("sso_mfa cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=%s", pending, mfaPath)
			}
			resp, body := m.get(mfaPath+"?lang=en", pending)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
				t.Fatalf("code page: %d %.300s", resp.StatusCode, body)
			}
			if text := visibleText(body); !strings.Contains(text, "Two-step verification") {
				t.Errorf("code page text %q", text)
			}
			resp, _ = m.post(mfaPath, url.Values{"code": {tt.code(m, secret)}}, pending)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != rt {
				t.Fatalf("code step: status %d, Location %q; want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), rt)
			}
			if findCookie(resp, sessionCookie) == nil || len(m.sessions.created) != 1 {
				t.Fatal("no session after the right code")
			}
			got := m.sessions.created[0]
			if got.userID != m.user.ID || !slices.Equal(got.amr, []string{"pwd", "otp", "mfa"}) || got.acr != m.user.AssuranceLevel {
				t.Errorf("Create(%+v), want amr [pwd otp mfa]", got)
			}
			if !slices.Equal(m.totp.verified, []users.SecondFactor{tt.kind}) {
				t.Errorf("verified %v, want %v", m.totp.verified, tt.kind)
			}
			if c := findCookie(resp, mfaCookie); c == nil || c.MaxAge >= 0 {
				t.Error("sso_mfa cookie not cleared")
			}
			if m.challenges.count() != 0 {
				t.Error("the pending sign-in survives")
			}
			// The cookie cannot finish a second sign-in.
			resp, body = m.post(mfaPath, url.Values{"code": {tt.code(m, secret)}}, pending)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `name="password"`) || len(m.sessions.created) != 1 {
				t.Errorf("reused pending sign-in: %d, %d sessions", resp.StatusCode, len(m.sessions.created))
			}
		})
	}
}

func TestSignInWithoutSecondFactorIsUnchanged(t *testing.T) {
	m := newMFAFixture(t)
	resp, _ := m.post("/login", url.Values{"identifier": {m.ident}, "password": {m.password}, "return_to": {"/home"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/home" || findCookie(resp, sessionCookie) == nil {
		t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !slices.Equal(m.sessions.created[0].amr, []string{"pwd"}) {
		t.Errorf("amr %v", m.sessions.created[0].amr)
	}
}

func TestWrongCodesEndThePendingSignIn(t *testing.T) {
	m := newMFAFixture(t)
	m.enable()
	pending := m.signInWithPassword("/home")
	for i := 1; i < users.MaxMFAAttempts; i++ {
		resp, body := m.post(mfaPath+"?lang=en", url.Values{"code": {"000000x"}}, pending)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(visibleText(body), "That code is wrong") {
			t.Fatalf("wrong code %d: %d %q", i, resp.StatusCode, visibleText(body))
		}
	}
	resp, body := m.post(mfaPath+"?lang=en", url.Values{"code": {"000000x"}}, pending)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, `name="password"`) {
		t.Fatalf("last wrong code: %d %.300s", resp.StatusCode, visibleText(body))
	}
	if m.challenges.count() != 0 {
		t.Error("the pending sign-in survives five wrong codes")
	}
	if len(m.sessions.created) != 0 {
		t.Error("a session was created")
	}
}

func TestLockedAccountEndsThePendingSignIn(t *testing.T) {
	m := newMFAFixture(t)
	secret := m.enable()
	pending := m.signInWithPassword("/home")
	m.totp.locked = true
	resp, body := m.post(mfaPath+"?lang=en", url.Values{"code": {users.TOTPCode(secret, time.Now(), 6)}}, pending)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(visibleText(body), "locked") {
		t.Fatalf("%d %q", resp.StatusCode, visibleText(body))
	}
	if m.challenges.count() != 0 || len(m.sessions.created) != 0 {
		t.Error("pending sign-in kept or session created")
	}
}

func TestCodePageWithoutPendingSignIn(t *testing.T) {
	m := newMFAFixture(t)
	resp, _ := m.get(mfaPath)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("GET: %d %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := m.post(mfaPath+"?lang=en", url.Values{"code": {"123456"}}, &http.Cookie{Name: mfaCookie, Value: "forged"})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(visibleText(body), "timed out") {
		t.Errorf("POST: %d %q", resp.StatusCode, visibleText(body))
	}
	if len(m.totp.verified) != 0 || len(m.sessions.created) != 0 {
		t.Error("a forged cookie reached Verify or created a session")
	}
}

// session starts a session of the fixture's user and returns its cookie.
func (m *mfaFixture) session() *http.Cookie {
	_, token := m.sessions.start(m.t, m.user.ID)
	return &http.Cookie{Name: sessionCookie, Value: token}
}

var secretPattern = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7 ]+)</code>`)

func TestTOTPEnrolmentPages(t *testing.T) {
	m := newMFAFixture(t)
	resp, _ := m.get(securityPath)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != loginURL(securityPath) {
		t.Fatalf("security page without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sess := m.session()
	_, body := m.get(securityPath+"?lang=en", sess)
	if text := visibleText(body); !strings.Contains(text, "Off.") || !strings.Contains(body, `action="/account/totp"`) {
		t.Fatalf("security page, TOTP off: %q", text)
	}

	resp, body = m.get(totpPath+"?lang=en", sess)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set-up page: %d", resp.StatusCode)
	}
	img := regexp.MustCompile(`<img src="data:image/png;base64,([^"]+)"`).FindStringSubmatch(body)
	if img == nil {
		t.Fatalf("no QR code image in %.1000s", body)
	}
	if png, err := base64.StdEncoding.DecodeString(html.UnescapeString(img[1])); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatal("the QR code is not a PNG")
	}
	sm := secretPattern.FindStringSubmatch(body)
	if sm == nil {
		t.Fatal("the secret is not shown for typing in")
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(sm[1], " ", ""))
	if err != nil || string(secret) != string(m.totp.pending) {
		t.Fatalf("shown secret %q does not decode to the offered one (%v)", sm[1], err)
	}

	resp, body = m.post(totpPath+"?lang=en", url.Values{"code": {"000000x"}}, sess)
	if resp.StatusCode != http.StatusUnauthorized || secretPattern.FindStringSubmatch(body)[1] != sm[1] {
		t.Fatalf("wrong first code: %d, or the secret changed", resp.StatusCode)
	}
	resp, body = m.post(totpPath+"?lang=en", url.Values{"code": {users.TOTPCode(secret, time.Now(), 6)}}, sess)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirm: %d %q", resp.StatusCode, visibleText(body))
	}
	for _, c := range m.totp.recovery {
		if !strings.Contains(body, "<code>"+c+"</code>") {
			t.Errorf("recovery code %s not shown", c)
		}
	}
	if !strings.Contains(visibleText(body), "shown only now") {
		t.Error("the page does not say the codes are shown once")
	}

	_, body = m.get(securityPath+"?lang=en", sess)
	if text := visibleText(body); !strings.Contains(text, "On since") || !strings.Contains(text, "Recovery codes left: 10.") {
		t.Fatalf("security page, TOTP on: %q", text)
	}
	if resp, _ := m.get(totpPath, sess); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != securityPath {
		t.Errorf("set-up page while on: %d, want 303 to the security page", resp.StatusCode)
	}
}

func TestTOTPSetUpNeedsARecentSignIn(t *testing.T) {
	m := newMFAFixture(t)
	ss, token := m.sessions.start(t, m.user.ID)
	ss.AuthTime = time.Now().Add(-totpReauthAfter - time.Minute)
	sess := &http.Cookie{Name: sessionCookie, Value: token}
	resp, body := m.get(totpPath+"?lang=en", sess)
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "data:image/png") || m.totp.pending != nil {
		t.Fatalf("old sign-in got a secret: %d", resp.StatusCode)
	}
	if !strings.Contains(body, `href="`+strings.ReplaceAll(loginURL(totpPath), "&", "&amp;")+`"`) {
		t.Errorf("no link to sign in again in %.500s", body)
	}
}

func TestTOTPDisableAndRegenerate(t *testing.T) {
	m := newMFAFixture(t)
	secret := m.enable()
	sess := m.session()
	old := slices.Clone(m.totp.recovery)

	resp, body := m.post(recoveryCodesPath+"?lang=en", url.Values{"code": {old[0]}}, sess)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<code>"+m.totp.recovery[0]+"</code>") || slices.Contains(m.totp.recovery, old[1]) {
		t.Fatalf("regenerate: %d", resp.StatusCode)
	}
	resp, body = m.post(totpDisablePath+"?lang=en", url.Values{"code": {"999999x"}}, sess)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(visibleText(body), "That code is wrong") {
		t.Fatalf("disable with a wrong code: %d %q", resp.StatusCode, visibleText(body))
	}
	resp, _ = m.post(totpDisablePath, url.Values{"code": {users.TOTPCode(secret, time.Now(), 6)}}, sess)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != securityPath || m.totp.secret != nil {
		t.Fatalf("disable: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestSecondFactorPostsNeedCSRF(t *testing.T) {
	m := newMFAFixture(t)
	secret := m.enable()
	sess := m.session()
	pending := m.signInWithPassword("/home")
	code := users.TOTPCode(secret, time.Now(), 6)
	for _, path := range []string{mfaPath, totpPath, totpDisablePath, recoveryCodesPath} {
		resp, _ := m.postRaw(path, url.Values{"code": {code}}, nil, sess, pending)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without CSRF token: %d, want 403", path, resp.StatusCode)
		}
	}
	if len(m.totp.verified) != 0 || m.totp.secret == nil {
		t.Error("a post without CSRF token reached the service")
	}
}

func TestSecondFactorPagesCarryCSPAndNoStore(t *testing.T) {
	m := newMFAFixture(t)
	sess := m.session()
	// In this order: the code page turns two-step verification on, after
	// which the set-up page would show something else.
	pages := []struct {
		name string
		get  func() *http.Response
	}{
		{"set-up", func() *http.Response { r, _ := m.get(totpPath, sess); return r }},
		{"security", func() *http.Response { r, _ := m.get(securityPath, sess); return r }},
		{"code", func() *http.Response {
			m.enable()
			r, _ := m.get(mfaPath, m.signInWithPassword("/"))
			return r
		}},
	}
	for _, pg := range pages {
		name, resp := pg.name, pg.get()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "img-src 'self' data:") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: CSP %q", name, csp)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", name, resp.Header.Get("Cache-Control"))
		}
	}
}

// TestSecondFactorKeysAreInTheCatalogue covers the keys quoted in this
// feature's Go files, whose prefixes the general test does not look for.
func TestSecondFactorKeysAreInTheCatalogue(t *testing.T) {
	key := regexp.MustCompile(`"((?:mfa|totp|security|login)\.[a-z_]+)"`)
	n := 0
	for _, name := range []string{"mfa.go", "account_security.go"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range key.FindAllStringSubmatch(string(b), -1) {
			if strings.HasSuffix(m[1], ".html") {
				continue
			}
			n++
			for _, lang := range []string{langZH, langEN} {
				if _, ok := catalogue[lang][m[1]]; !ok {
					t.Errorf("%s uses %q, which the %s catalogue lacks", name, m[1], lang)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("found only %d keys; is the search broken?", n)
	}
}

func TestWithSecondFactor(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"pwd"}, []string{"pwd", "otp", "mfa"}},
		{[]string{"pwd", "otp"}, []string{"pwd", "otp", "mfa"}},
		{nil, []string{"otp", "mfa"}},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		if got := withSecondFactor(in); !slices.Equal(got, tt.want) {
			t.Errorf("withSecondFactor(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("withSecondFactor changed its argument")
		}
	}
}

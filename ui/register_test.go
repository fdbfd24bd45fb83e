package ui

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// captureSender keeps the messages the pages had sent.
type captureSender struct {
	mu   sync.Mutex
	msgs []users.Message
}

func (c *captureSender) Send(_ context.Context, m users.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

var codePattern = regexp.MustCompile(`\b\d{6}\b`)

// last returns the newest message to phone and the code in it ("" for a notice).
func (c *captureSender) last(t *testing.T, phone string) (users.Message, string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i].To == phone {
			return c.msgs[i], codePattern.FindString(c.msgs[i].Text)
		}
	}
	t.Fatalf("no message to %s", phone)
	return users.Message{}, ""
}

func (c *captureSender) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// fakeRevoker records RevokeAllForUser.
type fakeRevoker struct {
	mu      sync.Mutex
	revoked []string
}

func (f *fakeRevoker) RevokeAllForUser(_ context.Context, userID string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, userID)
	return 2, nil
}

// accountFixture is the pages with registration and reset wired to the
// real account store, codes, lockout and audit log on SQLite, and a
// capturing SMS sender.
type accountFixture struct {
	*fixture
	d       *db.DB
	store   *users.SQLStore
	hasher  *users.PasswordHasher
	lockout *users.Lockout
	audit   *audit.Log
	sms     *captureSender
	mail    *captureSender
	revoker *fakeRevoker
	links   *users.ResetLinks
}

func newAccountFixture(t *testing.T, selfRegistration bool) *accountFixture {
	t.Helper()
	d := dbtest.Open(t, db.SQLite)
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	f := &accountFixture{
		fixture: newFixture(t, true),
		d:       d, store: users.NewSQLStore(d, k),
		hasher:  users.NewPasswordHasher(users.Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}),
		lockout: users.NewLockout(d, users.LockoutPolicy{}),
		audit:   audit.NewLog(d),
		sms:     &captureSender{},
		mail:    &captureSender{},
		revoker: &fakeRevoker{},
		links:   users.NewResetLinks(d, 0),
	}
	p, err := New(Config{
		Auth: f.auth, Sessions: f.sessions, Consents: f.consents,
		Clients:       fakeClients{testClientID: {ID: testClientID, Name: testClientName}},
		SecureCookies: true,
		Accounts: &AccountServices{
			Codes:            users.NewOTP(d, k, users.OTPSenders{SMS: f.sms, Email: f.mail}, f.audit, users.OTPOptions{}),
			Users:            f.store,
			Hasher:           f.hasher,
			Sessions:         f.revoker,
			Lockout:          f.lockout,
			Audit:            f.audit,
			SelfRegistration: selfRegistration,
			Links:            f.links,
			LinkOwners:       f.store,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.pages = p
	f.mux = http.NewServeMux()
	p.Register(f.mux)
	return f
}

// randomPhone is a mainland mobile number of nobody in particular.
func randomPhone() string { return fmt.Sprintf("139%08d", mrand.IntN(100000000)) }

// randomPassword passes the password policy.
func randomPassword() string { return "pw-" + rand.Text() }

// existingCitizen stores an account with phone and returns it.
func (f *accountFixture) existingCitizen(t *testing.T, phone, password string) *users.User {
	t.Helper()
	hash, err := f.hasher.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	u := &users.User{Username: "c" + strings.ToLower(rand.Text()[:10]), Kind: users.KindCitizen, DisplayName: "Citizen", Phone: phone, PasswordHash: hash}
	if err := f.store.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// actions lists the audit actions written, in order.
func (f *accountFixture) actions(t *testing.T) []string {
	t.Helper()
	events, err := f.audit.List(context.Background(), audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Action+"/"+e.Result)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRegisterCreatesAccountAndSignsIn(t *testing.T) {
	f := newAccountFixture(t, true)
	resp, body := f.get("/register?lang=en")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="phone"`) {
		t.Fatalf("GET /register: %d, want the phone form", resp.StatusCode)
	}
	phone := randomPhone()
	rt := "/oauth2/auth?client_id=" + testClientID + "&state=x"
	resp, body = f.post("/register", url.Values{"action": {"send"}, "phone": {"+86 " + phone}, "return_to": {rt}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) || !strings.Contains(body, `value="`+phone+`"`) {
		t.Fatalf("send: %d, want the second step for %s:\n%s", resp.StatusCode, phone, visibleText(body))
	}
	msg, code := f.sms.last(t, phone)
	if msg.Channel != users.ChannelSMS || code == "" {
		t.Fatalf("message %+v carries no code", msg)
	}
	password := randomPassword()
	resp, _ = f.post("/register", url.Values{
		"action": {"create"}, "phone": {phone}, "code": {code}, "return_to": {rt},
		"username": {"NewCitizen"}, "display_name": {" 张三 "}, "password": {password},
	})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != rt {
		t.Fatalf("create: %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), rt)
	}
	u, err := f.store.GetByPhone(context.Background(), phone)
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "newcitizen" || u.DisplayName != "张三" || u.Kind != users.KindCitizen || u.AssuranceLevel != 1 || u.IsAdmin {
		t.Errorf("account %+v, want citizen newcitizen at level 1", u)
	}
	if ok, _, err := f.hasher.Verify(password, u.PasswordHash); !ok || err != nil {
		t.Errorf("the stored hash does not verify the chosen password: %v", err)
	}
	if len(f.sessions.created) != 1 {
		t.Fatalf("%d sessions created, want 1", len(f.sessions.created))
	}
	if c := f.sessions.created[0]; c.userID != u.ID || strings.Join(c.amr, " ") != "pwd sms" || c.acr != 1 {
		t.Errorf("session %+v, want amr [pwd sms], acr 1", c)
	}
	if findCookie(resp, sessionCookie) == nil {
		t.Error("no session cookie")
	}
	if got := f.actions(t); !contains(got, users.ActionUserRegister+"/success") || !contains(got, users.ActionOTPIssue+"/success") {
		t.Errorf("audit %v lacks the registration or the code", got)
	}
}

func TestRegisterDoesNotRevealRegisteredPhones(t *testing.T) {
	f := newAccountFixture(t, true)
	taken := randomPhone()
	f.existingCitizen(t, taken, randomPassword())
	free := randomPhone()

	answers := map[string]string{}
	for _, phone := range []string{taken, free} {
		resp, body := f.post("/register?lang=en", url.Values{"action": {"send"}, "phone": {phone}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("send to %s: status %d", phone, resp.StatusCode)
		}
		answers[phone] = strings.ReplaceAll(visibleText(body), phone, "PHONE")
	}
	if answers[taken] != answers[free] {
		t.Errorf("the page differs for a registered number:\n%s\n%s", answers[taken], answers[free])
	}
	if _, code := f.sms.last(t, taken); code != "" {
		t.Error("a registered number was sent a registration code")
	}
	if _, code := f.sms.last(t, free); code == "" {
		t.Error("a free number got no code")
	}
}

func TestRegisterRefusals(t *testing.T) {
	tests := []struct {
		name     string
		change   func(form url.Values)
		status   int
		wantText string
	}{
		{"wrong code", func(v url.Values) { v.Set("code", wrongCode(v.Get("code"))) }, http.StatusBadRequest, "Wrong code"},
		{"bad username", func(v url.Values) { v.Set("username", "x") }, http.StatusBadRequest, "username must be"},
		{"username is a phone number", func(v url.Values) { v.Set("username", randomPhone()) }, http.StatusBadRequest, "username must be"},
		{"no name", func(v url.Values) { v.Set("display_name", "  ") }, http.StatusBadRequest, "Enter your name"},
		{"short password", func(v url.Values) { v.Set("password", "short") }, http.StatusBadRequest, "at least 8"},
		{"common password", func(v url.Values) { v.Set("password", "password") }, http.StatusBadRequest, "too common"},
		{"password is the phone", func(v url.Values) { v.Set("password", v.Get("phone")) }, http.StatusBadRequest, "must not be your username or phone"},
		{"bad phone", func(v url.Values) { v.Set("phone", "12345") }, http.StatusBadRequest, "11-digit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newAccountFixture(t, true)
			phone := randomPhone()
			f.post("/register", url.Values{"action": {"send"}, "phone": {phone}})
			_, code := f.sms.last(t, phone)
			form := url.Values{"action": {"create"}, "phone": {phone}, "code": {code},
				"username": {"someone"}, "display_name": {"Someone"}, "password": {randomPassword()}}
			tc.change(form)
			resp, body := f.post("/register?lang=en", form)
			if resp.StatusCode != tc.status || !strings.Contains(visibleText(body), tc.wantText) {
				t.Errorf("status %d, want %d with %q in:\n%s", resp.StatusCode, tc.status, tc.wantText, visibleText(body))
			}
			if pw := form.Get("password"); pw != form.Get("phone") && strings.Contains(body, `value="`+pw+`"`) {
				t.Error("the page sends the password back")
			}
			if _, err := f.store.GetByUsername(context.Background(), "someone"); err == nil {
				t.Error("an account was created")
			}
			if len(f.sessions.created) != 0 {
				t.Error("a session was started")
			}
		})
	}
}

// wrongCode is a six-digit code other than code.
func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func TestRegisterTakenUsernameKeepsTheCode(t *testing.T) {
	f := newAccountFixture(t, true)
	other := f.existingCitizen(t, randomPhone(), randomPassword())
	phone := randomPhone()
	f.post("/register", url.Values{"action": {"send"}, "phone": {phone}})
	_, code := f.sms.last(t, phone)
	form := url.Values{"action": {"create"}, "phone": {phone}, "code": {code},
		"username": {other.Username}, "display_name": {"Someone"}, "password": {randomPassword()}}
	resp, body := f.post("/register?lang=en", form)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "username is taken") {
		t.Fatalf("taken username: %d\n%s", resp.StatusCode, visibleText(body))
	}
	form.Set("username", "freename")
	if resp, body := f.post("/register", form); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("same code after choosing another username: %d\n%s", resp.StatusCode, visibleText(body))
	}
}

func TestRegisterCodeAttemptsAndRateLimit(t *testing.T) {
	f := newAccountFixture(t, true)
	phone := randomPhone()
	f.post("/register", url.Values{"action": {"send"}, "phone": {phone}})
	resp, body := f.post("/register?lang=en", url.Values{"action": {"send"}, "phone": {phone}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many text messages") {
		t.Errorf("second send at once: %d, want 429 with a wait message", resp.StatusCode)
	}
	if f.sms.count() != 1 {
		t.Errorf("%d messages sent, want 1", f.sms.count())
	}
	_, code := f.sms.last(t, phone)
	form := url.Values{"action": {"create"}, "phone": {phone}, "code": {wrongCode(code)},
		"username": {"someone"}, "display_name": {"Someone"}, "password": {randomPassword()}}
	for range users.DefaultOTPMaxAttempts {
		resp, body = f.post("/register?lang=en", form)
	}
	form.Set("code", code)
	resp, body = f.post("/register?lang=en", form)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "no longer works") {
		t.Errorf("right code after %d wrong ones: %d\n%s", users.DefaultOTPMaxAttempts, resp.StatusCode, visibleText(body))
	}
}

func TestRegisterCodesPerAddressLimit(t *testing.T) {
	f := newAccountFixture(t, true)
	for i := 0; i < users.DefaultOTPHourlyLimitPerIP; i++ {
		if resp, body := f.post("/register", url.Values{"action": {"send"}, "phone": {randomPhone()}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("send %d: status %d\n%s", i+1, resp.StatusCode, visibleText(body))
		}
	}
	resp, body := f.post("/register?lang=en", url.Values{"action": {"send"}, "phone": {randomPhone()}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(visibleText(body), "Too many codes were asked for from your network") {
		t.Fatalf("send over the address limit: %d, Retry-After %q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), visibleText(body))
	}
	if !strings.Contains(body, `name="phone"`) {
		t.Error("the page does not ask for the number again")
	}
	if n := f.sms.count(); n != users.DefaultOTPHourlyLimitPerIP {
		t.Errorf("%d messages sent, want %d", n, users.DefaultOTPHourlyLimitPerIP)
	}
}

func TestRegisterClosed(t *testing.T) {
	f := newAccountFixture(t, false)
	resp, body := f.get("/register?lang=en")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Self-registration is not open") || strings.Contains(body, `name="phone"`) {
		t.Errorf("GET: %d, want 404 saying registration is closed", resp.StatusCode)
	}
	resp, _ = f.post("/register", url.Values{"action": {"send"}, "phone": {randomPhone()}})
	if resp.StatusCode != http.StatusNotFound || f.sms.count() != 0 {
		t.Errorf("POST: %d with %d messages, want 404 and nothing sent", resp.StatusCode, f.sms.count())
	}
	_, body = f.get("/login?lang=en")
	if strings.Contains(body, `href="/register`) || !strings.Contains(body, `href="/reset`) {
		t.Error("the sign-in page should link to reset but not to registration")
	}
}

func TestRegisterAndResetNeedCSRF(t *testing.T) {
	f := newAccountFixture(t, true)
	for _, path := range []string{"/register", "/reset"} {
		resp, _ := f.postRaw(path, url.Values{"action": {"send"}, "phone": {randomPhone()}}, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without a CSRF token: %d, want 403", path, resp.StatusCode)
		}
	}
	if f.sms.count() != 0 {
		t.Error("a message was sent for a forged request")
	}
}

func TestRegisterReturnToStaysLocal(t *testing.T) {
	f := newAccountFixture(t, true)
	phone := randomPhone()
	f.post("/register", url.Values{"action": {"send"}, "phone": {phone}})
	_, code := f.sms.last(t, phone)
	resp, _ := f.post("/register", url.Values{"action": {"create"}, "phone": {phone}, "code": {code}, "return_to": {"https://evil.example/"},
		"username": {"someone"}, "display_name": {"Someone"}, "password": {randomPassword()}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("%d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestLoginPageLinksToAccountPages(t *testing.T) {
	f := newAccountFixture(t, true)
	rt := "/oauth2/auth?client_id=" + testClientID
	_, body := f.get("/login?lang=en&return_to=" + url.QueryEscape(rt))
	for _, want := range []string{`href="/register?return_to=` + url.QueryEscape(rt), `href="/reset?return_to=` + url.QueryEscape(rt)} {
		if !strings.Contains(body, strings.ReplaceAll(want, "&", "&amp;")) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	plain := newFixture(t, true)
	if _, body := plain.get("/login"); strings.Contains(body, `href="/register`) || strings.Contains(body, `href="/reset`) {
		t.Error("without account services the sign-in page links to them")
	}
	if resp, _ := plain.get("/register"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without account services /register answers %d", resp.StatusCode)
	}
}

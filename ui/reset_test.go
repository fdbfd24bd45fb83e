package ui

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/users"
)

func TestResetChangesPasswordAndEndsSessions(t *testing.T) {
	f := newAccountFixture(t, true)
	phone := randomPhone()
	u := f.existingCitizen(t, phone, randomPassword())
	ctx := context.Background()
	for range users.DefaultMaxFailures {
		if _, err := f.lockout.Fail(ctx, users.AccountKey(u.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if until, _ := f.lockout.Check(ctx, users.AccountKey(u.ID)); until.IsZero() {
		t.Fatal("the account should be locked before the reset")
	}

	resp, body := f.post("/reset?lang=en", url.Values{"action": {"send"}, "phone": {phone}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("send: %d\n%s", resp.StatusCode, visibleText(body))
	}
	_, code := f.sms.last(t, phone)
	if code == "" {
		t.Fatal("no code sent to a registered number")
	}
	password := randomPassword()
	resp, body = f.post("/reset?lang=en", url.Values{"action": {"reset"}, "phone": {phone}, "code": {code}, "password": {password}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign in with the new password") {
		t.Fatalf("reset: %d\n%s", resp.StatusCode, visibleText(body))
	}
	got, err := f.store.Get(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := f.hasher.Verify(password, got.PasswordHash); !ok {
		t.Error("the new password does not verify")
	}
	if len(f.revoker.revoked) != 1 || f.revoker.revoked[0] != u.ID {
		t.Errorf("sessions revoked for %v, want %s", f.revoker.revoked, u.ID)
	}
	if until, _ := f.lockout.Check(ctx, users.AccountKey(u.ID)); !until.IsZero() {
		t.Error("the account is still locked after the reset")
	}
	if !contains(f.actions(t), users.ActionPasswordReset+"/success") {
		t.Errorf("audit %v lacks the reset", f.actions(t))
	}
	resp, _ = f.post("/reset", url.Values{"action": {"reset"}, "phone": {phone}, "code": {code}, "password": {randomPassword()}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the code worked twice: %d", resp.StatusCode)
	}
}

func TestResetByEmail(t *testing.T) {
	f := newAccountFixture(t, true)
	ctx := context.Background()
	u := f.existingCitizen(t, randomPhone(), randomPassword())
	email := strings.ToLower(rand.Text()[:8]) + "@example.org"
	if _, err := f.store.Update(ctx, u.ID, func(x *users.User) error { x.Email = email; return nil }); err != nil {
		t.Fatal(err)
	}
	resp, body := f.post("/reset?lang=en", url.Values{"action": {"send"}, "phone": {strings.ToUpper(email)}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("send: %d\n%s", resp.StatusCode, visibleText(body))
	}
	_, code := f.mail.last(t, email)
	if code == "" || f.sms.count() != 0 {
		t.Fatalf("code %q by e-mail, %d text messages", code, f.sms.count())
	}
	password := randomPassword()
	resp, body = f.post("/reset?lang=en", url.Values{"action": {"reset"}, "phone": {email}, "code": {code}, "password": {password}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign in with the new password") {
		t.Fatalf("reset: %d\n%s", resp.StatusCode, visibleText(body))
	}
	got, _ := f.store.Get(ctx, u.ID)
	if ok, _, _ := f.hasher.Verify(password, got.PasswordHash); !ok {
		t.Error("the new password does not verify")
	}

	// An address of no account, or of several, gets a notice, not a code,
	// and the page says the same as for a registered one.
	shared := "shared-" + strings.ToLower(rand.Text()[:6]) + "@example.org"
	for range 2 {
		x := f.existingCitizen(t, randomPhone(), randomPassword())
		if _, err := f.store.Update(ctx, x.ID, func(y *users.User) error { y.Email = shared; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range []string{shared, "nobody-" + strings.ToLower(rand.Text()[:6]) + "@example.org"} {
		resp, body := f.post("/reset?lang=en", url.Values{"action": {"send"}, "phone": {addr}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
			t.Fatalf("send to %s: %d\n%s", addr, resp.StatusCode, visibleText(body))
		}
		if m, code := f.mail.last(t, addr); code != "" || !strings.Contains(m.Text, "no single account") {
			t.Errorf("message to %s: %q", addr, m.Text)
		}
	}
	if resp, body := f.post("/reset?lang=en", url.Values{"action": {"send"}, "phone": {"not@an@address"}}); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(visibleText(body), "valid mobile number or e-mail address") {
		t.Errorf("malformed address: %d\n%s", resp.StatusCode, visibleText(body))
	}
}

func TestResetDoesNotRevealUnregisteredPhones(t *testing.T) {
	f := newAccountFixture(t, true)
	known := randomPhone()
	f.existingCitizen(t, known, randomPassword())
	unknown := randomPhone()
	answers := map[string]string{}
	for _, phone := range []string{known, unknown} {
		resp, body := f.post("/reset?lang=en", url.Values{"action": {"send"}, "phone": {phone}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("send to %s: %d", phone, resp.StatusCode)
		}
		answers[phone] = strings.ReplaceAll(visibleText(body), phone, "PHONE")
	}
	if answers[known] != answers[unknown] {
		t.Errorf("the page differs for an unregistered number:\n%s\n%s", answers[known], answers[unknown])
	}
	if _, code := f.sms.last(t, unknown); code != "" {
		t.Error("an unregistered number was sent a code")
	}
	resp, body := f.post("/reset?lang=en", url.Values{"action": {"reset"}, "phone": {unknown}, "code": {"123456"}, "password": {randomPassword()}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
		t.Errorf("reset of an unregistered number: %d\n%s", resp.StatusCode, visibleText(body))
	}
}

func TestResetRefusesWeakPasswordAndKeepsCode(t *testing.T) {
	f := newAccountFixture(t, true)
	phone := randomPhone()
	u := f.existingCitizen(t, phone, randomPassword())
	f.post("/reset", url.Values{"action": {"send"}, "phone": {phone}})
	_, code := f.sms.last(t, phone)
	for _, weak := range []string{"short", "password", u.Username, phone} {
		resp, body := f.post("/reset?lang=en", url.Values{"action": {"reset"}, "phone": {phone}, "code": {code}, "password": {weak}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "password") {
			t.Errorf("password %q: %d\n%s", weak, resp.StatusCode, visibleText(body))
		}
	}
	if len(f.revoker.revoked) != 0 {
		t.Error("sessions were revoked for a refused reset")
	}
	resp, _ := f.post("/reset", url.Values{"action": {"reset"}, "phone": {phone}, "code": {code}, "password": {randomPassword()}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the code did not survive refused passwords: %d", resp.StatusCode)
	}
}

func TestResetByAdministratorsLink(t *testing.T) {
	f := newAccountFixture(t, true)
	ctx := context.Background()
	u := f.existingCitizen(t, randomPhone(), randomPassword())
	token, _, err := f.links.Create(ctx, u.ID, "admin-1")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := f.get("/reset?lang=en&token=" + url.QueryEscape(token))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="token" value="`+token+`"`) || strings.Contains(body, `name="phone"`) {
		t.Fatalf("GET link: %d\n%s", resp.StatusCode, visibleText(body))
	}
	resp, body = f.post("/reset?lang=en", url.Values{"action": {"link"}, "token": {token}, "password": {"short"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `value="`+token+`"`) {
		t.Fatalf("weak password: %d\n%s", resp.StatusCode, visibleText(body))
	}
	password := randomPassword()
	resp, body = f.post("/reset?lang=en", url.Values{"action": {"link"}, "token": {token}, "password": {password}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign in with the new password") {
		t.Fatalf("reset: %d\n%s", resp.StatusCode, visibleText(body))
	}
	got, _ := f.store.Get(ctx, u.ID)
	if ok, _, _ := f.hasher.Verify(password, got.PasswordHash); !ok {
		t.Error("the new password does not verify")
	}
	if len(f.revoker.revoked) != 1 || f.revoker.revoked[0] != u.ID {
		t.Errorf("sessions revoked for %v, want %s", f.revoker.revoked, u.ID)
	}
	events, _ := f.audit.List(ctx, audit.Filter{Action: users.ActionPasswordReset})
	if len(events) != 1 || events[0].Details["method"] != "link" || strings.Contains(fmt.Sprint(events[0]), token) {
		t.Errorf("audit %+v", events)
	}
	// Used once: both the page and a second post refuse it.
	for _, try := range []func() (*http.Response, string){
		func() (*http.Response, string) { return f.get("/reset?lang=en&token=" + url.QueryEscape(token)) },
		func() (*http.Response, string) {
			return f.post("/reset?lang=en", url.Values{"action": {"link"}, "token": {token}, "password": {randomPassword()}})
		},
		func() (*http.Response, string) {
			return f.post("/reset?lang=en", url.Values{"action": {"link"}, "token": {strings.Repeat("x", 500)}, "password": {randomPassword()}})
		},
	} {
		resp, body := try()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid, used or expired") {
			t.Fatalf("used link: %d\n%s", resp.StatusCode, visibleText(body))
		}
	}
}

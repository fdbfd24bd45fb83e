package ui

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/govsso/sso/users"
)

func TestSMSLoginSignsIn(t *testing.T) {
	f := newAccountFixture(t, true)
	phone := randomPhone()
	u := f.existingCitizen(t, phone, randomPassword())
	if _, err := f.store.Update(context.Background(), u.ID, func(x *users.User) error { x.AssuranceLevel = 3; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, body := f.get("/login?lang=en"); !strings.Contains(body, `href="/login/sms"`) {
		t.Fatal("the sign-in page does not link the text-message sign-in")
	}
	rt := "/oauth2/auth?client_id=" + testClientID
	if _, body := f.get("/login/sms?lang=en&return_to=" + url.QueryEscape(rt)); !strings.Contains(visibleText(body), testClientName) {
		t.Errorf("the page does not name the client signed in for:\n%s", visibleText(body))
	}
	resp, body := f.post("/login/sms?lang=en", url.Values{"action": {"send"}, "phone": {phone}, "return_to": {rt}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("send: %d\n%s", resp.StatusCode, visibleText(body))
	}
	if !strings.Contains(visibleText(body), testClientName) {
		t.Errorf("the code step does not name the client signed in for:\n%s", visibleText(body))
	}
	_, code := f.sms.last(t, phone)
	resp, body = f.post("/login/sms?lang=en", url.Values{"action": {"login"}, "phone": {phone}, "code": {wrongCode(code)}, "return_to": {rt}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(visibleText(body), "Wrong code") || len(f.sessions.created) != 0 {
		t.Fatalf("wrong code: %d, %d sessions\n%s", resp.StatusCode, len(f.sessions.created), visibleText(body))
	}
	resp, _ = f.post("/login/sms?lang=en", url.Values{"action": {"login"}, "phone": {phone}, "code": {code}, "return_to": {rt}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != rt {
		t.Fatalf("right code: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(f.sessions.created) != 1 {
		t.Fatalf("%d sessions created", len(f.sessions.created))
	}
	got := f.sessions.created[0]
	if got.userID != u.ID || !slices.Equal(got.amr, []string{"sms"}) || got.acr != 2 {
		t.Errorf("session %+v, want amr [sms] and a level capped at 2", got)
	}
	if !contains(f.actions(t), "auth.login/success") {
		t.Errorf("audit %v lacks the sign-in", f.actions(t))
	}
	if resp, _ := f.post("/login/sms", url.Values{"action": {"login"}, "phone": {phone}, "code": {code}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the code worked twice: %d", resp.StatusCode)
	}
}

func TestSMSLoginRefusals(t *testing.T) {
	f := newAccountFixture(t, true)
	// A number without an account: a notice instead of a code, the same page.
	stranger := randomPhone()
	resp, body := f.post("/login/sms?lang=en", url.Values{"action": {"send"}, "phone": {stranger}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("send to a number without an account: %d", resp.StatusCode)
	}
	if m, code := f.sms.last(t, stranger); code != "" || !strings.Contains(m.Text, "no account") {
		t.Errorf("message to a stranger: %q", m.Text)
	}
	if resp, _ := f.post("/login/sms", url.Values{"action": {"login"}, "phone": {stranger}, "code": {"123456"}}); resp.StatusCode != http.StatusBadRequest || len(f.sessions.created) != 0 {
		t.Errorf("sign-in of a number without an account: %d", resp.StatusCode)
	}

	// A disabled account: the right code is refused, and says why.
	phone := randomPhone()
	u := f.existingCitizen(t, phone, randomPassword())
	if _, err := f.store.Update(context.Background(), u.ID, func(x *users.User) error { x.Status = users.StatusDisabled; return nil }); err != nil {
		t.Fatal(err)
	}
	f.post("/login/sms", url.Values{"action": {"send"}, "phone": {phone}})
	_, code := f.sms.last(t, phone)
	resp, body = f.post("/login/sms?lang=en", url.Values{"action": {"login"}, "phone": {phone}, "code": {code}})
	if resp.StatusCode != http.StatusForbidden || len(f.sessions.created) != 0 {
		t.Errorf("disabled account: %d\n%s", resp.StatusCode, visibleText(body))
	}

	for name, form := range map[string]url.Values{
		"malformed number": {"action": {"send"}, "phone": {"12345"}},
		"over-long code":   {"action": {"login"}, "phone": {phone}, "code": {strings.Repeat("1", 100)}},
	} {
		if resp, _ := f.post("/login/sms", form); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, resp.StatusCode)
		}
	}
	if resp, _ := f.postRaw("/login/sms", url.Values{"action": {"send"}, "phone": {phone}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without the CSRF token: %d, want 403", resp.StatusCode)
	}
}

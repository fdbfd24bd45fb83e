package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

func TestPasswordResetByAdministrator(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		id := f.staffA.ID
		path := "/users/" + id + "/password-reset"
		answer := func(token, body string) (int, passwordResetResponse, []byte) {
			status, b, _ := f.do(token, "POST", path, body)
			var out passwordResetResponse
			json.Unmarshal(b, &out)
			return status, out, b
		}

		// A link, by default: single use, for this account, never a password.
		status, out, raw := answer("town", "")
		if status != 200 || out.Method != "link" || !strings.HasPrefix(out.ResetURL, "https://sso.example.org/reset?token=") || out.ExpiresAt.IsZero() {
			t.Fatalf("link: %d %s", status, raw)
		}
		if strings.Contains(strings.ToLower(string(raw)), "password\"") {
			t.Fatalf("the answer names a password: %s", raw)
		}
		u, _ := url.Parse(out.ResetURL)
		token := u.Query().Get("token")
		if owner, err := f.api.ResetLinks.Peek(ctx, token); err != nil || owner != id {
			t.Fatalf("the link is for %q: %v", owner, err)
		}
		events, _ := f.api.Audit.List(ctx, audit.Filter{Subject: id, Action: actionUserPasswordResetStart})
		if len(events) != 1 || events[0].Actor != f.townAdmin.ID || events[0].Details["method"] != "link" {
			t.Fatalf("audit %+v", events)
		}
		// A second link replaces the first.
		_, again, _ := answer("town", `{"method":"link"}`)
		if _, err := f.api.ResetLinks.Peek(ctx, token); err == nil || again.ResetURL == out.ResetURL {
			t.Fatal("the first link still works after a second one")
		}

		// No phone, no email yet: the method names the problem.
		for _, method := range []string{"sms", "email"} {
			status, b, _ := f.do("town", "POST", path, `{"method":"`+method+`"}`)
			if p := decodeProblem(t, b); status != 400 || p.Type != ProblemBase+"validation" || fieldsOf(p)[0] != "method" {
				t.Fatalf("%s without a destination: %d %s", method, status, b)
			}
		}
		if _, err := f.api.Users.Update(ctx, id, func(u *users.User) error {
			u.Phone, u.Email = "13912345678", "staff.a@example.org"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		status, out, raw = answer("town", `{"method":"sms"}`)
		sms := f.messages.to("13912345678")
		if status != 200 || out.SentTo != "139****5678" || out.ResetURL != "" || len(sms) != 1 || !regexp.MustCompile(`\b\d{6}\b`).MatchString(sms[0].Text) {
			t.Fatalf("sms: %d %s %v", status, raw, sms)
		}
		if regexp.MustCompile(`\b\d{6}\b`).Match(raw) {
			t.Fatalf("the answer carries the code: %s", raw)
		}
		if status, b, _ := f.do("town", "POST", path, `{"method":"sms"}`); status != 429 || decodeProblem(t, b).Type != ProblemBase+"rate-limited" {
			t.Fatalf("second SMS at once: %d %s", status, b)
		}
		status, out, raw = answer("town", `{"method":"email"}`)
		mail := f.messages.to("staff.a@example.org")
		if status != 200 || out.SentTo != "s***@example.org" || out.ResetURL != "" || len(mail) != 1 || !strings.Contains(mail[0].Text, "https://sso.example.org/reset?token=") {
			t.Fatalf("email: %d %s %v", status, raw, mail)
		}

		// A link whose mail could not be sent does not stay usable.
		f.api.Codes = failingCodes{}
		if status, b, _ := f.do("town", "POST", path, `{"method":"email"}`); status < 500 {
			t.Fatalf("mail failure: %d %s", status, b)
		}
		if n := countRows(t, d, `SELECT count(*) FROM password_reset_links WHERE user_id = ?`, id); n != 0 {
			t.Fatalf("%d links left after a failed mail", n)
		}
		if list, _ := f.api.Audit.List(ctx, audit.Filter{Subject: id, Action: actionUserPasswordResetStart, Result: audit.ResultFailure}); len(list) != 1 {
			t.Fatalf("the failed start is not audited: %+v", list)
		}

		status, b, _ := f.do("town", "POST", path, `{"method":"carrier-pigeon"}`)
		if p := decodeProblem(t, b); status != 400 || fieldsOf(p)[0] != "method" {
			t.Fatalf("bad method: %d %s", status, b)
		}
		if status, b, _ := f.do("town", "POST", path, `{"method":"link","password":"x"}`); status != 400 {
			t.Fatalf("unknown field: %d %s", status, b)
		}
		if strings.Contains(f.logs.String(), token) || strings.Contains(f.logs.String(), "token=") {
			t.Fatalf("the log holds a token: %s", f.logs.String())
		}
	})
}

// failingCodes is a sender whose messages never go out.
type failingCodes struct{}

func (failingCodes) Issue(context.Context, users.OTPPurpose, string) error {
	return errors.New("gateway down")
}
func (failingCodes) Notify(context.Context, string, string) error { return errors.New("gateway down") }

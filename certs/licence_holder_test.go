package certs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// TestLicenceHolderAccess walks the "bring your licence once" case: a
// client reads a holder's licence only once the holder consented to its
// type, and a QR payload shows a verifier the shareable fields only.
func TestLicenceHolderAccess(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLicenceFixture(t, d)
		body := testCreditCode(t)
		typ, err := f.lics.CreateLicenceType(ctx, LicenceType{TypeCode: body + "031", Name: "Food permit", DefiningBodyCreditCode: body,
			Fields: []LicenceField{{Name: "scope", Shareable: true}, {Name: "note"}}})
		if err != nil {
			t.Fatal(err)
		}
		idNumber := testIDNumber(t)
		us := fakeUsers{
			"holder": {ID: "holder", IDNumber: idNumber, Status: users.StatusActive, AssuranceLevel: 2},
			"other":  {ID: "other", IDNumber: testIDNumber(t), Status: users.StatusActive, AssuranceLevel: 2},
			"claims": {ID: "claims", IDNumber: idNumber, Status: users.StatusActive, AssuranceLevel: 1},
		}
		f.lics.cfg.Users, f.lics.cfg.AuthenticatePerson = us, personAuth
		req := f.request(t)
		req.TypeCode, req.HolderIDNumber, req.Fields = typ.TypeCode, idNumber, map[string]string{"scope": "catering", "note": "private remark"}
		lic, err := f.lics.IssueLicence(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		mux := licenceMux(t, f)
		one := licencesPath + "/" + lic.Identifier
		// Any character but the right one is a bad check character.
		wrongCheck := lic.Identifier[:len(lic.Identifier)-1] + "0"
		if wrongCheck == lic.Identifier {
			wrongCheck = lic.Identifier[:len(lic.Identifier)-1] + "1"
		}

		if code, out := call(t, mux, "GET", licencesPath, "app:holder:licences:read", nil); code != 200 || len(out["licences"].([]any)) != 0 {
			t.Fatalf("before consent the list is not empty: %d %v", code, out)
		}
		refusals := []struct {
			name, path, token string
			status            int
			detail            string
		}{
			{"no consent", one, "app:holder:licences:read", 403, "not consented"},
			{"no token", one, "", 401, "access token"},
			{"no scope", one, "app:holder:openid", 403, "licences:read"},
			{"client token", one, "app::licences:read", 403, "not to a licence holder"},
			{"bad check character", licencesPath + "/" + wrongCheck, "app:holder:licences:read", 400, "check"},
		}
		for _, r := range refusals {
			if code, out := call(t, mux, "GET", r.path, r.token, nil); code != r.status || !strings.Contains(out["detail"].(string), r.detail) {
				t.Errorf("%s: %d %v, want %d naming %q", r.name, code, out, r.status, r.detail)
			}
		}

		if err := f.lics.GrantLicenceConsent(ctx, us["holder"], "app", typ.TypeCode, users.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
		code, out := call(t, mux, "GET", licencesPath, "app:holder:licences:read", nil)
		if list, _ := out["licences"].([]any); code != 200 || len(list) != 1 {
			t.Fatalf("after consent: %d %v", code, out)
		}
		code, out = call(t, mux, "GET", one, "app:holder:licences:read", nil)
		if fields, _ := out["fields"].(map[string]any); code != 200 || fields["note"] != "private remark" {
			t.Fatalf("consented client reads %d %v", code, out)
		}
		// The client's own token names the holder with ?sub= (here the
		// client knows people by "s-" and their id).
		f.lics.cfg.ResolveSubject = func(_ context.Context, clientID, sub string) (string, error) {
			if id, ok := strings.CutPrefix(sub, "s-"); ok {
				return id, nil
			}
			return "", db.ErrNotFound
		}
		for _, r := range []struct {
			name, path, token string
			status            int
		}{
			{"another client", one, "app2:holder:licences:read", 403},
			{"another person", one, "app:other:licences:read", 404},
			{"level 1 with the same number", one, "app:claims:licences:read", 404},
			{"client token naming the holder", one + "?sub=s-holder", "app::licences:read", 200},
			{"client token naming nobody", one + "?sub=nobody", "app::licences:read", 404},
			{"another client's token naming the holder", one + "?sub=s-holder", "app2::licences:read", 403},
			{"a person's token cannot name another", one + "?sub=s-holder", "app:other:licences:read", 404},
		} {
			if code, out := call(t, mux, "GET", r.path, r.token, nil); code != r.status {
				t.Errorf("%s: %d %v, want %d", r.name, code, out, r.status)
			}
		}

		code, out = call(t, mux, "POST", one+":qr", "app:holder:licences:read", nil)
		payload, _ := out["qr_payload"].(string)
		if code != 200 || payload == "" {
			t.Fatalf("qr: %d %v", code, out)
		}
		code, out = call(t, mux, "POST", licencesPath+"/verify", "", map[string]string{"qr_payload": payload})
		shown, _ := out["shown"].(map[string]any)
		if code != 200 || out["result"] != VerdictValid || shown == nil {
			t.Fatalf("verify qr: %d %v", code, out)
		}
		if fields := shown["fields"].(map[string]any); fields["scope"] != "catering" || fields["note"] != nil {
			t.Fatalf("a verifier sees %v, want the shareable field only", fields)
		}
		tampered := "A" + payload[1:] // payloads start with "e", base64url of `{"`
		if code, out := call(t, mux, "POST", licencesPath+"/verify", "", map[string]string{"qr_payload": tampered}); code != 200 || out["result"] != VerdictForged {
			t.Fatalf("tampered qr: %d %v", code, out)
		}
		if _, err := f.lics.SuspendLicence(ctx, "dept-client", lic.Identifier, "inspection"); err != nil {
			t.Fatal(err)
		}
		if _, out := call(t, mux, "POST", licencesPath+"/verify", "", map[string]string{"qr_payload": payload}); out["result"] != VerdictSuspended {
			t.Fatalf("qr of a suspended licence: %v", out)
		}
		f.clock.t = f.clock.t.Add(LicenceQRTTL + time.Second)
		if code, out := call(t, mux, "POST", licencesPath+"/verify", "", map[string]string{"qr_payload": payload}); code != 400 || !strings.Contains(out["detail"].(string), "expired") {
			t.Fatalf("expired qr: %d %v", code, out)
		}

		if err := f.lics.RevokeLicenceConsent(ctx, "holder", "app", typ.TypeCode, users.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
		if code, _ := call(t, mux, "GET", one, "app:holder:licences:read", nil); code != 403 {
			t.Fatalf("after withdrawal: %d, want 403", code)
		}
		evs, err := audit.NewLog(d).List(ctx, audit.Filter{Subject: "holder", Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range evs {
			seen[e.Action+"/"+e.Result] = true
		}
		for _, want := range []string{"licence.consent.grant/success", "licence.consent.revoke/success", "licence.read/success", "licence.read/failure", "licence.qr/success"} {
			if !seen[want] {
				t.Errorf("no audit record %s in %v", want, seen)
			}
		}
	})
}

// Hostile QR payloads end in ErrInvalid or a forged/not-found verdict,
// never a panic, and only a payload this server made can be valid.
func FuzzVerifyLicenceQR(f *testing.F) {
	d := dbtest.Open(f, db.SQLite)
	fx := newLicenceFixture(f, d)
	f.Add("eyJpIjoiMSIsImUiOjEsIm4iOiJ4In0.AAAA")
	f.Add(".")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, payload string) {
		res, err := fx.lics.VerifyLicenceQR(context.Background(), payload)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if res.Result != VerdictForged && res.Result != VerdictNotFound {
			t.Fatalf("a payload this server did not make reads %q", res.Result)
		}
	})
}

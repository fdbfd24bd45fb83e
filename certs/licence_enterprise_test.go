package certs

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// actingPersonAuth reads test tokens "client:user[@enterprise]:scopes": the
// part after @ is the enterprise the token was issued to act for.
func actingPersonAuth(r *http.Request) (string, string, []string, error) {
	c, u, scopes, err := personAuth(r)
	u, _, _ = strings.Cut(u, "@")
	return c, u, scopes, err
}

func actingFor(r *http.Request) (string, error) {
	_, u, _, err := personAuth(r)
	if err != nil {
		return "", nil
	}
	_, ent, _ := strings.Cut(u, "@")
	return ent, nil
}

// enterpriseCreditCode is testCreditCode with a letter in the organisation
// code: users refuses an enterprise whose code starts with 17 digits, which
// reads as a resident ID number.
func enterpriseCreditCode(t *testing.T) string {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
	weights := [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
	body := "91" + randomDigits(t, 14) + "A"
	sum := 0
	for i := 0; i < 17; i++ {
		sum += strings.IndexByte(alphabet, body[i]) * weights[i]
	}
	return body + string(alphabet[(31-sum%31)%31])
}

// TestLicenceEnterpriseHolder: licences issued to an enterprise's credit
// code are its account's; its legal representative and agents see them
// and consent for it while acting for it (the consent is the enterprise's,
// the audit names the person), and a person who is not, or no longer, an
// agent gets nothing.
func TestLicenceEnterpriseHolder(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLicenceFixture(t, d)
		key := make([]byte, kek.KeySize)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		k, err := kek.New(key)
		if err != nil {
			t.Fatal(err)
		}
		us := users.NewSQLStore(d, k)
		ents := users.NewEnterprises(d, us)
		people := map[string]*users.User{}
		for _, name := range []string{"rep", "agent", "stranger"} {
			u := &users.User{Username: name + "-" + randomHex(t)[:8], Kind: users.KindCitizen}
			if err := us.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			people[name] = u
		}
		code := enterpriseCreditCode(t)
		ent, err := ents.Create(ctx, code, "示例有限公司", people["rep"].ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := ents.AddAgent(ctx, ent.ID, people["agent"].ID); err != nil {
			t.Fatal(err)
		}
		f.lics.cfg.Users, f.lics.cfg.Enterprises = us, ents
		f.lics.cfg.AuthenticatePerson, f.lics.cfg.ActingFor = actingPersonAuth, actingFor
		f.lics.cfg.ResolveSubject = func(_ context.Context, _, sub string) (string, error) { return sub, nil }

		req := f.request(t)
		req.HolderName, req.HolderIDType, req.HolderIDNumber = "示例有限公司", HolderCreditCode, strings.ToLower(code)
		lic, err := f.lics.IssueLicence(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		f.issue(t) // a person's licence, which the enterprise must not see

		acct, err := us.Get(ctx, ent.ID)
		if err != nil {
			t.Fatal(err)
		}
		if list, err := f.lics.HolderLicences(ctx, acct); err != nil || len(list) != 1 || list[0].Identifier != lic.Identifier {
			t.Fatalf("the enterprise account holds %v (%v), want its licence", list, err)
		}
		for _, who := range []string{"rep", "agent"} {
			h, err := f.lics.ActingHolder(ctx, people[who].ID, ent.ID)
			if err != nil || h.ID != ent.ID {
				t.Fatalf("%s acting: %v %v", who, h, err)
			}
		}
		if _, err := f.lics.ActingHolder(ctx, people["stranger"].ID, ent.ID); !errors.Is(err, users.ErrNotAgent) {
			t.Fatalf("a stranger acting: %v, want ErrNotAgent", err)
		}
		// A disabled enterprise shares nothing, even through its agents.
		if _, err := us.Update(ctx, ent.ID, func(u *users.User) error { u.Status = users.StatusDisabled; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := f.lics.ActingHolder(ctx, people["rep"].ID, ent.ID); !errors.Is(err, users.ErrNotAgent) {
			t.Fatalf("acting for a disabled enterprise: %v, want ErrNotAgent", err)
		}
		if _, err := us.Update(ctx, ent.ID, func(u *users.User) error { u.Status = users.StatusActive; return nil }); err != nil {
			t.Fatal(err)
		}

		if err := f.lics.GrantLicenceConsentAs(ctx, acct, people["agent"].ID, "app", f.typ.TypeCode, users.RequestMeta{IP: "192.0.2.7"}); err != nil {
			t.Fatal(err)
		}
		if cs, err := f.lics.LicenceConsents(ctx, ent.ID); err != nil || len(cs) != 1 || cs[0].ClientID != "app" {
			t.Fatalf("the enterprise's consents: %v %v", cs, err)
		}
		if cs, err := f.lics.LicenceConsents(ctx, people["agent"].ID); err != nil || len(cs) != 0 {
			t.Fatalf("the agent's own consents: %v %v, want none", cs, err)
		}
		evs, err := audit.NewLog(d).List(ctx, audit.Filter{Subject: ent.ID, Action: "licence.consent.grant"})
		if err != nil || len(evs) != 1 || evs[0].Actor != people["agent"].ID {
			t.Fatalf("consent audit: %+v %v, want the agent as actor", evs, err)
		}

		mux := licenceMux(t, f)
		agentTok := "app:" + people["agent"].ID + "@" + ent.ID + ":licences:read"
		for _, r := range []struct {
			name, path, token string
			status, licences  int
		}{
			{"agent acting", licencesPath, agentTok, 200, 1},
			{"legal representative acting", licencesPath, "app:" + people["rep"].ID + "@" + ent.ID + ":licences:read", 200, 1},
			{"agent for themself", licencesPath, "app:" + people["agent"].ID + ":licences:read", 200, 0},
			{"client naming the enterprise", licencesPath + "?sub=" + ent.ID, "app::licences:read", 200, 1},
			{"another client naming the enterprise", licencesPath + "?sub=" + ent.ID, "app2::licences:read", 200, 0},
			{"a stranger's token acting", licencesPath, "app:" + people["stranger"].ID + "@" + ent.ID + ":licences:read", 403, 0},
		} {
			code, out := call(t, mux, "GET", r.path, r.token, nil)
			list, _ := out["licences"].([]any)
			if code != r.status || len(list) != r.licences {
				t.Errorf("%s: %d %v, want %d with %d licences", r.name, code, out, r.status, r.licences)
			}
		}
		if code, out := call(t, mux, "GET", licencesPath+"/"+lic.Identifier, agentTok, nil); code != 200 || out["identifier"] != lic.Identifier {
			t.Fatalf("agent reads the licence: %d %v", code, out)
		}

		if err := ents.RemoveAgent(ctx, ent.ID, people["agent"].ID); err != nil {
			t.Fatal(err)
		}
		if code, out := call(t, mux, "GET", licencesPath, agentTok, nil); code != 403 || !strings.Contains(out["detail"].(string), "no longer act") {
			t.Fatalf("removed agent's token: %d %v, want 403", code, out)
		}
		if _, err := f.lics.ActingHolder(ctx, people["agent"].ID, ent.ID); !errors.Is(err, users.ErrNotAgent) {
			t.Fatalf("removed agent acting: %v, want ErrNotAgent", err)
		}
	})
}

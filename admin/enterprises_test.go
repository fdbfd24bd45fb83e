package admin

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// creditCode draws a valid unified social credit code: random body, and
// the check character the validator accepts.
func creditCode(t *testing.T) string {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
	body := make([]byte, 17)
	for i := range body {
		body[i] = alphabet[rand.IntN(len(alphabet))]
	}
	for _, c := range alphabet {
		if code, err := users.NormalizeCreditCode(string(body) + string(c)); err == nil {
			return code
		}
	}
	t.Fatal("no check character fits")
	return ""
}

// wrongCheck is a credit code with a wrong check character.
func wrongCheck(code string) string {
	last := code[17]
	for _, c := range []byte("0123456789ABCDEFGHJKLMNPQRTUWXY") {
		if c != last {
			return code[:17] + string(c)
		}
	}
	return code
}

func TestEnterprises(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		rep, agent := f.staffA, f.staffB
		f.tokens["rep"] = struct {
			client, subject string
			scopes          []string
		}{"console", rep.ID, []string{"admin"}}
		f.tokens["agent"] = struct {
			client, subject string
			scopes          []string
		}{"console", agent.ID, []string{"admin"}}

		code := creditCode(t)
		status, body, _ := f.do("super", "POST", "/enterprises", `{"credit_code":"`+wrongCheck(code)+`","name":" ","legal_representative_id":"nobody"}`)
		if p := decodeProblem(t, body); status != 400 || len(p.Errors) != 3 {
			t.Fatalf("bad enterprise: %d %s", status, body)
		}
		if status, body, _ := f.do("town", "POST", "/enterprises", `{"credit_code":"`+code+`","name":"Acme","legal_representative_id":"`+rep.ID+`"}`); status != 403 {
			t.Fatalf("org admin created an enterprise: %d %s", status, body)
		}
		status, body, _ = f.do("super", "POST", "/enterprises", `{"credit_code":"`+code+`","name":"示例科技有限公司","legal_representative_id":"`+rep.ID+`"}`)
		var ent enterpriseView
		json.Unmarshal(body, &ent)
		if status != 201 || ent.Enterprise == nil || ent.CreditCode != code || len(ent.Agents) != 1 || ent.Agents[0].UserID != rep.ID {
			t.Fatalf("create: %d %s", status, body)
		}
		if status, body, _ := f.do("super", "POST", "/enterprises", `{"credit_code":"`+code+`","name":"Again","legal_representative_id":"`+rep.ID+`"}`); status != 409 {
			t.Fatalf("duplicate credit code: %d %s", status, body)
		}
		path := "/enterprises/" + ent.ID

		tests := []struct {
			name, token, method, path, body string
			want                            int
		}{
			{"a stranger cannot read it", "agent", "GET", path, "", 403},
			{"a stranger cannot add agents", "agent", "POST", path + "/agents", `{"user_id":"` + agent.ID + `"}`, 403},
			{"the legal representative reads it", "rep", "GET", path, "", 200},
			{"an unknown person is not added", "rep", "POST", path + "/agents", `{"user_id":"nobody"}`, 400},
			{"an enterprise cannot be an agent", "rep", "POST", path + "/agents", `{"user_id":"` + ent.ID + `"}`, 400},
			{"the legal representative adds an agent", "rep", "POST", path + "/agents", `{"user_id":"` + agent.ID + `"}`, 200},
			{"the same agent twice", "rep", "POST", path + "/agents", `{"user_id":"` + agent.ID + `"}`, 409},
			{"an agent cannot manage agents", "agent", "DELETE", path + "/agents/" + rep.ID, "", 403},
			{"the legal representative cannot be removed", "super", "DELETE", path + "/agents/" + rep.ID, "", 409},
			{"the legal representative removes an agent", "rep", "DELETE", path + "/agents/" + agent.ID, "", 200},
			{"removing a non-agent", "rep", "DELETE", path + "/agents/" + agent.ID, "", 404},
			{"an admin adds an agent", "super", "POST", path + "/agents", `{"user_id":"` + agent.ID + `"}`, 200},
			{"transfer needs a person", "rep", "POST", path + ":transfer-legal-representative", `{"legal_representative_id":""}`, 400},
			{"the legal representative hands over", "rep", "POST", path + ":transfer-legal-representative", `{"legal_representative_id":"` + agent.ID + `"}`, 200},
			{"the former representative is now only an agent", "rep", "GET", path, "", 403},
			{"the new representative reads it", "agent", "GET", path, "", 200},
			{"unknown enterprise", "super", "GET", "/enterprises/nope", "", 404},
		}
		for _, tt := range tests {
			status, body, h := f.do(tt.token, tt.method, tt.path, tt.body)
			if status != tt.want {
				t.Fatalf("%s: %s %s: %d, want %d: %s", tt.name, tt.method, tt.path, status, tt.want, body)
			}
			if status >= 400 && h.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%s: error answered as %q", tt.name, h.Get("Content-Type"))
			}
		}
		got, _ := f.api.Enterprises.Get(ctx, ent.ID)
		agents, _ := f.api.Enterprises.Agents(ctx, ent.ID)
		if got.LegalRepID != agent.ID || len(agents) != 2 || agents[0].UserID != agent.ID || agents[0].Role != users.RoleLegalRepresentative {
			t.Fatalf("after transfer: %+v %+v", got, agents)
		}
		for _, action := range []string{actionEnterpriseCreate, actionEnterpriseAgentAdd, actionEnterpriseAgentRemove, actionEnterpriseTransferRep} {
			if list, _ := f.api.Audit.List(ctx, audit.Filter{Subject: ent.ID, Action: action}); len(list) == 0 {
				t.Fatalf("%s not audited", action)
			}
		}
		// A person without an admin role still reaches nothing else.
		if status, _, _ := f.do("rep", "GET", "/users/"+agent.ID, ""); status != 403 {
			t.Fatalf("a role-less person read an account: %d", status)
		}
	})
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/certs"
	"github.com/govsso/sso/db"
)

func TestCertsCommands(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			created := te.run(t, "", "certs", "init", "--name", "Test City", "--json")
			if created.code != 0 {
				t.Fatalf("certs init: exit %d %s", created.code, created.stderr)
			}
			var ca []certs.Certificate
			if err := json.Unmarshal([]byte(created.stdout), &ca); err != nil || len(ca) != 2 {
				t.Fatalf("certs init output %q: %v", created.stdout, err)
			}
			if ca[0].Kind != certs.KindRoot || ca[1].Kind != certs.KindCA || !strings.Contains(ca[0].Subject, "Test City Root CA") {
				t.Fatalf("certs init made %+v", ca)
			}
			again := te.run(t, "", "certs", "init")
			if again.code != 1 || !strings.Contains(again.stdout, ca[0].Serial) || !strings.Contains(again.stderr, "already exists") {
				t.Fatalf("second init: exit %d stdout %q stderr %q", again.code, again.stdout, again.stderr)
			}
			pem := te.run(t, "", "certs", "pem", ca[1].ID)
			c, err := smx509.ParseCertificatePEM([]byte(pem.stdout))
			if pem.code != 0 || err != nil || !c.IsCA {
				t.Fatalf("certs pem: exit %d %v %q", pem.code, err, pem.stderr)
			}
			if r := te.run(t, "", "certs", "revoke", ca[0].Serial); r.code != 1 {
				t.Fatalf("revoking the root: exit %d, want 1", r.code)
			}
			if r := te.run(t, "", "certs", "list"); r.code != 0 || strings.Count(r.stdout, "active") != 2 {
				t.Fatalf("certs list: exit %d %q", r.code, r.stdout)
			}
			if r := te.run(t, "", "certs", "import"); r.code != 2 {
				t.Fatalf("import without flags: exit %d, want 2", r.code)
			}
		})
	}
}

func TestServeAnswersCertsEndpoints(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	if r := te.run(t, "", "certs", "init"); r.code != 0 {
		t.Fatalf("certs init: %s", r.stderr)
	}
	serveOnce(t, te, func(base string) {
		resp, err := http.Get(base + "/certs/crl")
		if err != nil {
			t.Fatal(err)
		}
		der, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if _, err := smx509.ParseRevocationList(der); resp.StatusCode != 200 || err != nil {
			t.Fatalf("GET /certs/crl: %d %v", resp.StatusCode, err)
		}
		resp, err = http.Post(base+"/certs/api/v1/verify", "application/json", strings.NewReader(`{"data_base64":"!"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "data_base64") {
			t.Fatalf("POST verify with bad base64: %d %s", resp.StatusCode, body)
		}
	})
}

func TestLicenceTypeCommands(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			te := newTestEnv(t, dialect)
			code := e2eCreditCode(t) + "011"
			created := te.run(t, "", "certs", "licence-type", "create", "--code", code, "--name", "营业执照",
				"--field", "scope:经营范围:required,shareable", "--field", "capital:注册资本", "--json")
			if created.code != 0 {
				t.Fatalf("licence-type create: exit %d %s", created.code, created.stderr)
			}
			var got []certs.LicenceType
			if err := json.Unmarshal([]byte(created.stdout), &got); err != nil || len(got) != 1 {
				t.Fatalf("create output %q: %v", created.stdout, err)
			}
			want := []certs.LicenceField{{Name: "scope", Label: "经营范围", Required: true, Shareable: true}, {Name: "capital", Label: "注册资本"}}
			if got[0].TypeCode != code || got[0].DefiningBodyCreditCode != code[:18] || fmt.Sprint(got[0].Fields) != fmt.Sprint(want) {
				t.Fatalf("created %+v", got[0])
			}
			wrong := "0"
			if code[17] == '0' {
				wrong = "1"
			}
			refusals := []struct {
				name string
				args []string
				code int
				msg  string
			}{
				{"again", []string{"--code", code, "--name", "x"}, 1, "already exists"},
				{"bad check", []string{"--code", code[:17] + wrong + "012", "--name", "x"}, 1, "check"},
				{"no name", []string{"--code", code}, 2, "--name"},
				{"unknown flag", []string{"--code", code[:18] + "013", "--name", "x", "--field", "a:b:secret"}, 2, "unknown flag"},
				{"control char", []string{"--code", code[:18] + "014", "--name", "x\x07"}, 1, "control characters"},
			}
			for _, r := range refusals {
				res := te.run(t, "", append([]string{"certs", "licence-type", "create"}, r.args...)...)
				if res.code != r.code || !strings.Contains(res.stderr, r.msg) {
					t.Errorf("%s: exit %d %q, want %d naming %q", r.name, res.code, res.stderr, r.code, r.msg)
				}
			}
			list := te.run(t, "", "certs", "licence-type", "list")
			if list.code != 0 || strings.Count(list.stdout, code[:18]) != 2 || !strings.Contains(list.stdout, "scope(required,shareable)") {
				t.Fatalf("licence-type list: exit %d %q", list.code, list.stdout)
			}
		})
	}
}

// The public verification endpoints count requests per client address
// across the server (SSO_VERIFY_RATE_LIMIT) and answer 429 with Retry-After.
func TestServeRateLimitsVerification(t *testing.T) {
	te := newTestEnv(t, db.SQLite)
	te["SSO_VERIFY_RATE_LIMIT"] = "2"
	if r := te.run(t, "", "certs", "init"); r.code != 0 {
		t.Fatalf("certs init: %s", r.stderr)
	}
	base := startServer(t, te)
	var codes []int
	var retry string
	for range 3 {
		resp, err := http.Post(base+"/certs/api/v1/verify", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		retry = resp.Header.Get("Retry-After")
	}
	if fmt.Sprint(codes) != "[400 400 429]" || retry == "" {
		t.Fatalf("statuses %v, Retry-After %q; want two answers then 429 with Retry-After", codes, retry)
	}
}

package certs

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// fakeClient is what a test bearer token stands for.
type fakeClient struct {
	id     string
	scopes []string
}

// licenceMux serves the licence API with bearer tokens "issuer", "other"
// (both with licences:issue) and "reader" (without).
func licenceMux(t *testing.T, f *licenceFixture) http.Handler {
	t.Helper()
	tokens := map[string]fakeClient{
		"issuer": {"dept-client", []string{"openid", ScopeLicencesIssue}},
		"other":  {"other-client", []string{ScopeLicencesIssue}},
		"reader": {"reader-client", []string{"licences:read"}},
	}
	f.lics.cfg.Authenticate = func(r *http.Request) (string, []string, error) {
		c, ok := tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			return "", nil, errors.New("unknown token")
		}
		return c.id, c.scopes, nil
	}
	mux := http.NewServeMux()
	f.lics.Register(mux)
	return mux
}

func call(t *testing.T, mux http.Handler, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(mustJSON(t, body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: status %d, body not JSON: %q", method, path, rec.Code, rec.Body.String())
	}
	return rec.Code, out
}

const licencesPath = "/certs/api/v1/licences"

func TestLicenceHTTPLifecycle(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		mux := licenceMux(t, f)
		code, lic := call(t, mux, http.MethodPost, licencesPath, "issuer", f.request(t))
		if code != http.StatusCreated {
			t.Fatalf("issue: %d %v", code, lic)
		}
		id := lic["identifier"].(string)
		signed := map[string]any{"signed_data": lic["signed_data"], "signature": lic["signature"]}
		if _, ok := lic["holder_id_number"]; ok {
			t.Error("the issue answer shows the holder's number outside signed_data")
		}

		code, st := call(t, mux, http.MethodGet, licencesPath+"/"+id+"/status", "", nil)
		if code != http.StatusOK || st["status"] != "valid" || st["issuer"] != "City Market Bureau" || st["version"] != "001" {
			t.Fatalf("status: %d %v", code, st)
		}
		steps := []struct {
			op, token string
			body      any
			wantCode  int
			verdict   string
		}{
			{"", "", nil, 0, "valid"},
			{":suspend", "other", map[string]string{"reason": "x"}, http.StatusForbidden, "valid"},
			{":suspend", "issuer", map[string]string{"reason": "inspection"}, http.StatusOK, "suspended"},
			{":revoke", "issuer", map[string]string{"status_code": "03"}, http.StatusOK, "revoked"},
			{":renew", "issuer", nil, http.StatusConflict, "revoked"},
		}
		for _, s := range steps {
			if s.op != "" {
				code, out := call(t, mux, http.MethodPost, licencesPath+"/"+id+s.op, s.token, s.body)
				if code != s.wantCode {
					t.Fatalf("%s by %s: %d %v", s.op, s.token, code, out)
				}
			}
			code, v := call(t, mux, http.MethodPost, licencesPath+"/verify", "", signed)
			if code != http.StatusOK || v["result"] != s.verdict || v["issuer_credit_code"] != f.issuer {
				t.Fatalf("after %q: verify %d %v, want %s", s.op, code, v, s.verdict)
			}
		}
		_, st = call(t, mux, http.MethodGet, licencesPath+"/"+id+"/status", "", nil)
		if st["status"] != "revoked" || st["status_code"] != "03" {
			t.Fatalf("status after revocation: %v", st)
		}
	})
}

func TestLicenceHTTPRenew(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		mux := licenceMux(t, f)
		_, lic := call(t, mux, http.MethodPost, licencesPath, "issuer", f.request(t))
		id := lic["identifier"].(string)
		code, next := call(t, mux, http.MethodPost, licencesPath+"/"+id+":renew", "issuer", map[string]string{"valid_to": "2099-12-31"})
		if code != http.StatusOK || next["previous_identifier"] != id || next["version"] != "002" {
			t.Fatalf("renew: %d %v", code, next)
		}
		_, st := call(t, mux, http.MethodGet, licencesPath+"/"+id+"/status", "", nil)
		if st["status"] != "superseded" || st["superseded_by"] != next["identifier"] {
			t.Fatalf("old version: %v", st)
		}
	})
}

func TestLicenceHTTPRefusals(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		mux := licenceMux(t, f)
		unknown, _ := LicenceIdentifier(f.typ.TypeCode, f.issuer, "20990000001", "001")
		cases := []struct {
			name, method, path, token string
			body                      any
			want                      int
		}{
			{"issue without scope", http.MethodPost, licencesPath, "reader", f.request(t), http.StatusForbidden},
			{"issue without token", http.MethodPost, licencesPath, "", f.request(t), http.StatusUnauthorized},
			{"issue bad holder", http.MethodPost, licencesPath, "issuer", map[string]any{"type_code": f.typ.TypeCode, "holder_id_type": HolderResidentID, "holder_id_number": "123"}, http.StatusBadRequest},
			{"status malformed", http.MethodGet, licencesPath + "/1.2.156.3005.2.nonsense/status", "", nil, http.StatusBadRequest},
			{"status wrong check", http.MethodGet, licencesPath + "/" + unknown[:len(unknown)-1] + flip(unknown[len(unknown)-1]) + "/status", "", nil, http.StatusBadRequest},
			{"status unknown", http.MethodGet, licencesPath + "/" + unknown + "/status", "", nil, http.StatusNotFound},
			{"suspend malformed", http.MethodPost, licencesPath + "/1.2.3:suspend", "issuer", nil, http.StatusBadRequest},
			{"suspend without scope", http.MethodPost, licencesPath + "/" + unknown + ":suspend", "reader", nil, http.StatusForbidden},
			{"unknown action", http.MethodPost, licencesPath + "/" + unknown + ":burn", "issuer", nil, http.StatusNotFound},
			{"verify empty", http.MethodPost, licencesPath + "/verify", "", map[string]string{}, http.StatusBadRequest},
			{"verify not a licence", http.MethodPost, licencesPath + "/verify", "", map[string][]byte{"signed_data": []byte("[]"), "signature": []byte("x")}, http.StatusBadRequest},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				code, out := call(t, mux, tc.method, tc.path, tc.token, tc.body)
				if code != tc.want {
					t.Fatalf("status %d, want %d: %v", code, tc.want, out)
				}
				if out["status"] != float64(tc.want) || out["detail"] == "" {
					t.Fatalf("not a problem document: %v", out)
				}
			})
		}
		if n := countRows(t, d, `SELECT COUNT(*) FROM licences`); n != 0 {
			t.Fatalf("%d licences stored by refused requests", n)
		}
	})
}

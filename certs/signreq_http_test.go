package certs

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// signMux serves the sign request API with bearer tokens "dept" and
// "other" (both with sign:request) and "noscope" (dept without it).
func signMux(f *signFixture) http.Handler {
	tokens := map[string]fakeClient{
		"dept":    {"dept", []string{"openid", ScopeSignRequest}},
		"other":   {"other-dept", []string{ScopeSignRequest}},
		"noscope": {"dept", []string{"openid", ScopeLicencesIssue}},
	}
	f.sr.cfg.Authenticate = func(r *http.Request) (string, []string, error) {
		c, ok := tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			return "", nil, errors.New("unknown token")
		}
		return c.id, c.scopes, nil
	}
	mux := http.NewServeMux()
	f.sr.Register(mux)
	return mux
}

func TestSignRequestHTTPCreateAndGet(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newSignFixture(t, d)
		mux := signMux(f)
		doc := []byte("permit")
		code, out := call(t, mux, "POST", "/certs/api/v1/sign-requests", "dept", map[string]any{
			"data_base64": base64.StdEncoding.EncodeToString(doc), "title": "Permit", "sub": "sub-alice",
			"callback_url": "https://dept.example.test/cb"})
		if code != http.StatusCreated || out["status"] != "pending" || out["expires_at"] == nil {
			t.Fatalf("create: %d %v", code, out)
		}
		id, _ := out["id"].(string)
		if out["approval_url"] != "https://sso.example.test/account/sign-requests/"+id {
			t.Fatalf("approval_url %v", out["approval_url"])
		}
		if code, out := call(t, mux, "GET", "/certs/api/v1/sign-requests/"+id, "other", nil); code != http.StatusNotFound {
			t.Fatalf("another client's request: %d %v", code, out)
		}
		if code, out := call(t, mux, "GET", "/certs/api/v1/sign-requests/"+id, "dept", nil); code != http.StatusOK || out["cms_base64"] != nil {
			t.Fatalf("pending: %d %v", code, out)
		}
		if _, err := f.sr.Approve(context.Background(), "alice", id, f.fresh(), users.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
		code, out = call(t, mux, "GET", "/certs/api/v1/sign-requests/"+id, "dept", nil)
		if code != http.StatusOK || out["status"] != "signed" || out["raw_signed_message"] != "data" ||
			out["signer_id"] != DefaultSignerID || !strings.HasPrefix(out["certificate_pem"].(string), "-----BEGIN CERTIFICATE-----") {
			t.Fatalf("signed: %d %v", code, out)
		}
		// What the client got verifies through the public verification API.
		cert, err := ParseCertificatePEM([]byte(out["certificate_pem"].(string)))
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.StdEncoding.DecodeString(out["signature_base64"].(string))
		if res, err := f.ca.Verify(context.Background(), RawSignature{Data: doc, Signature: sig, Certificate: cert}); err != nil || !res.Valid {
			t.Fatalf("raw: %+v %v", res, err)
		}
	})
}

func TestSignRequestHTTPRefusesBadInput(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newSignFixture(t, d)
		mux := signMux(f)
		good := func() map[string]any {
			return map[string]any{"sm3_digest_hex": strings.Repeat("0a", 32), "title": "Permit", "sub": "sub-alice",
				"callback_url": "https://dept.example.test/cb"}
		}
		with := func(k string, v any) map[string]any {
			m := good()
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
			return m
		}
		cases := []struct {
			name  string
			token string
			body  any
			want  int
		}{
			{"no token", "", good(), http.StatusUnauthorized},
			{"bad token", "forged", good(), http.StatusUnauthorized},
			{"wrong scope", "noscope", good(), http.StatusForbidden},
			{"missing title", "dept", with("title", nil), http.StatusBadRequest},
			{"oversized title", "dept", with("title", strings.Repeat("x", MaxSignTitle+1)), http.StatusBadRequest},
			{"bad digest hex", "dept", with("sm3_digest_hex", "xyz"), http.StatusBadRequest},
			{"unknown sub", "dept", with("sub", "nobody"), http.StatusBadRequest},
			{"sub unknown to this client", "other", good(), http.StatusBadRequest},
			{"http callback", "dept", with("callback_url", "http://dept.example.test/cb"), http.StatusBadRequest},
			{"unknown field", "dept", with("colour", "blue"), http.StatusBadRequest},
			{"not an object", "dept", []int{1}, http.StatusBadRequest},
		}
		for _, c := range cases {
			if code, out := call(t, mux, "POST", "/certs/api/v1/sign-requests", c.token, c.body); code != c.want {
				t.Errorf("%s: %d %v, want %d", c.name, code, out, c.want)
			} else if out["detail"] == "" || out["detail"] == nil {
				t.Errorf("%s: no detail naming the problem: %v", c.name, out)
			}
		}
		big := strings.Repeat("A", maxSignBody+10)
		req := httptest.NewRequest("POST", "/certs/api/v1/sign-requests", strings.NewReader(`{"data_base64":"`+big+`"}`))
		req.Header.Set("Authorization", "Bearer dept")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: %d", rec.Code)
		}
		if code, _ := call(t, mux, "GET", "/certs/api/v1/sign-requests/0190c0de-0000-7000-8000-000000000000", "dept", nil); code != http.StatusNotFound {
			t.Errorf("unknown id: %d", code)
		}
		if list, _ := f.sr.Pending(context.Background(), "alice"); len(list) != 0 {
			t.Fatalf("refused requests were stored: %d", len(list))
		}
	})
}

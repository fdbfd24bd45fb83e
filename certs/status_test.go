package certs

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestCertificateStatusEndpoint(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		initCA(t, s)
		good := issueUser(t, s, nil)
		revoked := issueUser(t, s, nil)
		if err := s.Revoke(context.Background(), revoked.Serial, ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		s.Register(mux)
		path := func(serial string) string { return "/certs/api/v1/certificates/" + serial + "/status" }
		cases := []struct {
			name, serial string
			code         int
			status       string
		}{
			{"good", good.Serial, http.StatusOK, CertGood},
			{"good, upper case", strings.ToUpper(good.Serial), http.StatusOK, CertGood},
			{"revoked", revoked.Serial, http.StatusOK, CertRevoked},
			{"unknown", "0123456789abcdef", http.StatusOK, CertUnknown},
			{"not hex", "xyz", http.StatusBadRequest, ""},
			{"negative", "-1f", http.StatusBadRequest, ""},
			{"zero", "00", http.StatusBadRequest, ""},
			{"too long", strings.Repeat("a", 41), http.StatusBadRequest, ""},
		}
		for _, c := range cases {
			code, out := call(t, mux, "GET", path(c.serial), "", nil)
			if code != c.code || (c.status != "" && out["status"] != c.status) {
				t.Errorf("%s: %d %v, want %d %s", c.name, code, out, c.code, c.status)
			}
			if c.status == CertRevoked && (out["revoked_at"] == nil || out["revocation_reason"] != float64(ReasonKeyCompromise)) {
				t.Errorf("revoked without time and reason: %v", out)
			}
			if c.status == CertGood && (out["revoked_at"] != nil || out["not_after"] == nil) {
				t.Errorf("good: %v", out)
			}
		}
	})
}

func TestRevokeUserCertificatesOnDisable(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		ca := initCA(t, s)
		issue := func(owner string) *Certificate {
			c, err := s.Issue(ctx, IssueRequest{Subject: pkix.Name{CommonName: owner}, Kind: KindUser, OwnerUserID: owner})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		a1, a2, other := issue("alice"), issue("alice"), issue("bob")
		n, err := s.RevokeUserCertificates(ctx, "alice", ReasonCessationOfOperation, "account_disabled")
		if err != nil || n != 2 {
			t.Fatalf("RevokeUserCertificates = %d, %v; want 2", n, err)
		}
		for _, c := range []*Certificate{a1, a2} {
			st, err := s.StatusOf(ctx, c.Serial)
			if err != nil || st.Status != CertRevoked || *st.RevocationReason != ReasonCessationOfOperation {
				t.Fatalf("%s: %+v %v", c.Serial, st, err)
			}
		}
		if st, _ := s.StatusOf(ctx, other.Serial); st.Status != CertGood {
			t.Fatalf("another person's certificate: %s", st.Status)
		}
		crl := crlOf(t, s, ca)
		listed := map[string]bool{}
		for _, e := range crl.RevokedCertificateEntries {
			listed[serialHex(e.SerialNumber)] = true
		}
		if !listed[a1.Serial] || !listed[a2.Serial] || listed[other.Serial] {
			t.Fatalf("CRL lists %v", listed)
		}
		evs, _ := audit.NewLog(d).List(ctx, audit.Filter{Subject: "alice", Action: "certs.revoke"})
		if len(evs) != 2 || evs[0].Details["cause"] != "account_disabled" {
			t.Fatalf("audit: %+v", evs)
		}
		if n, err := s.RevokeUserCertificates(ctx, "alice", ReasonCessationOfOperation, "account_disabled"); n != 0 || err != nil {
			t.Fatalf("second call: %d %v", n, err)
		}
		if _, err := s.RevokeUserCertificates(ctx, "", 0, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("empty user id: %v", err)
		}
	})
}

func TestHolderRevokesOnlyOwnCertificate(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		ca := initCA(t, s)
		issue := func(owner string) *Certificate {
			c, err := s.Issue(ctx, IssueRequest{Subject: pkix.Name{CommonName: owner}, Kind: KindUser, OwnerUserID: owner})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		mine, theirs := issue("alice"), issue("bob")
		if list, err := s.OwnedBy(ctx, "alice"); err != nil || len(list) != 1 || list[0].Serial != mine.Serial {
			t.Fatalf("OwnedBy: %v, %v", list, err)
		}
		for _, tc := range []struct{ name, user, serial string }{
			{"someone else's", "alice", theirs.Serial},
			{"unknown", "alice", "00ff00ff"},
			{"not hexadecimal", "alice", "zz"},
			{"no user", "", mine.Serial},
		} {
			if err := s.RevokeOwned(ctx, tc.user, tc.serial, ReasonKeyCompromise); !errors.Is(err, ErrNotRevocable) {
				t.Errorf("%s: %v, want ErrNotRevocable", tc.name, err)
			}
		}
		if st, _ := s.StatusOf(ctx, theirs.Serial); st.Status != CertGood {
			t.Fatalf("bob's certificate: %s", st.Status)
		}
		if err := s.RevokeOwned(ctx, "alice", strings.ToUpper(mine.Serial), ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.StatusOf(ctx, mine.Serial); st.Status != CertRevoked || *st.RevocationReason != ReasonKeyCompromise {
			t.Fatalf("after revocation: %+v", st)
		}
		listed := false
		for _, e := range crlOf(t, s, ca).RevokedCertificateEntries {
			listed = listed || serialHex(e.SerialNumber) == mine.Serial
		}
		if !listed {
			t.Fatal("the CRL does not list the revoked certificate")
		}
		if err := s.RevokeOwned(ctx, "alice", mine.Serial, ReasonKeyCompromise); !errors.Is(err, ErrNotRevocable) {
			t.Fatalf("revoked twice: %v", err)
		}
	})
}

// Erasing an account destroys the keys the server held for the person:
// nothing signs in their name again, their certificates stay (revoked) so
// that what they signed before still verifies, and others are untouched.
func TestDestroyUserKeys(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		initCA(t, s)
		issue := func(owner string) *Certificate {
			c, err := s.Issue(ctx, IssueRequest{Subject: pkix.Name{CommonName: owner}, Kind: KindUser, OwnerUserID: owner})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		mine, other := issue("alice"), issue("bob")
		before, err := s.Sign(ctx, mine.ID, []byte("signed before the erasure"))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.DestroyUserKeys(ctx, "alice"); n != 1 || err != nil {
			t.Fatalf("DestroyUserKeys = %d, %v; want 1", n, err)
		}
		if _, err := s.Sign(ctx, mine.ID, []byte("after")); err == nil {
			t.Fatal("signed with a destroyed key")
		}
		if _, err := s.Sign(ctx, other.ID, []byte("another person")); err != nil {
			t.Fatalf("another person's key: %v", err)
		}
		st, err := s.StatusOf(ctx, mine.Serial)
		if err != nil || st.Status != CertRevoked {
			t.Fatalf("the erased person's certificate: %+v %v", st, err)
		}
		if len(before) == 0 {
			t.Fatal("no signature")
		}
		evs, _ := audit.NewLog(d).List(ctx, audit.Filter{Subject: "alice", Action: "certs.keys_destroyed"})
		if len(evs) != 1 || evs[0].Details["keys"] != "1" {
			t.Fatalf("audit: %+v", evs)
		}
		if n, err := s.DestroyUserKeys(ctx, "alice"); n != 0 || err != nil {
			t.Fatalf("second call: %d %v", n, err)
		}
	})
}

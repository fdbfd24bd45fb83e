package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// randomDigits returns n random decimal digits.
func randomDigits(t testing.TB, n int) string {
	t.Helper()
	out := make([]byte, n)
	for i := range out {
		v, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = byte('0' + v.Int64())
	}
	return string(out)
}

// testCreditCode makes a random unified social credit code with a correct check character.
func testCreditCode(t testing.TB) string {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
	weights := [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
	body := "91" + randomDigits(t, 15)
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string(alphabet[(31-sum%31)%31])
}

// testIDNumber makes a random resident ID number with a plausible birth date and a correct check character.
func testIDNumber(t testing.TB) string {
	t.Helper()
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	body := "110101" + "1990" + "0615" + randomDigits(t, 3)
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string("10X98765432"[sum%11])
}

type licenceFixture struct {
	svc    *Service
	clock  *testClock
	lics   *Licences
	typ    *LicenceType
	issuer string
}

func newLicenceFixture(t testing.TB, d *db.DB) *licenceFixture {
	t.Helper()
	svc, clock := newTestService(t, d)
	initCA(t, svc)
	key := make([]byte, kek.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	lics := NewLicences(svc, k, LicenceConfig{})
	body := testCreditCode(t)
	typ, err := lics.CreateLicenceType(context.Background(), LicenceType{TypeCode: body + "011", Name: "Business licence",
		DefiningBodyCreditCode: body, Fields: []LicenceField{{Name: "scope", Label: "Business scope", Required: true}, {Name: "note"}}})
	if err != nil {
		t.Fatalf("CreateLicenceType: %v", err)
	}
	return &licenceFixture{svc: svc, clock: clock, lics: lics, typ: typ, issuer: testCreditCode(t)}
}

func (f *licenceFixture) request(t *testing.T) IssueLicenceRequest {
	return IssueLicenceRequest{TypeCode: f.typ.TypeCode, HolderName: "Holder " + randomHex(t), HolderIDType: HolderResidentID,
		HolderIDNumber: testIDNumber(t), IssuerName: "City Market Bureau", IssuerCreditCode: f.issuer,
		ValidTo: f.clock.t.AddDate(1, 0, 0).Format(time.DateOnly), Fields: map[string]string{"scope": "retail <&> wholesale"},
		ClientID: "dept-client"}
}

func (f *licenceFixture) issue(t *testing.T) *Licence {
	t.Helper()
	lic, err := f.lics.IssueLicence(context.Background(), f.request(t))
	if err != nil {
		t.Fatalf("IssueLicence: %v", err)
	}
	return lic
}

func (f *licenceFixture) verify(t *testing.T, data, sig []byte) *LicenceVerification {
	t.Helper()
	res, err := f.lics.VerifyLicence(context.Background(), data, sig)
	if err != nil {
		t.Fatalf("VerifyLicence: %v", err)
	}
	return res
}

func countRows(t *testing.T, d *db.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLicenceLifecycle(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLicenceFixture(t, d)
		lic := f.issue(t)
		if _, err := ParseLicenceIdentifier(lic.Identifier); err != nil {
			t.Fatalf("issued identifier %s: %v", lic.Identifier, err)
		}
		if lic.Version != "001" || len(lic.Serial) != 11 {
			t.Fatalf("version %s serial %s", lic.Version, lic.Serial)
		}
		st, err := f.lics.LicenceStatusOf(ctx, lic.Identifier)
		if err != nil || st.Status != LicenceValid || st.IssuerCreditCode != f.issuer {
			t.Fatalf("status %+v, %v", st, err)
		}
		if v := f.verify(t, lic.SignedData, lic.Signature); v.Result != VerdictValid || v.IssuerCreditCode != f.issuer {
			t.Fatalf("fresh licence: %+v", v)
		}
		if _, err := f.lics.SuspendLicence(ctx, "dept-client", lic.Identifier, "inspection"); err != nil {
			t.Fatal(err)
		}
		if v := f.verify(t, lic.SignedData, lic.Signature); v.Result != VerdictSuspended {
			t.Fatalf("suspended licence: %+v", v)
		}
		if _, err := f.lics.RevokeLicence(ctx, "dept-client", lic.Identifier, "03", "issued in error"); err != nil {
			t.Fatal(err)
		}
		v := f.verify(t, lic.SignedData, lic.Signature)
		if v.Result != VerdictRevoked || v.Licence.StatusCode != "03" {
			t.Fatalf("revoked licence: %+v", v)
		}
		if _, err := f.lics.SuspendLicence(ctx, "dept-client", lic.Identifier, ""); !errors.Is(err, ErrLicenceState) {
			t.Fatalf("suspend a revoked licence: %v", err)
		}
		for _, action := range []string{"licence.issue", "licence.suspend", "licence.revoke"} {
			if n := countRows(t, d, `SELECT COUNT(*) FROM audit_events WHERE action = ? AND subject = ?`, action, lic.Identifier); n != 1 {
				t.Errorf("%d %s audit events, want 1", n, action)
			}
		}
	})
}

func TestRevokeLicenceCodes(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		for code, want := range map[string]LicenceStatus{"03": LicenceRevoked, "04": LicenceCancelled, "07": LicenceRevokedByPenalty} {
			lic := f.issue(t)
			if _, err := f.lics.RevokeLicence(context.Background(), "dept-client", lic.Identifier, code, ""); err != nil {
				t.Fatal(err)
			}
			st, _ := f.lics.LicenceStatusOf(context.Background(), lic.Identifier)
			if st.Status != want || st.StatusCode != code {
				t.Errorf("code %s: status %s/%s", code, st.Status, st.StatusCode)
			}
		}
		lic := f.issue(t)
		if _, err := f.lics.RevokeLicence(context.Background(), "dept-client", lic.Identifier, "05", ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("code 05 (expiry is not a revocation): %v", err)
		}
		if _, err := f.lics.RevokeLicence(context.Background(), "other-client", lic.Identifier, "03", ""); !errors.Is(err, ErrForbidden) {
			t.Fatalf("another client revokes: %v", err)
		}
	})
}

func TestRenewLicenceLinksVersions(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLicenceFixture(t, d)
		old := f.issue(t)
		next, err := f.lics.RenewLicence(ctx, "dept-client", old.Identifier, RenewRequest{ValidTo: f.clock.t.AddDate(3, 0, 0).Format(time.DateOnly)})
		if err != nil {
			t.Fatal(err)
		}
		if next.Version != "002" || next.Serial != old.Serial || next.PreviousIdentifier != old.Identifier {
			t.Fatalf("renewal %+v", next)
		}
		if next.CertificateID != old.CertificateID {
			t.Errorf("renewal sealed by %s, first issue by %s: the issuer's certificate should be reused", next.CertificateID, old.CertificateID)
		}
		st, _ := f.lics.LicenceStatusOf(ctx, old.Identifier)
		if st.Status != LicenceSuperseded || st.SupersededBy != next.Identifier {
			t.Fatalf("old version status %+v", st)
		}
		if v := f.verify(t, old.SignedData, old.Signature); v.Result != VerdictSuperseded {
			t.Fatalf("old version verifies %s", v.Result)
		}
		if v := f.verify(t, next.SignedData, next.Signature); v.Result != VerdictValid {
			t.Fatalf("new version verifies %s", v.Result)
		}
		got, err := f.lics.Licence(ctx, next.Identifier)
		if err != nil || got.HolderIDNumber != old.HolderIDNumber {
			t.Fatalf("renewed holder number not carried over: %v", err)
		}
		if _, err := f.lics.RenewLicence(ctx, "dept-client", old.Identifier, RenewRequest{}); !errors.Is(err, ErrLicenceState) {
			t.Fatalf("renew a superseded version: %v", err)
		}
	})
}

func TestVerifyLicenceForgedAndNotFound(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		lic := f.issue(t)
		tampered := bytes.Replace(lic.SignedData, []byte(lic.HolderName), []byte("Someone Else"), 1)
		if v := f.verify(t, tampered, lic.Signature); v.Result != VerdictForged || v.Licence != nil {
			t.Fatalf("tampered holder name: %+v", v)
		}
		added := bytes.Replace(lic.SignedData, []byte(`"fields":{`), []byte(`"fields":{"extra":"1",`), 1)
		if v := f.verify(t, added, lic.Signature); v.Result != VerdictForged {
			t.Fatalf("added field: %+v", v)
		}
		other := f.issue(t)
		if v := f.verify(t, lic.SignedData, other.Signature); v.Result != VerdictForged {
			t.Fatalf("another licence's signature: %+v", v)
		}
		copyLic := *lic
		copyLic.Serial = "99990000001"
		copyLic.Identifier, _ = LicenceIdentifier(lic.TypeCode, lic.IssuerCreditCode, copyLic.Serial, "001")
		data, err := CanonicalLicence(&copyLic)
		if err != nil {
			t.Fatal(err)
		}
		if v := f.verify(t, data, lic.Signature); v.Result != VerdictNotFound {
			t.Fatalf("unknown identifier: %+v", v)
		}
		bad := bytes.Replace(lic.SignedData, []byte(lic.Identifier), []byte(lic.Identifier[:len(lic.Identifier)-1]+"!"), 1)
		if _, err := f.lics.VerifyLicence(context.Background(), bad, lic.Signature); !errors.Is(err, ErrLicenceIdentifier) {
			t.Fatalf("malformed identifier in data: %v", err)
		}
	})
}

func TestLicenceExpires(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		req := f.request(t)
		req.ValidTo = f.clock.t.In(chinaTime).AddDate(0, 0, 1).Format(time.DateOnly)
		lic, err := f.lics.IssueLicence(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.t = f.clock.t.AddDate(0, 0, 3)
		v := f.verify(t, lic.SignedData, lic.Signature)
		if v.Result != VerdictExpired || v.Licence.StatusCode != "05" {
			t.Fatalf("after valid_to: %+v", v)
		}
	})
}

func TestIssueLicenceRejectsBadInput(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newLicenceFixture(t, d)
		cases := []struct {
			name string
			edit func(*IssueLicenceRequest)
		}{
			{"holder ID check", func(r *IssueLicenceRequest) { r.HolderIDNumber = r.HolderIDNumber[:17] + flip(r.HolderIDNumber[17]) }},
			{"holder ID as credit code", func(r *IssueLicenceRequest) {
				r.HolderIDType = HolderCreditCode
				// About one random ID number in 31 is also a valid credit code.
				for _, err := users.NormalizeCreditCode(r.HolderIDNumber); err == nil; _, err = users.NormalizeCreditCode(r.HolderIDNumber) {
					r.HolderIDNumber = testIDNumber(t)
				}
			}},
			{"holder ID type", func(r *IssueLicenceRequest) { r.HolderIDType = "passport" }},
			{"issuer credit code", func(r *IssueLicenceRequest) { r.IssuerCreditCode = "not a code" }},
			{"unknown type", func(r *IssueLicenceRequest) { r.TypeCode = testCreditCode(t) + "001" }},
			{"missing required field", func(r *IssueLicenceRequest) { r.Fields = map[string]string{"note": "x"} }},
			{"undefined field", func(r *IssueLicenceRequest) { r.Fields["colour"] = "red" }},
			{"bad date", func(r *IssueLicenceRequest) { r.ValidFrom = "2024-13-01" }},
			{"ends before it starts", func(r *IssueLicenceRequest) { r.ValidFrom, r.ValidTo = "2030-01-02", "2030-01-01" }},
			{"no holder name", func(r *IssueLicenceRequest) { r.HolderName = "" }},
			{"over-long holder name", func(r *IssueLicenceRequest) { r.HolderName = strings.Repeat("名", MaxLicenceName+1) }},
			{"over-long licence number", func(r *IssueLicenceRequest) { r.LicenceNumber = strings.Repeat("9", MaxLicenceNumber+1) }},
			{"control character", func(r *IssueLicenceRequest) { r.IssuerName = "Bureau\x00" }},
			{"invalid UTF-8", func(r *IssueLicenceRequest) { r.LicenceName = "\xff\xfe" }},
			{"over-long field", func(r *IssueLicenceRequest) { r.Fields["note"] = strings.Repeat("x", MaxLicenceField+1) }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := f.request(t)
				tc.edit(&req)
				if _, err := f.lics.IssueLicence(context.Background(), req); !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
			})
		}
		if n := countRows(t, d, `SELECT COUNT(*) FROM licences`); n != 0 {
			t.Fatalf("%d licences stored after refused requests", n)
		}
	})
}

// flip returns another check character than c.
func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func TestCanonicalLicenceIsSortedAndCompact(t *testing.T) {
	lic := &Licence{Identifier: "i", HolderName: "A <B>", Fields: map[string]string{"b": "2", "a": "1"}}
	got, err := CanonicalLicence(lic)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"fields":{"a":"1","b":"2"},"holder_id_number":"","holder_id_type":"","holder_name":"A <B>","identifier":"i",` +
		`"issue_date":"","issuer_credit_code":"","issuer_name":"","licence_name":"","licence_number":"","previous_identifier":"",` +
		`"type_code":"","valid_from":"","valid_to":"","version":""}`
	if string(got) != want {
		t.Fatalf("canonical form\n got %s\nwant %s", got, want)
	}
}

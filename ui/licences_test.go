package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/users"
)

// fakeLicences holds one licence of the fixture's person and the
// applications allowed to read it; client "tax" may ask, others may not.
// The person may act for enterprise, which holds entLicence and entShares.
type fakeLicences struct {
	mu         sync.Mutex
	userID     string
	shares     []LicenceShareInfo
	enterprise string
	entShares  []LicenceShareInfo
}

var testLicence = LicenceInfo{Identifier: "1.2.156.3005.2.X.Y.1.001.U", Name: "营业执照 <i>", Number: "N-1", TypeName: "Business licence",
	Issuer: "Market Bureau", Status: "suspended", ValidTo: "2030-01-01"}

var entLicence = LicenceInfo{Identifier: "1.2.156.3005.2.X.Y.2.002.U", Name: "Enterprise permit", Number: "E-1", TypeName: "Business licence",
	Issuer: "Market Bureau", Status: "valid"}

// holder is whose licences the session sees, as cmd/sso decides it.
func (f *fakeLicences) holder(s *users.Session) (*[]LicenceShareInfo, []LicenceInfo, error) {
	switch {
	case s.ActingFor == "" && s.UserID == f.userID:
		return &f.shares, []LicenceInfo{testLicence}, nil
	case s.ActingFor == "":
		return nil, nil, nil
	case s.ActingFor == f.enterprise:
		return &f.entShares, []LicenceInfo{entLicence}, nil
	}
	return nil, nil, users.ErrNotAgent
}

func (f *fakeLicences) HolderLicences(_ context.Context, s *users.Session) ([]LicenceInfo, []LicenceShareInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	shares, lics, err := f.holder(s)
	if shares == nil {
		return nil, nil, err
	}
	return lics, append([]LicenceShareInfo(nil), (*shares)...), nil
}

func (f *fakeLicences) LicenceQR(_ context.Context, s *users.Session, id string) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, lics, err := f.holder(s)
	if err != nil {
		return "", time.Time{}, err
	}
	if len(lics) == 0 || lics[0].Identifier != id {
		return "", time.Time{}, ErrLicenceNotFound
	}
	return "payload.mac", time.Now().Add(5 * time.Minute), nil
}

func (f *fakeLicences) DescribeShare(_ context.Context, clientID, typeCode string) (*LicenceShareInfo, error) {
	if clientID != "tax" || typeCode != "T1" {
		return nil, ErrLicenceShareInvalid
	}
	return &LicenceShareInfo{ClientID: "tax", ClientName: "Tax Bureau", TypeCode: "T1", TypeName: "Business licence"}, nil
}

func (f *fakeLicences) GrantLicenceShare(ctx context.Context, s *users.Session, clientID, typeCode string, _ users.RequestMeta) error {
	info, err := f.DescribeShare(ctx, clientID, typeCode)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	shares, _, err := f.holder(s)
	if err != nil {
		return err
	}
	info.Since = time.Now()
	*shares = append(*shares, *info)
	return nil
}

func (f *fakeLicences) RevokeLicenceShare(_ context.Context, s *users.Session, clientID, typeCode string, _ users.RequestMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	shares, _, err := f.holder(s)
	if err != nil {
		return err
	}
	for i, sh := range *shares {
		if sh.ClientID == clientID && sh.TypeCode == typeCode {
			*shares = append((*shares)[:i], (*shares)[i+1:]...)
			return nil
		}
	}
	return ErrLicenceShareInvalid
}

func newLicenceFixture(t *testing.T) (*fixture, *fakeLicences, *http.Cookie) {
	t.Helper()
	f := newFixture(t, true)
	lics := &fakeLicences{userID: f.user.ID}
	lp, err := NewLicencePages(f.pages, lics)
	if err != nil {
		t.Fatal(err)
	}
	lp.Register(f.mux)
	_, token := f.sessions.start(t, f.user.ID)
	return f, lics, &http.Cookie{Name: sessionCookie, Value: token}
}

func TestLicencePagesListAndQR(t *testing.T) {
	f, _, cookie := newLicenceFixture(t)
	resp, body := f.get("/account/licences?lang=en", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "营业执照 &lt;i&gt;") || !strings.Contains(body, "Suspended") ||
		!strings.Contains(body, "/account/licences/qr?id=1.2.156.3005.2.X.Y.1.001.U") {
		t.Fatalf("list: %d %.900s", resp.StatusCode, body)
	}
	resp, body = f.get("/account/licences/qr?id="+url.QueryEscape(testLicence.Identifier), cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `src="data:image/png;base64,`) {
		t.Fatalf("qr: %d %.600s", resp.StatusCode, body)
	}
	if resp, _ := f.get("/account/licences/qr?id=other", cookie); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("qr of another licence: %d", resp.StatusCode)
	}
	resp, _ = f.get("/account/licences")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("without a session: %d", resp.StatusCode)
	}
	var av centreView
	if err := f.pages.accountLinks(context.Background(), &users.Session{UserID: f.user.ID}, &av); err != nil || av.LicencesURL != licencesPath {
		t.Fatalf("the account centre links %q (%v), want the licences page", av.LicencesURL, err)
	}
}

func TestLicencePagesShare(t *testing.T) {
	f, lics, cookie := newLicenceFixture(t)
	resp, body := f.get("/account/licences/share?client_id=tax&type_code=T1&lang=en", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "“Tax Bureau” asks to read your “Business licence”") {
		t.Fatalf("share page: %d %.900s", resp.StatusCode, body)
	}
	if resp, _ := f.get("/account/licences/share?client_id=evil&type_code=T1", cookie); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown client: %d", resp.StatusCode)
	}
	form := url.Values{"client_id": {"tax"}, "type_code": {"T1"}}
	if resp, _ := f.postRaw("/account/licences/share", form, nil, cookie); resp.StatusCode != http.StatusForbidden || len(lics.shares) != 0 {
		t.Fatalf("grant without CSRF: %d, shares %v", resp.StatusCode, lics.shares)
	}
	if resp, body := f.post("/account/licences/share?lang=en", form, cookie); resp.StatusCode != http.StatusOK || len(lics.shares) != 1 || !strings.Contains(body, "Tax Bureau") {
		t.Fatalf("grant: %d, shares %v %.600s", resp.StatusCode, lics.shares, body)
	}
	if resp, _ := f.post("/account/licences/share", url.Values{"client_id": {"evil"}, "type_code": {"T1"}}, cookie); resp.StatusCode != http.StatusBadRequest || len(lics.shares) != 1 {
		t.Fatalf("grant to an unknown client: %d", resp.StatusCode)
	}
	if resp, _ := f.post("/account/licences/revoke", url.Values{"client_id": {"tax"}, "type_code": {"T1"}}, cookie); resp.StatusCode != http.StatusOK || len(lics.shares) != 0 {
		t.Fatalf("withdraw: %d, shares %v", resp.StatusCode, lics.shares)
	}
}

// A person acting for an enterprise sees the enterprise's licences and
// consents in its name; once they may no longer act for it, the pages
// refuse with 403 and nothing is stored.
func TestLicencePagesActingForEnterprise(t *testing.T) {
	f, lics, _ := newLicenceFixture(t)
	f.pages.acting = linkFakes{[]*users.Enterprise{{ID: "e-1", Name: "示例有限公司"}}}
	lics.enterprise = "e-1"
	ss, token := f.sessions.start(t, f.user.ID)
	ss.ActingFor = "e-1"
	cookie := &http.Cookie{Name: sessionCookie, Value: token}

	resp, body := f.get("/account/licences?lang=en", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Enterprise permit") || strings.Contains(body, "营业执照") ||
		!strings.Contains(body, "You are acting for 示例有限公司") {
		t.Fatalf("list while acting: %d %.900s", resp.StatusCode, body)
	}
	resp, body = f.get("/account/licences/share?client_id=tax&type_code=T1&lang=en", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are acting for 示例有限公司") {
		t.Fatalf("share page while acting: %d %.900s", resp.StatusCode, body)
	}
	form := url.Values{"client_id": {"tax"}, "type_code": {"T1"}}
	if resp, _ := f.post("/account/licences/share?lang=en", form, cookie); resp.StatusCode != http.StatusOK || len(lics.entShares) != 1 || len(lics.shares) != 0 {
		t.Fatalf("grant while acting: %d, enterprise %v, person %v", resp.StatusCode, lics.entShares, lics.shares)
	}
	if resp, _ := f.get("/account/licences/qr?id="+url.QueryEscape(entLicence.Identifier), cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("qr of the enterprise's licence: %d", resp.StatusCode)
	}

	lics.enterprise = "" // the agent was removed after choosing to act
	for _, tc := range []struct {
		name string
		do   func() (*http.Response, string)
	}{
		{"list", func() (*http.Response, string) { return f.get("/account/licences?lang=en", cookie) }},
		{"qr", func() (*http.Response, string) {
			return f.get("/account/licences/qr?lang=en&id="+url.QueryEscape(entLicence.Identifier), cookie)
		}},
		{"grant", func() (*http.Response, string) { return f.post("/account/licences/share?lang=en", form, cookie) }},
		{"withdraw", func() (*http.Response, string) { return f.post("/account/licences/revoke?lang=en", form, cookie) }},
	} {
		resp, body := tc.do()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "You may not act for this enterprise") {
			t.Errorf("%s after removal: %d %.600s", tc.name, resp.StatusCode, body)
		}
	}
	if len(lics.entShares) != 1 || len(lics.shares) != 0 {
		t.Fatalf("refusals changed consents: enterprise %v, person %v", lics.entShares, lics.shares)
	}
}

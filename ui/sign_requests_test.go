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

// fakeSigning holds one request, "req-1", addressed to the fixture's person.
type fakeSigning struct {
	mu         sync.Mutex
	userID     string
	info       SignRequestInfo
	approveErr error
	answers    []string
}

func (f *fakeSigning) PendingSignRequests(_ context.Context, s *users.Session) ([]SignRequestInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.UserID != f.userID || f.info.Status != "pending" {
		return nil, nil
	}
	return []SignRequestInfo{f.info}, nil
}

func (f *fakeSigning) SignRequest(_ context.Context, s *users.Session, id string) (*SignRequestInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.UserID != f.userID || id != f.info.ID {
		return nil, ErrSignRequestNotFound
	}
	info := f.info
	return &info, nil
}

func (f *fakeSigning) ApproveSignRequest(_ context.Context, s *users.Session, id string, _ users.RequestMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.UserID != f.userID || id != f.info.ID {
		return ErrSignRequestNotFound
	}
	if f.approveErr != nil {
		return f.approveErr
	}
	f.info.Status = "signed"
	f.answers = append(f.answers, "approve")
	return nil
}

func (f *fakeSigning) DeclineSignRequest(_ context.Context, s *users.Session, id string, _ users.RequestMeta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.UserID != f.userID || id != f.info.ID {
		return ErrSignRequestNotFound
	}
	f.info.Status = "declined"
	f.answers = append(f.answers, "decline")
	return nil
}

func newSignFixture(t *testing.T) (*fixture, *fakeSigning, *http.Cookie) {
	t.Helper()
	f := newFixture(t, true)
	sig := &fakeSigning{userID: f.user.ID, info: SignRequestInfo{ID: "req-1", Title: "Planning permit <b>", ClientName: testClientName,
		DigestHex: strings.Repeat("ab", 32), Status: "pending", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(10 * time.Minute), CanApprove: true}}
	sp, err := NewSignRequestPages(f.pages, sig)
	if err != nil {
		t.Fatal(err)
	}
	sp.Register(f.mux)
	_, token := f.sessions.start(t, f.user.ID)
	return f, sig, &http.Cookie{Name: sessionCookie, Value: token}
}

func TestSignRequestPagesShowTheRequest(t *testing.T) {
	f, _, cookie := newSignFixture(t)
	resp, body := f.get("/account/sign-requests", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="/account/sign-requests/req-1"`) || !strings.Contains(body, testClientName) {
		t.Fatalf("list: %d %.600s", resp.StatusCode, body)
	}
	resp, body = f.get("/account/sign-requests/req-1", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Planning permit &lt;b&gt;") || !strings.Contains(body, "abababab abababab") ||
		!strings.Contains(body, `action="/account/sign-requests/req-1/approve"`) {
		t.Fatalf("request page: %d %.900s", resp.StatusCode, body)
	}
	if resp, _ := f.get("/account/sign-requests/req-2", cookie); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("someone else's request: %d", resp.StatusCode)
	}
	resp, _ = f.get("/account/sign-requests/req-1")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, url.QueryEscape("/account/sign-requests/req-1")) {
		t.Fatalf("without a session: %d %q", resp.StatusCode, loc)
	}
}

func TestSignRequestPagesAskToSignInAgain(t *testing.T) {
	f, sig, cookie := newSignFixture(t)
	sig.info.CanApprove = false
	_, body := f.get("/account/sign-requests/req-1", cookie)
	if strings.Contains(body, "/approve") || !strings.Contains(body, `href="/login?return_to=%2Faccount%2Fsign-requests%2Freq-1"`) {
		t.Fatalf("a stale session is offered approval: %.900s", body)
	}
	sig.approveErr = ErrSignStepUp
	resp, _ := f.post("/account/sign-requests/req-1/approve", url.Values{}, cookie)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?return_to=%2Faccount%2Fsign-requests%2Freq-1" {
		t.Fatalf("approve with a stale session: %d %q", resp.StatusCode, loc)
	}
	if len(sig.answers) != 0 {
		t.Fatal("signed without a step-up")
	}
}

func TestSignRequestPagesAnswer(t *testing.T) {
	cases := []struct {
		name, action string
		err          error
		status       int
		answer       string
	}{
		{"approve", "approve", nil, http.StatusOK, "approve"},
		{"decline", "decline", nil, http.StatusOK, "decline"},
		{"level too low", "approve", ErrSignLevel, http.StatusForbidden, ""},
		{"already settled", "approve", ErrSignRequestSettled, http.StatusConflict, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, sig, cookie := newSignFixture(t)
			sig.approveErr = c.err
			resp, body := f.post("/account/sign-requests/req-1/"+c.action, url.Values{}, cookie)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %.500s", resp.StatusCode, c.status, body)
			}
			if got := strings.Join(sig.answers, ","); got != c.answer {
				t.Fatalf("answers %q, want %q", got, c.answer)
			}
		})
	}
}

func TestSignRequestPagesNeedCSRF(t *testing.T) {
	f, sig, cookie := newSignFixture(t)
	resp, _ := f.postRaw("/account/sign-requests/req-1/approve", url.Values{}, nil, cookie)
	if resp.StatusCode != http.StatusForbidden || len(sig.answers) != 0 {
		t.Fatalf("approve without CSRF: %d, answers %v", resp.StatusCode, sig.answers)
	}
}

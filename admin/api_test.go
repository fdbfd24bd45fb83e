package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// fakeTokens maps bearer tokens to what introspection would say; the
// token dbDownToken meets a database that cannot be reached.
type fakeTokens map[string]struct {
	client, subject string
	scopes          []string
}

const dbDownToken = "db-down"

func (f fakeTokens) Introspect(_ context.Context, token string) (string, string, []string, error) {
	if token == dbDownToken {
		return "", "", nil, fmt.Errorf("look up the token: %w", db.ErrUnavailable)
	}
	t, ok := f[token]
	if !ok {
		return "", "", nil, errors.New("inactive token")
	}
	return t.client, t.subject, t.scopes, nil
}

// fixture is an API over a fresh database with a small org tree:
// city ⊃ townA ⊃ villageA, city ⊃ townB, and people in them.
type fixture struct {
	t                            *testing.T
	api                          *API
	mux                          *http.ServeMux
	city, townA, villageA, townB *users.OrgUnit
	staffA, staffB, townAdmin    *users.User
	auditorUser, clientManager   *users.User
	boss                         *users.User // a super admin sitting in villageA
	tokens                       fakeTokens
	sessions                     map[string]string // session cookie → user id
	messages                     *captureSender
	provider                     *oauth.Provider
	logs                         *bytes.Buffer
}

// captureSender keeps the messages the API had sent.
type captureSender struct {
	mu   sync.Mutex
	msgs []users.Message
}

func (c *captureSender) Send(_ context.Context, m users.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

func (c *captureSender) to(dest string) []users.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []users.Message
	for _, m := range c.msgs {
		if m.To == dest {
			out = append(out, m)
		}
	}
	return out
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	store := users.NewSQLStore(d, k)
	hub := webhooks.NewHub(d, k)
	store.SetChangeListener(webhooks.Listener{Hub: hub})
	log := audit.NewLog(d)
	f := &fixture{t: t, tokens: fakeTokens{}, sessions: map[string]string{}, messages: &captureSender{}, logs: &bytes.Buffer{}}
	clients, secrets := oauth.NewSQLStore(d, k), oauth.NewSecretHasher(k.Derive("test client secret"))
	f.provider = oauth.NewProvider(oauth.Config{Issuer: "https://sso.example.org", HMACKey: k.Derive("test hmac"), PairwiseKey: k.Derive("test pairwise")},
		oauth.Dependencies{DB: d, Store: clients, Secrets: secrets, Audit: log})
	f.api = New(Config{
		DB: d, Users: store, OrgUnits: users.NewOrgUnits(d), Assurance: users.NewAssurance(d, store, nil, log),
		Sessions: users.NewSessions(d, users.SessionOptions{}), Lockout: users.NewLockout(d, users.LockoutPolicy{}),
		Clients: clients, Secrets: secrets, Audit: log, Grants: f.provider, SecretOverlap: 24 * time.Hour, Enterprises: users.NewEnterprises(d, store),
		Tokens:     f.tokens,
		Webhooks:   hub,
		ResetLinks: users.NewResetLinks(d, 0), ResetURL: "https://sso.example.org/reset",
		Codes:  users.NewOTP(d, k, users.OTPSenders{SMS: f.messages, Email: f.messages}, log, users.OTPOptions{}),
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		BrowserUser: func(r *http.Request) (*users.Session, error) {
			c, err := r.Cookie("sso_session")
			if err != nil || f.sessions[c.Value] == "" {
				return nil, errors.New("no session")
			}
			return &users.Session{ID: c.Value, UserID: f.sessions[c.Value]}, nil
		},
	})
	f.mux = http.NewServeMux()
	f.api.Register(f.mux)
	unit := func(parent *users.OrgUnit, code, kind string) *users.OrgUnit {
		pid := ""
		if parent != nil {
			pid = parent.ID
		}
		u, err := f.api.OrgUnits.Create(ctx, pid, code, code, kind)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.city = unit(nil, "city", "city")
	f.townA = unit(f.city, "townA", "town")
	f.villageA = unit(f.townA, "villageA", "village")
	f.townB = unit(f.city, "townB", "town")
	person := func(name string, in *users.OrgUnit, role string) *users.User {
		u := &users.User{Username: name, Kind: users.KindStaff, DisplayName: name}
		if err := store.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := f.api.OrgUnits.AddMember(ctx, in.ID, u.ID, role); err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.staffA = person("staff-a", f.villageA, "member")
	f.staffB = person("staff-b", f.townB, "member")
	f.townAdmin = person("town-admin", f.townA, "admin")
	f.auditorUser = person("auditor", f.city, "auditor")
	f.clientManager = person("client-mgr", f.city, "client_manager")
	f.boss = person("boss", f.villageA, "member")
	if _, err := store.Update(ctx, f.boss.ID, func(u *users.User) error { u.IsAdmin = true; return nil }); err != nil {
		t.Fatal(err)
	}
	f.tokens["super"] = struct {
		client, subject string
		scopes          []string
	}{"ops", "", []string{"admin"}}
	f.tokens["noscope"] = struct {
		client, subject string
		scopes          []string
	}{"ops", "", []string{"openid"}}
	for name, u := range map[string]*users.User{"boss": f.boss, "town": f.townAdmin, "auditor": f.auditorUser, "clients": f.clientManager, "staff": f.staffA} {
		f.tokens[name] = struct {
			client, subject string
			scopes          []string
		}{"console", u.ID, []string{"admin"}}
	}
	return f
}

// do sends a request with a bearer token ("" for none) and returns the
// status and body.
func (f *fixture) do(token, method, path, body string, header ...string) (int, []byte, http.Header) {
	f.t.Helper()
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, Prefix+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes(), rec.Header()
}

func decodeProblem(t *testing.T, body []byte) Problem {
	t.Helper()
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem document: %s", body)
	}
	return p
}

func fieldsOf(p Problem) []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	slices.Sort(out)
	return out
}

// TestDatabaseUnavailable: when the token cannot be checked because the
// database is down, the caller is told to retry (503 with Retry-After),
// not that its token is bad (401).
func TestDatabaseUnavailable(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		tests := []struct{ name, method, path string }{
			{"read", "GET", "/users/" + f.staffA.ID},
			{"search", "GET", "/users?kind=staff"},
			{"change", "POST", "/users/" + f.staffA.ID + ":unlock"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, body, h := f.do(dbDownToken, tt.method, tt.path, "")
				if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "5" {
					t.Fatalf("got %d Retry-After %q: %s", code, h.Get("Retry-After"), body)
				}
				if p := decodeProblem(t, body); p.Type != ProblemBase+"unavailable" {
					t.Errorf("problem type %q", p.Type)
				}
			})
		}
		// An answer that is not passing carries no Retry-After.
		if code, _, h := f.do("forged", "GET", "/users/"+f.staffA.ID, ""); code != http.StatusUnauthorized || h.Get("Retry-After") != "" {
			t.Errorf("unknown token: %d Retry-After %q", code, h.Get("Retry-After"))
		}
	})
}

func TestRouteAuthorization(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		newUser := func(name, unit string) string {
			return `{"username":"` + name + `","kind":"staff","display_name":"x","org_unit_id":"` + unit + `"}`
		}
		tests := []struct {
			name, token, method, path, body string
			want                            int
		}{
			{"no credentials", "", "GET", "/users/" + f.staffA.ID, "", 401},
			{"token without admin scope", "noscope", "GET", "/users/" + f.staffA.ID, "", 401},
			{"unknown token", "forged", "GET", "/users/" + f.staffA.ID, "", 401},
			{"account without a role", "staff", "GET", "/users/" + f.staffB.ID, "", 403},
			{"super admin reads anyone", "super", "GET", "/users/" + f.staffB.ID, "", 200},
			{"super admin searches", "super", "GET", "/users?kind=staff", "", 200},
			{"town admin reads its village's staff", "town", "GET", "/users/" + f.staffA.ID, "", 200},
			{"town admin updates its village's staff", "town", "PATCH", "/users/" + f.staffA.ID, `{"display_name":"New"}`, 200},
			{"town admin unlocks its village's staff", "town", "POST", "/users/" + f.staffA.ID + ":unlock", "", 200},
			{"town admin cannot read another town's staff", "town", "GET", "/users/" + f.staffB.ID, "", 403},
			{"town admin cannot disable another town's staff", "town", "POST", "/users/" + f.staffB.ID + ":disable", "", 403},
			{"town admin cannot disable a super admin in its village", "town", "POST", "/users/" + f.boss.ID + ":disable", "", 403},
			{"a super admin's own token acts as super admin", "boss", "GET", "/users?kind=staff", "", 200},
			{"town admin cannot search everyone", "town", "GET", "/users", "", 403},
			{"town admin searches its subtree", "town", "GET", "/users?org_unit=" + f.townA.ID, "", 200},
			{"town admin cannot search another subtree", "town", "GET", "/users?org_unit=" + f.townB.ID, "", 403},
			{"town admin creates staff in its village", "town", "POST", "/users", newUser("new-a", f.villageA.ID), 201},
			{"town admin cannot create staff elsewhere", "town", "POST", "/users", newUser("new-b", f.townB.ID), 403},
			{"town admin cannot create staff in no unit", "town", "POST", "/users", `{"username":"new-c","kind":"staff"}`, 403},
			{"town admin creates a unit in its town", "town", "POST", "/org-units", `{"parent_id":"` + f.townA.ID + `","code":"v2","name":"v2","kind":"village"}`, 201},
			{"town admin cannot delete its own town", "town", "DELETE", "/org-units/" + f.townA.ID, "", 403},
			{"town admin cannot read audit", "town", "GET", "/audit", "", 403},
			{"town admin lists clients (of its subtree only)", "town", "GET", "/clients", "", 200},
			{"auditor cannot list clients", "auditor", "GET", "/clients", "", 403},
			{"town admin registers a client for its village", "town", "POST", "/clients", `{"id":"village-app","name":"V","redirect_uris":["https://v.example.org/cb"],"org_unit_id":"` + f.villageA.ID + `"}`, 201},
			{"town admin cannot register a client for another town", "town", "POST", "/clients", `{"id":"b-app","name":"B","redirect_uris":["https://b.example.org/cb"],"org_unit_id":"` + f.townB.ID + `"}`, 403},
			{"town admin cannot register a client in no unit", "town", "POST", "/clients", `{"id":"no-app","name":"N","redirect_uris":["https://n.example.org/cb"]}`, 403},
			{"auditor reads audit", "auditor", "GET", "/audit", "", 200},
			{"auditor cannot read users", "auditor", "GET", "/users/" + f.staffA.ID, "", 403},
			{"auditor cannot change users", "auditor", "POST", "/users/" + f.staffA.ID + ":disable", "", 403},
			{"auditor cannot create clients", "auditor", "POST", "/clients", `{"id":"x","name":"x","redirect_uris":["https://x.example.org/cb"]}`, 403},
			{"client manager lists clients", "clients", "GET", "/clients", "", 200},
			{"client manager creates clients", "clients", "POST", "/clients", `{"id":"tax","name":"Tax","redirect_uris":["https://tax.example.org/cb"]}`, 201},
			{"client manager cannot change users", "clients", "PATCH", "/users/" + f.staffA.ID, `{"display_name":"x"}`, 403},
			{"client manager cannot read audit", "clients", "GET", "/audit", "", 403},
			{"town admin lists sessions of its village's staff", "town", "GET", "/users/" + f.staffA.ID + "/sessions", "", 200},
			{"town admin cannot list another town's sessions", "town", "GET", "/users/" + f.staffB.ID + "/sessions", "", 403},
			{"auditor cannot list sessions", "auditor", "GET", "/users/" + f.staffA.ID + "/sessions", "", 403},
			{"town admin lists consents of its village's staff", "town", "GET", "/users/" + f.staffA.ID + "/consents", "", 200},
			{"town admin cannot withdraw another town's consents", "town", "DELETE", "/users/" + f.staffB.ID + "/consents", "", 403},
			{"client manager cannot withdraw a person's consents", "clients", "DELETE", "/users/" + f.staffA.ID + "/consents", "", 403},
			{"auditor cannot delete accounts", "auditor", "DELETE", "/users/" + f.staffA.ID, "", 403},
			{"client manager cannot delete accounts", "clients", "DELETE", "/users/" + f.staffA.ID, "", 403},
			{"town admin cannot delete a super admin", "town", "DELETE", "/users/" + f.boss.ID, "", 403},
			{"town admin cannot delete another town's staff", "town", "DELETE", "/users/" + f.staffB.ID, "", 403},
			{"auditor cannot register an enterprise", "auditor", "POST", "/enterprises", `{"credit_code":"x","name":"x","legal_representative_id":"x"}`, 403},
			{"client manager cannot register an enterprise", "clients", "POST", "/enterprises", `{"credit_code":"x","name":"x","legal_representative_id":"x"}`, 403},
			{"town admin cannot register an enterprise", "town", "POST", "/enterprises", `{"credit_code":"x","name":"x","legal_representative_id":"x"}`, 403},
			{"a person without a role cannot register an enterprise", "staff", "POST", "/enterprises", `{"credit_code":"x","name":"x","legal_representative_id":"x"}`, 403},
			{"a person without a role cannot delete accounts", "staff", "DELETE", "/users/" + f.staffB.ID, "", 403},
			{"a person without a role cannot list client consents", "staff", "GET", "/clients/tax/consents", "", 403},
			{"town admin starts a reset for its village's staff", "town", "POST", "/users/" + f.staffA.ID + "/password-reset", "", 200},
			{"town admin cannot reset another town's staff", "town", "POST", "/users/" + f.staffB.ID + "/password-reset", "", 403},
			{"town admin cannot reset a super admin", "town", "POST", "/users/" + f.boss.ID + "/password-reset", "", 403},
			{"auditor cannot start a reset", "auditor", "POST", "/users/" + f.staffA.ID + "/password-reset", "", 403},
			{"client manager cannot start a reset", "clients", "POST", "/users/" + f.staffA.ID + "/password-reset", "", 403},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body, h := f.do(tt.token, tt.method, tt.path, tt.body)
				if status != tt.want {
					t.Fatalf("%s %s: %d, want %d: %s", tt.method, tt.path, status, tt.want, body)
				}
				if status >= 400 && h.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("error answered as %q", h.Get("Content-Type"))
				}
			})
		}
	})
}

func TestBrowserCallersNeedCSRFHeader(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.sessions["s1"] = f.townAdmin.ID
		csrf := rand.Text()
		cookies := "sso_session=s1; sso_csrf=" + csrf
		path := "/users/" + f.staffA.ID + ":revoke-sessions"
		if status, _, _ := f.do("", "GET", "/users/"+f.staffA.ID, "", "Cookie", cookies); status != 200 {
			t.Fatalf("GET with session: %d", status)
		}
		status, body, _ := f.do("", "POST", path, "", "Cookie", cookies)
		if p := decodeProblem(t, body); status != 403 || p.Type != ProblemBase+"csrf" {
			t.Fatalf("POST without header: %d %s", status, body)
		}
		if status, _, _ := f.do("", "POST", path, "", "Cookie", cookies, "X-CSRF-Token", rand.Text()); status != 403 {
			t.Fatalf("POST with a wrong header: %d", status)
		}
		if status, body, _ := f.do("", "POST", path, "", "Cookie", cookies, "X-CSRF-Token", csrf); status != 200 {
			t.Fatalf("POST with header: %d %s", status, body)
		}
	})
}

func TestValidationNamesEveryField(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		tests := []struct {
			name, method, path, body string
			want                     []string
		}{
			{"user", "POST", "/users", `{"username":"x","kind":"robot","email":"not-mail","phone":"123","id_number":"12345","org_unit_id":"nope","org_role":"king"}`,
				[]string{"email", "id_number", "kind", "org_role", "org_unit_id", "phone", "username"}},
			{"set level", "POST", "/users/" + f.staffA.ID + ":set-level", `{"level":7,"reason":" "}`, []string{"level", "reason"}},
			{"client", "POST", "/clients", `{"id":"bad id!","redirect_uris":["http://evil.example.org/cb"],"grant_types":["password"]}`,
				[]string{"grant_types[0]", "id", "redirect_uris[0]"}},
			{"org unit", "POST", "/org-units", `{"code":"bad code","name":"","kind":"planet"}`, []string{"code", "kind", "name"}},
			{"search", "GET", "/users?kind=robot&status=gone&limit=0&colour=red", "", []string{"colour", "kind", "limit", "status"}},
			{"audit filter", "GET", "/audit?since=yesterday&limit=x&format=xml", "", []string{"format", "limit", "since"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body, _ := f.do("super", tt.method, tt.path, tt.body)
				p := decodeProblem(t, body)
				if status != 400 || p.Type != ProblemBase+"validation" || p.Status != 400 {
					t.Fatalf("%d %s", status, body)
				}
				if got := fieldsOf(p); !slices.Equal(got, tt.want) {
					t.Fatalf("fields %v, want %v", got, tt.want)
				}
			})
		}
	})
}

func TestStrictJSON(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		tests := []struct {
			name, path, body string
			status           int
			kind, field      string
		}{
			{"unknown field", "/users", `{"username":"alice","kind":"staff","nickname":"al"}`, 400, "unknown-field", "nickname"},
			{"unknown field in a client", "/clients", `{"id":"c","name":"c","secret":"s"}`, 400, "unknown-field", "secret"},
			{"wrong type", "/users", `{"username":42,"kind":"staff"}`, 400, "wrong-type", "username"},
			{"wrong type of level", "/users/" + f.staffA.ID + ":set-level", `{"level":"3","reason":"seen"}`, 400, "wrong-type", "level"},
			{"malformed", "/users", `{"username":`, 400, "malformed-json", ""},
			{"two objects", "/users", `{"username":"a"}{"username":"b"}`, 400, "malformed-json", ""},
			{"huge body", "/users", `{"display_name":"` + strings.Repeat("x", maxBody) + `"}`, 413, "body-too-large", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body, _ := f.do("super", "POST", tt.path, tt.body)
				p := decodeProblem(t, body)
				if status != tt.status || p.Type != ProblemBase+tt.kind {
					t.Fatalf("%d %s", status, body)
				}
				if tt.field != "" && !slices.Equal(fieldsOf(p), []string{tt.field}) {
					t.Fatalf("fields %v, want %s", fieldsOf(p), tt.field)
				}
			})
		}
		if n, _ := f.api.Users.Count(context.Background()); n != 6 {
			t.Fatalf("a refused request wrote an account: %d accounts", n)
		}
	})
}

func TestPaginationStableWhileInserting(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		ctx := context.Background()
		add := func(name string) string {
			u := &users.User{Username: name, Kind: users.KindCitizen}
			if err := f.api.Users.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			return u.ID
		}
		var want []string
		for i := range 23 {
			want = append(want, add("citizen-"+string(rune('a'+i))))
		}
		seen := map[string]int{}
		after, pages := "", 0
		for {
			status, body, _ := f.do("super", "GET", "/users?kind=citizen&limit=5&after="+after, "")
			if status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			var page struct {
				Items []users.User `json:"items"`
				Next  string       `json:"next"`
			}
			json.Unmarshal(body, &page)
			for _, u := range page.Items {
				seen[u.ID]++
			}
			// Someone registers between every two pages.
			add("late-" + string(rune('a'+pages)))
			pages++
			if page.Next == "" || pages > 20 {
				break
			}
			after = page.Next
		}
		for _, id := range want {
			if seen[id] != 1 {
				t.Fatalf("account %s seen %d times", id, seen[id])
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("account %s seen %d times", id, n)
			}
		}
	})
}

func TestAuditQueryAndCSVExport(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, name := range []string{"one", "two", "=cmd"} {
			body := `{"username":"user-` + strings.TrimPrefix(name, "=") + `","kind":"citizen","display_name":"` + name + `"}`
			if status, b, _ := f.do("super", "POST", "/users", body); status != 201 {
				t.Fatalf("%d %s", status, b)
			}
		}
		status, body, _ := f.do("auditor", "GET", "/audit?action=user.create&limit=2", "")
		var page auditPage
		json.Unmarshal(body, &page)
		if status != 200 || len(page.Items) != 2 || page.Next == "" || page.Items[0].Actor != "client:ops" || page.Items[0].ClientID != "ops" {
			t.Fatalf("%d %s", status, body)
		}
		for _, get := range []func() (int, []byte, http.Header){
			func() (int, []byte, http.Header) {
				return f.do("auditor", "GET", "/audit?action=user.create&format=csv", "")
			},
			func() (int, []byte, http.Header) {
				return f.do("auditor", "GET", "/audit?action=user.create", "", "Accept", "text/csv")
			},
		} {
			status, body, h := get()
			if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
				t.Fatalf("%d %s %s", status, h.Get("Content-Type"), body)
			}
			rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows[0], csvHeader) || len(rows) != 4 {
				t.Fatalf("rows: %v", rows)
			}
			for _, row := range rows[1:] {
				if row[8] != audit.ActionUserCreate || row[3] != "client:ops" {
					t.Fatalf("row %v", row)
				}
			}
		}
	})
}

func TestChangesAreAudited(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		id := f.staffA.ID
		steps := []struct {
			method, path, body, action string
		}{
			{"PATCH", "/users/" + id, `{"email":"a@example.org"}`, actionUserUpdate},
			{"POST", "/users/" + id + ":disable", "", audit.ActionUserDisable},
			{"POST", "/users/" + id + ":enable", "", audit.ActionUserEnable},
			{"POST", "/users/" + id + ":unlock", "", actionUserUnlock},
			{"POST", "/users/" + id + ":revoke-sessions", "", actionUserRevokeSessions},
			{"POST", "/users/" + id + ":set-level", `{"level":3,"reason":"checked at the service centre"}`, "user.set_level"},
		}
		for _, s := range steps {
			status, body, _ := f.do("town", s.method, s.path, s.body)
			if status != 200 {
				t.Fatalf("%s %s: %d %s", s.method, s.path, status, body)
			}
			list, err := f.api.Audit.List(context.Background(), audit.Filter{Subject: id, Action: s.action})
			if err != nil || len(list) != 1 || list[0].Actor != f.townAdmin.ID {
				t.Fatalf("%s: audit %v %v", s.action, list, err)
			}
		}
		u, _ := f.api.Users.Get(context.Background(), id)
		if u.Email != "a@example.org" || u.Status != users.StatusActive || u.AssuranceLevel != 3 {
			t.Fatalf("account after the changes: %+v", u)
		}
	})
}

func TestClientSecretShownOnce(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		status, body, _ := f.do("clients", "POST", "/clients", `{"id":"tax","name":"Tax","redirect_uris":["https://tax.example.org/cb"]}`)
		var created map[string]any
		json.Unmarshal(body, &created)
		first, _ := created["client_secret"].(string)
		if status != 201 || len(first) < 43 {
			t.Fatalf("%d %s", status, body)
		}
		if _, b, _ := f.do("clients", "GET", "/clients/tax", ""); bytes.Contains(b, []byte(first)) || bytes.Contains(b, []byte(`"client_secret":`)) {
			t.Fatalf("GET shows the secret: %s", b)
		}
		status, body, _ = f.do("clients", "PATCH", "/clients/tax", `{"name":"Tax bureau","id":"tax"}`)
		if status != 200 || !bytes.Contains(body, []byte("Tax bureau")) {
			t.Fatalf("patch: %d %s", status, body)
		}
		if status, body, _ := f.do("clients", "PATCH", "/clients/tax", `{"id":"other"}`); status != 400 {
			t.Fatalf("id changed: %d %s", status, body)
		}
		status, body, _ = f.do("clients", "POST", "/clients/tax:rotate-secret", "")
		var rotated map[string]any
		json.Unmarshal(body, &rotated)
		second, _ := rotated["client_secret"].(string)
		c, err := f.api.Clients.GetClient(context.Background(), "tax")
		if status != 200 || second == "" || second == first || err != nil || !f.api.Secrets.Verify(second, c.SecretHash) || f.api.Secrets.Verify(first, c.SecretHash) {
			t.Fatalf("rotate: %d %s", status, body)
		}
		if status, _, _ := f.do("clients", "DELETE", "/clients/tax", ""); status != 204 {
			t.Fatalf("delete: %d", status)
		}
		if status, _, _ := f.do("clients", "GET", "/clients/tax", ""); status != 404 {
			t.Fatalf("deleted client still there: %d", status)
		}
	})
}

func TestOrgUnitLifecycle(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		status, body, _ := f.do("super", "DELETE", "/org-units/"+f.villageA.ID, "")
		if p := decodeProblem(t, body); status != 409 || p.Type != ProblemBase+"not-empty" {
			t.Fatalf("delete with members: %d %s", status, body)
		}
		status, body, _ = f.do("town", "PATCH", "/org-units/"+f.villageA.ID, `{"name":"Renamed"}`)
		if status != 200 || !bytes.Contains(body, []byte("Renamed")) {
			t.Fatalf("rename: %d %s", status, body)
		}
		if status, body, _ := f.do("town", "PATCH", "/org-units/"+f.villageA.ID, `{"parent_id":"`+f.townB.ID+`"}`); status != 403 {
			t.Fatalf("town admin moved a village into another town: %d %s", status, body)
		}
		if status, body, _ := f.do("super", "PATCH", "/org-units/"+f.villageA.ID, `{"parent_id":"`+f.townB.ID+`"}`); status != 200 {
			t.Fatalf("move: %d %s", status, body)
		}
		_, body, _ = f.do("super", "GET", "/org-units/"+f.townB.ID, "")
		var tree struct{ Items []users.OrgUnit }
		json.Unmarshal(body, &tree)
		if len(tree.Items) != 2 || tree.Items[1].ID != f.villageA.ID {
			t.Fatalf("subtree: %s", body)
		}
		if status, body, _ := f.do("town", "GET", "/users/"+f.staffA.ID, ""); status != 403 {
			t.Fatalf("town admin still reads staff of a village moved away: %d %s", status, body)
		}
		status, body, _ = f.do("super", "POST", "/org-units", `{"code":"empty","name":"Empty","kind":"office"}`)
		var unit users.OrgUnit
		json.Unmarshal(body, &unit)
		if status != 201 {
			t.Fatalf("create: %d %s", status, body)
		}
		if status, _, _ := f.do("super", "DELETE", "/org-units/"+unit.ID, ""); status != 204 {
			t.Fatalf("delete empty: %d", status)
		}
	})
}

// recordingRouter notes every pattern the API registers.
type recordingRouter struct{ patterns []string }

func (r *recordingRouter) Handle(p string, _ http.Handler) { r.patterns = append(r.patterns, p) }
func (r *recordingRouter) HandleFunc(p string, _ func(http.ResponseWriter, *http.Request)) {
	r.patterns = append(r.patterns, p)
}

func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		status, body, _ := f.do("", "GET", "/openapi.json", "")
		var doc struct {
			OpenAPI string                               `json:"openapi"`
			Paths   map[string]map[string]map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(body, &doc); status != 200 || err != nil || !strings.HasPrefix(doc.OpenAPI, "3.0") {
			t.Fatalf("%d %v %s", status, err, body)
		}
		documented := map[string]bool{} // "METHOD mux-pattern"
		for path, ops := range doc.Paths {
			for method := range ops {
				base, _, _ := strings.Cut(path, "}:")
				if strings.Contains(path, "}:") {
					base += "}"
				}
				documented[strings.ToUpper(method)+" "+Prefix+base] = true
				// Each documented operation reaches a handler, not the
				// mux's 404/405 or the dispatcher's "no such operation".
				p := strings.ReplaceAll(path, "{id}", "no-such-id")
				code, b, h := f.do("super", strings.ToUpper(method), p, "{}")
				if code == 405 || (code == 404 && !strings.Contains(h.Get("Content-Type"), "json")) || bytes.Contains(b, []byte("no such operation")) {
					t.Errorf("%s %s is documented but not served: %d %s", method, path, code, b)
				}
			}
		}
		var rec recordingRouter
		f.api.Register(&rec)
		registered := map[string]bool{}
		for _, p := range rec.patterns {
			registered[p] = true
			if !documented[p] {
				t.Errorf("route %q is not in the OpenAPI document", p)
			}
		}
		for p := range documented {
			if !registered[p] {
				t.Errorf("documented %q is not registered", p)
			}
		}
	})
}

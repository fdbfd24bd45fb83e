package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// randomCreditCode makes a valid unified social credit code of no real enterprise.
func randomCreditCode() string {
	b := []byte("91")
	for len(b) < 17 {
		b = append(b, creditAlphabet[mrand.IntN(len(creditAlphabet))])
	}
	sum := 0
	for i, c := range b {
		sum += indexByte(creditAlphabet, c) * creditWeights[i]
	}
	return string(append(b, creditAlphabet[(31-sum%31)%31]))
}

func indexByte(s string, c byte) int {
	for i := range len(s) {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func person(t *testing.T, s *SQLStore, name string) *User {
	t.Helper()
	u := &User{Username: name, Kind: KindCitizen}
	if err := s.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestEnterprisesAndAgents(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		e := NewEnterprises(d, s)
		sessions := NewSessions(d, SessionOptions{})
		rep, agent, stranger := person(t, s, "rep"), person(t, s, "agent"), person(t, s, "stranger")
		code := randomCreditCode()

		ent, err := e.Create(ctx, code, "示例有限公司", rep.ID)
		if err != nil {
			t.Fatal(err)
		}
		acct, err := s.Get(ctx, ent.ID)
		if err != nil || acct.Kind != KindEnterprise || acct.DisplayName != "示例有限公司" {
			t.Fatalf("enterprise account: %+v %v", acct, err)
		}
		if _, err := e.Create(ctx, code, "Again", rep.ID); !errors.Is(err, db.ErrConflict) {
			t.Fatalf("same credit code twice: %v", err)
		}
		bad := code[:17] + string(creditAlphabet[(indexByte(creditAlphabet, code[17])+1)%31])
		var ve *ValidationError
		if _, err := e.Create(ctx, bad, "Typo Ltd", rep.ID); !errors.As(err, &ve) {
			t.Fatalf("wrong check character: %v", err)
		}
		if _, err := e.Create(ctx, randomCreditCode(), "Owned by a company", ent.ID); !errors.As(err, &ve) {
			t.Fatalf("an enterprise as legal representative: %v", err)
		}

		if err := e.AddAgent(ctx, ent.ID, agent.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.AddAgent(ctx, ent.ID, agent.ID); !errors.Is(err, db.ErrConflict) {
			t.Fatalf("agent twice: %v", err)
		}
		opts, _ := e.ActingOptions(ctx, agent.ID)
		if len(opts) != 1 || opts[0].ID != ent.ID {
			t.Fatalf("acting options: %+v", opts)
		}

		sess, _, err := sessions.Create(ctx, agent.ID, []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.SwitchActing(ctx, sessions, sess, ent.ID); err != nil {
			t.Fatal(err)
		}
		strangerSess, _, _ := sessions.Create(ctx, stranger.ID, []string{"pwd"}, 1, "", "")
		if err := e.SwitchActing(ctx, sessions, strangerSess, ent.ID); !errors.Is(err, ErrNotAgent) {
			t.Fatalf("a stranger switched: %v", err)
		}
		list, _ := sessions.ListForUser(ctx, agent.ID)
		if len(list) != 1 || list[0].ActingFor != ent.ID {
			t.Fatalf("session acting_for: %+v", list)
		}

		if err := e.TransferLegalRepresentative(ctx, ent.ID, agent.ID); err != nil {
			t.Fatal(err)
		}
		agents, _ := e.Agents(ctx, ent.ID)
		if len(agents) != 2 || agents[0].UserID != agent.ID || agents[0].Role != RoleLegalRepresentative || agents[1].Role != RoleAgent {
			t.Fatalf("after transfer: %+v", agents)
		}
		if err := e.RemoveAgent(ctx, ent.ID, agent.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("removing the legal representative: %v", err)
		}
		if err := e.RemoveAgent(ctx, ent.ID, rep.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.CheckAgent(ctx, ent.ID, rep.ID); !errors.Is(err, ErrNotAgent) {
			t.Fatalf("removed agent still acts: %v", err)
		}
	})
}

func TestOrgUnitTree(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		o := NewOrgUnits(d)
		city, err := o.Create(ctx, "", "city", "市政府", "city")
		if err != nil {
			t.Fatal(err)
		}
		town, _ := o.Create(ctx, city.ID, "town-a", "甲镇", "town")
		village, _ := o.Create(ctx, town.ID, "village-1", "一村", "village")
		otherTown, _ := o.Create(ctx, city.ID, "town-b", "乙镇", "town")
		if _, err := o.Create(ctx, city.ID, "town-a", "Dup", "town"); !errors.Is(err, db.ErrConflict) {
			t.Fatalf("duplicate code: %v", err)
		}
		var ve *ValidationError
		if _, err := o.Create(ctx, "", "bad code!", "", "planet"); !errors.As(err, &ve) || len(ve.Fields) != 3 {
			t.Fatalf("invalid unit: %v", err)
		}
		sub, _ := o.Subtree(ctx, town.ID)
		if len(sub) != 2 || sub[0].ID != town.ID || sub[1].ID != village.ID {
			t.Fatalf("subtree of town: %+v", sub)
		}
		if in, _ := o.Contains(ctx, town.ID, village.ID); !in {
			t.Fatal("village not in its town")
		}
		if in, _ := o.Contains(ctx, otherTown.ID, village.ID); in {
			t.Fatal("village in another town")
		}
		if err := o.Move(ctx, town.ID, village.ID); !errors.As(err, &ve) {
			t.Fatalf("moved under itself: %v", err)
		}
		if err := o.Move(ctx, village.ID, otherTown.ID); err != nil {
			t.Fatal(err)
		}
		if in, _ := o.Contains(ctx, otherTown.ID, village.ID); !in {
			t.Fatal("move did not take")
		}
		if err := o.AddMember(ctx, village.ID, "staff-1", "admin"); err != nil {
			t.Fatal(err)
		}
		if err := o.Delete(ctx, village.ID); !errors.Is(err, ErrOrgUnitNotEmpty) {
			t.Fatalf("deleting a unit with members: %v", err)
		}
		units, _ := o.UnitsOf(ctx, "staff-1")
		if len(units) != 1 || units[0].ID != village.ID {
			t.Fatalf("units of staff: %+v", units)
		}
		o.RemoveMember(ctx, village.ID, "staff-1")

		// A deleted account waiting for erasure does not hold the unit up;
		// a live one does, and a refused delete keeps every membership.
		s := newTestStore(t, d)
		gone, live := person(t, s, "gone-staff"), person(t, s, "live-staff")
		for _, u := range []*User{gone, live} {
			if err := o.AddMember(ctx, village.ID, u.ID, "member"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.SoftDelete(ctx, gone.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := o.Delete(ctx, village.ID); !errors.Is(err, ErrOrgUnitNotEmpty) {
			t.Fatalf("deleting a unit with a live member: %v", err)
		}
		if units, _ := o.UnitsOf(ctx, gone.ID); len(units) != 1 {
			t.Fatalf("a refused delete lost the deleted account's membership: %+v", units)
		}
		o.RemoveMember(ctx, village.ID, live.ID)
		if err := o.Delete(ctx, village.ID); err != nil {
			t.Fatalf("deleting a unit whose only member is a deleted account: %v", err)
		}
		if units, _ := o.UnitsOf(ctx, gone.ID); len(units) != 0 {
			t.Fatalf("the deleted account still belongs to the deleted unit: %+v", units)
		}
		if _, err := o.Get(ctx, village.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("the unit is still there: %v", err)
		}
		if err := o.Rename(ctx, town.ID, "甲街道"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAssuranceLevels(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		id := randomIDNumber()
		a := NewAssurance(d, s, StaticIdentityVerifier{id: "张三"}, audit.NewLog(d))
		u := person(t, s, "zhangsan")

		tests := []struct {
			name, realName, idNumber string
			want                     error
		}{
			{"wrong name", "李四", id, ErrIdentityMismatch},
			{"unknown number", "张三", randomIDNumber(), ErrIdentityMismatch},
		}
		for _, tc := range tests {
			if _, err := a.VerifyIdentity(ctx, u.ID, tc.realName, tc.idNumber); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		var ve *ValidationError
		wrongCheck := "0"
		if id[17] == '0' {
			wrongCheck = "1"
		}
		if _, err := a.VerifyIdentity(ctx, u.ID, "张三", id[:17]+wrongCheck); !errors.As(err, &ve) {
			t.Errorf("bad check character reached the verifier: %v", err)
		}
		got, err := a.VerifyIdentity(ctx, u.ID, "张三", id)
		if err != nil || got.AssuranceLevel != 2 || got.IDNumber != id {
			t.Fatalf("verify: %+v %v", got, err)
		}
		if _, err := a.SetLevel(ctx, "admin-1", u.ID, 3, MethodInPerson, ""); !errors.As(err, &ve) {
			t.Fatalf("level without a reason: %v", err)
		}
		if got, err := a.SetLevel(ctx, "admin-1", u.ID, 3, MethodInPerson, fmt.Sprintf("checked ID card at counter %d", 7)); err != nil || got.AssuranceLevel != 3 {
			t.Fatalf("set level: %v", err)
		}
		hist, _ := a.History(ctx, u.ID)
		if len(hist) != 2 || hist[0].Method != MethodIDVerification || hist[1].VerifiedBy != "admin-1" {
			t.Fatalf("history: %+v", hist)
		}
		events, _ := audit.NewLog(d).List(ctx, audit.Filter{Subject: u.ID})
		if len(events) != 4 {
			t.Fatalf("audit: %d events, want 2 failures + verify + set level", len(events))
		}
	})
}

func TestHTTPIdentityVerifier(t *testing.T) {
	secret := []byte(rand16())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(r.Header.Get("X-SSO-Timestamp") + "."))
		m.Write(body)
		if r.Header.Get("X-SSO-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req struct {
			Name     string `json:"name"`
			IDNumber string `json:"id_number"`
		}
		json.Unmarshal(body, &req)
		switch req.Name {
		case "match":
			w.Write([]byte(`{"match": true}`))
		case "broken":
			w.Write([]byte(`{"oops": 1}`))
		default:
			w.Write([]byte(`{"match": false}`))
		}
	}))
	defer srv.Close()
	v := &HTTPIdentityVerifier{URL: srv.URL, Secret: secret}
	ctx := context.Background()
	if err := v.Verify(ctx, "match", "x"); err != nil {
		t.Fatalf("match: %v", err)
	}
	if err := v.Verify(ctx, "nope", "x"); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	if err := v.Verify(ctx, "broken", "x"); err == nil || errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("malformed answer: %v", err)
	}
	wrongKey := &HTTPIdentityVerifier{URL: srv.URL, Secret: []byte("other")}
	if err := wrongKey.Verify(ctx, "match", "x"); err == nil || errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("rejected signature must be a failure to answer, not a mismatch: %v", err)
	}
}

func rand16() string { return fmt.Sprintf("%016x", mrand.Uint64()) }

func TestSessionStepUp(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := NewSessions(d, SessionOptions{})
		sess, token, err := s.Create(ctx, "u1", []string{"pwd"}, 1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		raised, err := s.StepUp(ctx, token, 2, []string{"pwd", "kba"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lookup(ctx, token); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("the token from before the step-up still works: %v", err)
		}
		got, err := s.Lookup(ctx, raised)
		if err != nil || got.ID != sess.ID || got.ACR != 2 || fmt.Sprint(got.AMR) != "[pwd kba]" {
			t.Fatalf("after step-up: %+v %v", got, err)
		}
		again, err := s.StepUp(ctx, raised, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Lookup(ctx, again); got.ACR != 2 {
			t.Fatalf("a step-up lowered the level to %d", got.ACR)
		}
	})
}

// numericCreditCode makes a valid credit code whose first 17 characters are
// digits, like most real ones (91110108551385082Q has that shape).
func numericCreditCode() string {
	for {
		b := []byte("91")
		for len(b) < 17 {
			b = append(b, byte('0'+mrand.IntN(10)))
		}
		sum := 0
		for i, c := range b {
			sum += indexByte(creditAlphabet, c) * creditWeights[i]
		}
		code := string(append(b, creditAlphabet[(31-sum%31)%31]))
		if _, err := NormalizeIDNumber(code); err != nil { // not also a valid ID number
			return code
		}
	}
}

// An enterprise whose credit code has the shape of an ID number can be
// registered, and signs in with its code like any other.
func TestEnterpriseWithNumericCreditCode(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		f := newLoginFixture(t, d, LockoutPolicy{})
		rep := person(t, f.store, "legal-rep")
		code := numericCreditCode()
		ent, err := NewEnterprises(d, f.store).Create(ctx, code, "Numeric Code Trading Co.", rep.ID)
		if err != nil {
			t.Fatalf("create enterprise %s: %v", code, err)
		}
		hash, err := f.hasher.Hash("enterprise passphrase")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Update(ctx, ent.ID, func(u *User) error { u.PasswordHash = hash; return nil }); err != nil {
			t.Fatal(err)
		}
		u, err := f.auth.PasswordLogin(ctx, code, "enterprise passphrase", meta)
		if err != nil || u.ID != ent.ID {
			t.Fatalf("sign-in by credit code: %+v, %v", u, err)
		}
		if _, err := f.auth.PasswordLogin(ctx, code, "wrong passphrase", meta); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		// A citizen still may not take a name shaped like an ID number.
		if err := f.store.Create(ctx, &User{Username: numericCreditCode(), Kind: KindCitizen}); err == nil {
			t.Fatal("a citizen was named like an ID number")
		}
	})
}

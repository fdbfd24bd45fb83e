package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govsso/sso/bench/internal/ssoproc"
)

// answer is what the client learnt of one token request.
type answer int

const (
	answerOK      answer = iota // 200 with the tokens
	answerUnseen                // no answer: cut by the kill, the connection lost
	answer503                   // the node said to try again
	answerRefused               // 4xx
	answerOther                 // any other 5xx, or a body that did not decode
)

// tokenReq is one token request the soak made, known to the audit log by
// its User-Agent.
type tokenReq struct {
	grant  string
	answer answer
}

// ledger remembers every token request under a User-Agent of its own, which
// the server writes into the request's oauth.token audit record; the
// records can then be matched with the answers one by one.
type ledger struct {
	n    atomic.Int64
	mu   sync.Mutex
	reqs map[string]tokenReq
}

const uaPrefix = "sso-soak/"

func (l *ledger) record(ua, grant string, err error) {
	a := answerOther
	switch k := classify(err); {
	case err == nil:
		a = answerOK
	case k == proxyCut || k == transportErr:
		a = answerUnseen
	case k == clientErr:
		a = answerRefused
	default:
		if is, _ := is503(err); is {
			a = answer503
		}
	}
	l.mu.Lock()
	l.reqs[ua] = tokenReq{grant: grant, answer: a}
	l.mu.Unlock()
}

// token posts a token request for client and notes it in the ledger.
func (e *env) token(hc *http.Client, client string, form url.Values) (map[string]any, error) {
	ua := uaPrefix + strconv.FormatInt(e.ledger.n.Add(1), 10)
	out, err := postForm(hc, e.base+"/oauth2/token", client, e.secret[client], form, ua)
	e.ledger.record(ua, form.Get("grant_type"), err)
	return out, err
}

// postForm is ssoproc.PostForm with a User-Agent.
func postForm(hc *http.Client, u, id, secret string, form url.Values, ua string) (map[string]any, error) {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", ua)
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &ssoproc.StatusError{URL: u, Status: resp.StatusCode, Body: string(body), Header: resp.Header}
	}
	var out map[string]any
	return out, json.Unmarshal(body, &out)
}

// grantAudit compares, for one grant type, the answers the soak received
// with the oauth.token records the nodes wrote.
type grantAudit struct {
	answers map[answer]int // requests by answer
	records map[answer]int // records by the answer their request got
	lost    int            // answered 200, no record
	dup     int            // extra records of one request
}

// auditReport is the audit log against the ledger.
type auditReport struct {
	grants  map[string]*grantAudit
	foreign int // oauth.token records that name no request of the soak
}

// failures counts what must not happen: a success without its record, a
// request recorded twice, a refused or failed request recorded as a
// success, and records of requests the soak never made.
func (r auditReport) failures() int {
	n := r.foreign
	for _, g := range r.grants {
		n += g.lost + g.dup + g.records[answerRefused] + g.records[answerOther]
	}
	return n
}

// inDoubt counts records of requests answered 503: a step after the
// commit failed, or the node could not confirm a commit that happened.
func (r auditReport) inDoubt() int {
	n := 0
	for _, g := range r.grants {
		n += g.records[answer503]
	}
	return n
}

// checkAudit reads every oauth.token record of the scratch schema.
func (l *ledger) checkAudit(ctx context.Context, schemaURL string) (auditReport, error) {
	d, err := sql.Open("pgx", schemaURL)
	if err != nil {
		return auditReport{}, err
	}
	defer d.Close()
	rows, err := d.QueryContext(ctx, `SELECT user_agent, details FROM audit_events WHERE action = 'oauth.token' AND result = 'success'`)
	if err != nil {
		return auditReport{}, fmt.Errorf("read the audit records: %w", err)
	}
	defer rows.Close()
	perUA := map[string]int{}
	rep := auditReport{grants: map[string]*grantAudit{}}
	grant := func(name string) *grantAudit {
		g := rep.grants[name]
		if g == nil {
			g = &grantAudit{answers: map[answer]int{}, records: map[answer]int{}}
			rep.grants[name] = g
		}
		return g
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for rows.Next() {
		var ua, details string
		if err := rows.Scan(&ua, &details); err != nil {
			return auditReport{}, err
		}
		req, ok := l.reqs[ua]
		if !ok {
			rep.foreign++
			continue
		}
		var det map[string]string
		if err := json.Unmarshal([]byte(details), &det); err == nil && det["grant_type"] != req.grant {
			return auditReport{}, fmt.Errorf("audit record of %s says grant %q, the request was %q", ua, det["grant_type"], req.grant)
		}
		perUA[ua]++
		if perUA[ua] > 1 {
			grant(req.grant).dup++
			continue
		}
		grant(req.grant).records[req.answer]++
	}
	if err := rows.Err(); err != nil {
		return auditReport{}, err
	}
	for ua, req := range l.reqs {
		g := grant(req.grant)
		g.answers[req.answer]++
		if req.answer == answerOK && perUA[ua] == 0 {
			g.lost++
		}
	}
	return rep, nil
}

func (r auditReport) print() {
	fmt.Printf("\n%-20s %9s %8s %6s %6s %13s %13s %8s\n", "audit oauth.token", "answered", "records", "lost", "dup", "unseen (rec)", "503 (rec)", "4xx (rec)")
	names := make([]string, 0, len(r.grants))
	for n := range r.grants {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		g := r.grants[n]
		recs := 0
		for _, c := range g.records {
			recs += c
		}
		fmt.Printf("%-20s %9d %8d %6d %6d %13s %13s %8s\n", n, g.answers[answerOK], recs+g.dup, g.lost, g.dup,
			fmt.Sprintf("%d (%d)", g.answers[answerUnseen], g.records[answerUnseen]),
			fmt.Sprintf("%d (%d)", g.answers[answer503], g.records[answer503]),
			fmt.Sprintf("%d (%d)", g.answers[answerRefused], g.records[answerRefused]))
	}
	fmt.Println("  answered: 200 seen by the soak; records: oauth.token records in PostgreSQL; lost: 200 without a record;")
	fmt.Println("  dup: a request recorded more than once; unseen: requests whose answer the kill or restart cut (the slack:")
	fmt.Println("  they may or may not be recorded), with how many were; 503: answered 503, with records (slack too: a step")
	fmt.Println("  after the commit failed); 4xx: refused requests, with records (must be 0)")
	if r.foreign > 0 {
		fmt.Printf("  %d records name no request of the soak\n", r.foreign)
	}
}

// issued is an access token the soak received, kept to be looked up after
// the restart.
type issued struct {
	token, client string
	at            time.Time
}

// tokenSample keeps every nth access token issued before the PostgreSQL
// restart, up to max: committed rows that must still be known after it.
type tokenSample struct {
	mu    sync.Mutex
	every int
	max   int
	n     int
	list  []issued
}

func (s *tokenSample) keep(o *outage, client string, out map[string]any) {
	at, _ := out["access_token"].(string)
	if at == "" || o.begun() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.n%s.every == 0 && len(s.list) < s.max {
		s.list = append(s.list, issued{token: at, client: client, at: time.Now()})
	}
}

// checkSample introspects the sampled tokens: every one must be active.
func (e *env) checkSample(hc *http.Client) (kept, active int, firstErr error) {
	e.sample.mu.Lock()
	list := slices.Clone(e.sample.list)
	e.sample.mu.Unlock()
	for _, t := range list {
		out, err := ssoproc.PostForm(hc, e.base+"/oauth2/introspect", t.client, e.secret[t.client], url.Values{"token": {t.token}})
		if err == nil && out["active"] != true {
			err = fmt.Errorf("token of %s issued at %s is not active", t.client, t.at.Format(time.TimeOnly))
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		active++
	}
	if len(list) == 0 {
		firstErr = errors.New("no token sampled")
	}
	return len(list), active, firstErr
}

// auditWriteFailures counts the nodes' "audit write failed" log lines in
// dir: for the grants other than client_credentials the record is appended
// after the tokens' own commit, and a failure there is only logged.
func auditWriteFailures(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			n += bytes.Count(b, []byte("audit write failed"))
		}
	}
	return n
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govsso/sso/bench/internal/ssoproc"
)

// env is what the scenarios share.
type env struct {
	base     string // the balancer, which is the issuer
	secret   map[string]string
	tr       *http.Transport
	timeout  time.Duration // of one request
	killed   atomic.Bool
	killTime atomic.Int64 // unix nanoseconds of the kill
	broken   atomic.Int64 // refresh chains that failed other than by the kill
	resumed  atomic.Int64 // refreshes cut by the kill or answered 503 whose token still worked
	lost     atomic.Int64 // refreshes cut by the kill after the dead node rotated the token
	inDoubt  atomic.Int64 // refreshes answered 503 whose token had been rotated all the same
	outage   *outage
	ledger   *ledger
	sample   *tokenSample

	chainsMu sync.Mutex
	chains   []*chain // every refresh chain, for the check at the end
}

// killWindow is how long after the kill a cut request is put down to it;
// the balancer's health check takes the dead node out within 250 ms.
const killWindow = 3 * time.Second

// kind puts a request's error, which ended at end, in the run's timeline:
// a cut long after the kill, or a 503 outside the PostgreSQL restart, is
// not explained by them.
func (e *env) kind(err error, end time.Time) string {
	k := classify(err)
	switch k {
	case proxyCut, transportErr:
		if !e.killed.Load() || end.Sub(unixTime(e.killTime.Load())) > killWindow {
			k = cutOutside
		}
	case tempUnavailable:
		if e.outage.expecting(end) {
			k = outageRedirect
		}
	case node5xx:
		if is, retryAfter := is503(err); is && e.outage.expecting(end) {
			k = outage503
			if !retryAfter {
				k = noRetryAfter
			}
		}
	}
	return k
}

func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: e.tr, Jar: jar, Timeout: e.timeout, CheckRedirect: ssoproc.NoFollowToCallback}
}

// scenario prepares one worker and returns its step; the step's error is
// the request's outcome.
type scenario func(e *env, hc *http.Client) (func() error, error)

var scenarioOrder = []string{"client_credentials", "introspection", "refresh", "authorization_code", "discovery", "admin"}

var scenarios = map[string]scenario{
	"client_credentials": ccScenario,
	"introspection":      introspectionScenario,
	"refresh":            refreshScenario,
	"authorization_code": authCodeScenario,
	"discovery":          discoveryScenario,
	"admin":              adminScenario,
}

// ccScenario alternates the opaque-token client and the JWT one, whose
// tokens are signed with the active key: the key rotation must not fail it.
func ccScenario(e *env, hc *http.Client) (func() error, error) {
	ids := []string{"cc", "ccjwt"}
	for _, id := range ids {
		if _, ok := e.secret[id]; !ok {
			return nil, fmt.Errorf("client %s could not be created", id)
		}
	}
	n := 0
	return func() error {
		n++
		id := ids[n%2]
		out, err := e.token(hc, id, url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
		if err == nil {
			e.sample.keep(e.outage, id, out)
		}
		return err
	}, nil
}

func introspectionScenario(e *env, hc *http.Client) (func() error, error) {
	token := func() (string, error) {
		tok, err := e.token(hc, "cc", url.Values{"grant_type": {"client_credentials"}, "scope": {"reports"}})
		if err != nil {
			return "", err
		}
		at, _ := tok["access_token"].(string)
		return at, nil
	}
	at, err := token()
	if err != nil {
		return nil, err
	}
	n := 0
	return func() error {
		n++
		if n%50 == 0 { // a fresh token now and then
			t, err := token()
			if err != nil {
				return err
			}
			at = t
			return nil
		}
		out, err := ssoproc.PostForm(hc, e.base+"/oauth2/introspect", "cc", e.secret["cc"], url.Values{"token": {at}})
		if err == nil && out["active"] != true {
			err = errors.New("token inactive")
		}
		return err
	}, nil
}

// signIn runs the authorization-code flow of the "web" client in the
// browser hc (signing in when it has no session) and returns the tokens.
func (e *env) signIn(hc *http.Client) (map[string]any, error) {
	v, c := ssoproc.PKCE()
	code, err := ssoproc.Authorize(e.base, hc, c)
	if err != nil {
		return nil, callbackErr(err)
	}
	return e.token(hc, "web", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {ssoproc.RedirectURI}, "code_verifier": {v}})
}

// refreshChain signs in and returns a fresh refresh token.
func (e *env) refreshChain(hc *http.Client) (string, error) {
	tok, err := e.signIn(hc)
	if err != nil {
		return "", err
	}
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		return "", errors.New("no refresh token")
	}
	return rt, nil
}

// chain is one refresh-token family. pending says the last refresh got no
// usable answer (cut by the kill, or 503 in the restart) and why: the next
// step tries the same token again.
type chain struct {
	rt      string
	pending string // "", "cut" or "503"
	restart bool   // lost: begin a new family
}

// refresh rotates c once. A token whose refresh got no answer is tried
// again: it still works if the rotation had not committed; if it had, the
// new token died with the answer (after a kill) or the node could not
// confirm the commit (after a 503), and the chain begins again. Any other
// failure is a broken chain.
func (e *env) refresh(hc *http.Client, c *chain) error {
	out, err := e.token(hc, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.rt}})
	reason := c.pending
	c.pending = ""
	if err != nil {
		is, _ := is503(err)
		switch k := classify(err); {
		case (k == proxyCut || k == transportErr) && reason == "":
			c.pending = "cut"
		case is && e.outage.expecting(time.Now()):
			c.pending = reason
			if c.pending == "" {
				c.pending = "503"
			}
		case reason == "cut" && k == clientErr:
			e.lost.Add(1)
			c.restart = true
			return errRotatedByDeadNode
		case reason == "503" && k == clientErr:
			e.inDoubt.Add(1)
			c.restart = true
			return fmt.Errorf("%w: %w", errRotatedDespite503, err)
		default:
			e.broken.Add(1)
			c.restart = true
		}
		return err
	}
	next, _ := out["refresh_token"].(string)
	if next == "" || next == c.rt {
		e.broken.Add(1)
		c.restart = true
		return errors.New("refresh token not rotated")
	}
	if reason != "" {
		e.resumed.Add(1)
	}
	c.rt = next
	return nil
}

// chainsPerWorker is how many refresh families each refresh worker keeps
// rotating in turn, so that many cross the kill and the restart.
const chainsPerWorker = 8

// refreshScenario rotates its chains in turn.
func refreshScenario(e *env, hc *http.Client) (func() error, error) {
	var mine []*chain
	for range chainsPerWorker {
		rt, err := e.refreshChain(hc)
		if err != nil {
			return nil, err
		}
		mine = append(mine, &chain{rt: rt})
	}
	e.chainsMu.Lock()
	e.chains = append(e.chains, mine...)
	e.chainsMu.Unlock()
	n := 0
	return func() error {
		c := mine[n%len(mine)]
		n++
		if c.restart {
			rt, err := e.refreshChain(hc)
			if err != nil {
				return err
			}
			c.rt, c.restart = rt, false
			return nil
		}
		return e.refresh(hc, c)
	}, nil
}

// checkChains refreshes every chain once more after the run, and then
// presents the token just used again, which must be refused: each token
// refreshes exactly once, after the kill and the restart as before.
func (e *env) checkChains(hc *http.Client) (refreshed, refusedReuse, lostEarlier int, firstErr error) {
	e.chainsMu.Lock()
	defer e.chainsMu.Unlock()
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, c := range e.chains {
		if c.restart {
			lostEarlier++ // counted where it happened
			continue
		}
		old := c.rt
		if err := e.refresh(hc, c); err != nil {
			fail(fmt.Errorf("refresh after the run: %w", err))
			continue
		}
		refreshed++
		_, err := e.token(hc, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}})
		var se *ssoproc.StatusError
		if errors.As(err, &se) && se.Status == http.StatusBadRequest {
			refusedReuse++
		} else {
			fail(fmt.Errorf("reuse of a rotated refresh token was not refused: %v", err))
		}
	}
	return refreshed, refusedReuse, lostEarlier, firstErr
}

func authCodeScenario(e *env, hc *http.Client) (func() error, error) {
	if _, err := e.signIn(hc); err != nil { // signs the browser in once
		return nil, err
	}
	return func() error {
		out, err := e.signIn(hc)
		if err == nil {
			e.sample.keep(e.outage, "web", out)
		}
		return err
	}, nil
}

// get fetches path and decodes a JSON answer into v (when not nil).
func get(hc *http.Client, u, bearer string, v any) error {
	req, _ := http.NewRequest("GET", u, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &ssoproc.StatusError{URL: u, Status: resp.StatusCode, Body: string(body), Header: resp.Header}
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(body, v)
}

func discoveryScenario(e *env, hc *http.Client) (func() error, error) {
	return func() error {
		for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
			if err := get(hc, e.base+p, "", nil); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// adminScenario reads through the admin API as a console would, with a
// client_credentials token of scope admin: find the user, read it, list
// the clients, search the audit log, one request per step.
func adminScenario(e *env, hc *http.Client) (func() error, error) {
	if _, ok := e.secret["console"]; !ok {
		return nil, errors.New("client console could not be created")
	}
	bearer := ""
	newToken := func() error {
		out, err := e.token(hc, "console", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}})
		if err != nil {
			return err
		}
		bearer, _ = out["access_token"].(string)
		return nil
	}
	if err := newToken(); err != nil {
		return nil, err
	}
	api := e.base + "/admin/api/v1"
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := get(hc, api+"/users?username="+ssoproc.Username, bearer, &page); err != nil {
		return nil, err
	}
	if len(page.Items) != 1 {
		return nil, fmt.Errorf("admin API found %d users named %s", len(page.Items), ssoproc.Username)
	}
	userID := page.Items[0].ID
	reads := []string{
		"/users?username=" + ssoproc.Username,
		"/users/" + userID,
		"/clients",
		"/audit?action=oauth.token&limit=20",
	}
	n := 0
	return func() error {
		if bearer == "" {
			return newToken()
		}
		p := reads[n%len(reads)]
		n++
		err := get(hc, api+p, bearer, nil)
		var se *ssoproc.StatusError
		if errors.As(err, &se) && se.Status == http.StatusUnauthorized {
			bearer = "" // the next step fetches a new token; this one still fails
		}
		return err
	}, nil
}

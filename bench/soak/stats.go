package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/govsso/sso/bench/internal/ssoproc"
)

// outcome kinds of one request.
const (
	okKind       = "ok"
	node5xx      = "node 5xx"
	proxyCut     = "cut by the kill"
	clientErr    = "4xx"
	transportErr = "transport"
	otherErr     = "other"
	cutOutside   = "cut, not by the kill"
	lostKind     = "rotated by the dead node"
	outage503    = "503 in the PG restart"
	noRetryAfter = "503 without Retry-After"
	inDoubtKind  = "rotated despite 503"
	// the authorization endpoint's way of saying 503: a redirect to the
	// client with error=temporarily_unavailable (RFC 6749 4.1.2.1)
	tempUnavailable = "temporarily_unavailable"
	outageRedirect  = "temporarily_unavailable in the PG restart"
)

// expectedKinds are the outcomes the faults explain; every other non-ok
// kind fails the soak.
var expectedKinds = map[string]bool{okKind: true, proxyCut: true, transportErr: true, lostKind: true, outage503: true, outageRedirect: true}

// errRotatedByDeadNode is a refresh token the killed node had rotated
// before its answer was lost.
var errRotatedByDeadNode = errors.New("refresh token rotated by the killed node; its answer was lost")

// errRotatedDespite503 is a refresh token that was answered 503 during the
// PostgreSQL restart and yet had been rotated: the node could not confirm
// a commit that had happened.
var errRotatedDespite503 = errors.New("refresh token answered 503 but rotated: a commit the node could not confirm")

// classify names the kind of a request's error as such, without the time
// it happened; env.kind puts it in the run's timeline.
func classify(err error) string {
	var se *ssoproc.StatusError
	var ce *callbackError
	switch {
	case err == nil:
		return okKind
	case errors.Is(err, errRotatedByDeadNode):
		return lostKind
	case errors.Is(err, errRotatedDespite503):
		return inDoubtKind
	case errors.As(err, &ce) && ce.query.Get("error") == "temporarily_unavailable":
		return tempUnavailable
	case errors.As(err, &se) && se.Header.Get(proxyHeader) != "":
		return proxyCut
	case errors.As(err, &se) && se.Status >= 500:
		return node5xx
	case errors.As(err, &se):
		return clientErr
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return transportErr
	}
	return otherErr
}

// callbackError is an authorization answered with an error at the
// client's redirect URI.
type callbackError struct{ query url.Values }

func (e *callbackError) Error() string { return "callback: " + e.query.Encode() }

// callbackErr turns ssoproc.Authorize's error for a redirect that brought
// an error instead of a code into a callbackError.
func callbackErr(err error) error {
	if q, ok := strings.CutPrefix(fmt.Sprint(err), "callback: "); ok && err != nil {
		if v, perr := url.ParseQuery(q); perr == nil && v.Get("error") != "" {
			return &callbackError{query: v}
		}
	}
	return err
}

// is503 says whether err is a node's 503 and whether it carried Retry-After.
func is503(err error) (is, retryAfter bool) {
	var se *ssoproc.StatusError
	if errors.As(err, &se) && se.Status == http.StatusServiceUnavailable && se.Header.Get(proxyHeader) == "" {
		return true, se.Header.Get("Retry-After") != ""
	}
	return false, false
}

// stats collects one scenario's outcomes.
type stats struct {
	mu        sync.Mutex
	lat       []time.Duration // successes
	lat503    []time.Duration // the expected 503s of the outage
	slow      int             // requests in the outage slower than the limit
	kinds     map[string]int
	afterKill int // successes after the kill
	firstErrs []string
}

func (s *stats) add(d time.Duration, err error, kind string, afterKill, slow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kinds[kind]++
	if slow {
		s.slow++
	}
	switch {
	case err == nil:
		s.lat = append(s.lat, d)
		if afterKill {
			s.afterKill++
		}
	case kind == outage503:
		s.lat503 = append(s.lat503, d)
	}
	if err != nil && kind != outage503 && kind != outageRedirect && len(s.firstErrs) < 3 {
		msg := strings.Join(strings.Fields(err.Error()), " ")
		if len(msg) > 200 {
			msg = msg[:200]
		}
		s.firstErrs = append(s.firstErrs, kind+": "+msg)
	}
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	return sorted[(len(sorted)-1)*p/100].Round(10 * time.Microsecond).String()
}

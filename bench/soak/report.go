package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govsso/sso/bench/internal/ssoproc"
)

// check is one line of the verdict.
type check struct {
	name string
	ok   bool
	info string
}

// report runs the checks after the traffic, prints everything and returns
// whether the soak passed.
func report(c config, e *env, tl *timeline, nodes []*ssoproc.Server, lb *balancer, all map[string]*stats, samples []sampleRow, schemaURL string) (bool, error) {
	var checks []check
	add := func(name string, ok bool, info string) { checks = append(checks, check{name, ok, info}) }

	// After it all, a new sign-in's refresh token still refreshes, and
	// every chain that lived through the faults refreshes once more.
	finalRefresh := "ok"
	hc := e.client()
	if rt, err := e.refreshChain(hc); err != nil {
		finalRefresh = "sign-in failed: " + err.Error()
	} else if _, err := e.token(hc, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); err != nil {
		finalRefresh = "refresh failed: " + err.Error()
	}
	refreshed, refused, lostEarlier, chainErr := e.checkChains(hc)
	kept, active, sampleErr := e.checkSample(hc)

	for _, ev := range tl.events {
		fmt.Println("event:", ev)
	}
	o := e.outage
	start, cmdDone, pgUp := unixTime(o.start.Load()), unixTime(o.cmdDone.Load()), unixTime(o.pgUp.Load())
	if !start.IsZero() {
		fmt.Printf("event: %6s restart command returned after %s", cmdDone.Sub(tl.start).Round(100*time.Millisecond), cmdDone.Sub(start).Round(time.Millisecond))
		if !pgUp.IsZero() {
			fmt.Printf("; PostgreSQL accepting connections %s after the restart began", pgUp.Sub(start).Round(time.Millisecond))
		}
		fmt.Println()
	}

	// Per scenario.
	fmt.Printf("\n%-20s %8s %8s %8s %8s %9s %9s  %s\n", "scenario", "ok", "req/s", "p50", "p99", "ok after", "errors", "error kinds")
	var lat, lat503 []time.Duration
	unexpected, slow, fiveXX, redirects := 0, 0, 0, 0
	for _, name := range scenarioOrder {
		s := all[name]
		sortDurations(s.lat)
		lat = append(lat, s.lat...)
		lat503 = append(lat503, s.lat503...)
		slow += s.slow
		redirects += s.kinds[outageRedirect]
		errs := 0
		var ks []string
		for k, n := range s.kinds {
			if k == okKind {
				continue
			}
			errs += n
			ks = append(ks, fmt.Sprintf("%s=%d", k, n))
			if !expectedKinds[k] {
				unexpected += n
			}
			if k == node5xx || k == noRetryAfter {
				fiveXX += n
			}
		}
		slices.Sort(ks)
		fmt.Printf("%-20s %8d %8.0f %8s %8s %9d %9d  %s\n", name, len(s.lat), float64(len(s.lat))/c.duration.Seconds(),
			pct(s.lat, 50), pct(s.lat, 99), s.afterKill, errs, strings.Join(ks, " "))
		for _, m := range s.firstErrs {
			fmt.Println("    e.g.", m)
		}
	}
	sortDurations(lat)
	sortDurations(lat503)
	fmt.Printf("%-20s %8d %8.0f %8s %8s\n", "all", len(lat), float64(len(lat))/c.duration.Seconds(), pct(lat, 50), pct(lat, 99))
	fmt.Printf("\nbalancer hits: node 1 %d, node 2 %d\n", lb.backends[0].hits.Load(), lb.backends[1].hits.Load())

	// The PostgreSQL restart as the clients saw it, node by node.
	recovery, recoveryNote := time.Duration(-1), ""
	var windows []string
	if !start.IsZero() {
		fmt.Printf("\nPostgreSQL restart: %d answers 503 with Retry-After (p50 %s, p99 %s), %d authorizations redirected with temporarily_unavailable\n",
			len(lat503), pct(lat503, 50), pct(lat503, 99), redirects)
		for i, be := range lb.backends {
			if !tl.nodeAliveInRestart[i] {
				fmt.Printf("  node %d: not running at the restart\n", i+1)
				continue
			}
			no := be.outage(pgUp)
			rec := no.recovered
			if no.fails == 0 {
				rec = no.firstOKAfterRestarted
			}
			if rec.IsZero() || pgUp.IsZero() {
				fmt.Printf("  node %d: %d failed requests, did not serve again\n", i+1, no.fails)
				recoveryNote = fmt.Sprintf("node %d did not serve again", i+1)
				continue
			}
			r := max(rec.Sub(pgUp), 0)
			recovery = max(recovery, r)
			if no.fails == 0 {
				fmt.Printf("  node %d: no failed request; first success %s after PostgreSQL was back\n", i+1, r.Round(time.Millisecond))
				windows = append(windows, fmt.Sprintf("node %d none", i+1))
				continue
			}
			w := rec.Sub(no.firstFail)
			windows = append(windows, fmt.Sprintf("node %d %s", i+1, w.Round(10*time.Millisecond)))
			vsCmd := fmt.Sprintf("%s after the restart command returned", rec.Sub(cmdDone).Round(time.Millisecond))
			if rec.Before(cmdDone) {
				vsCmd = fmt.Sprintf("%s before the restart command returned", cmdDone.Sub(rec).Round(time.Millisecond))
			}
			fmt.Printf("  node %d: outage %s (first failure %s after the restart began, last %s, serving again %s) with %d failed requests; serving %s after PostgreSQL accepted connections, %s\n",
				i+1, w.Round(time.Millisecond), no.firstFail.Sub(start).Round(time.Millisecond), no.lastFail.Sub(start).Round(time.Millisecond),
				rec.Sub(start).Round(time.Millisecond), no.fails, r.Round(time.Millisecond), vsCmd)
		}
	}

	fmt.Printf("\n%8s %12s %12s %10s %10s\n", "t", "goroutines 1", "goroutines 2", "RSS 1 MiB", "RSS 2 MiB")
	for _, r := range samples {
		fmt.Printf("%8s %12d %12d %10d %10d\n", r.at, r.goroutines[0], r.goroutines[1], r.rssMiB[0], r.rssMiB[1])
	}

	// Growth of the survivor once it carries all the traffic: the first
	// sample at least one interval after the kill against the last.
	var post []sampleRow
	for _, r := range samples {
		if tl.killedAt > 0 && r.at >= tl.killedAt+c.sampleEvery {
			post = append(post, r)
		}
	}
	growth := "not enough samples after the kill to judge"
	grew := false
	if len(post) >= 2 {
		f, l := post[0], post[len(post)-1]
		grew = l.goroutines[0] > f.goroutines[0]*6/5+10 || l.rssMiB[0] > f.rssMiB[0]*5/4+5
		growth = fmt.Sprintf("survivor from %s to %s: goroutines %d → %d, RSS %d → %d MiB", f.at, l.at,
			f.goroutines[0], l.goroutines[0], f.rssMiB[0], l.rssMiB[0])
	}

	// The nodes seal the last records as they stop; then the chain must
	// verify, and every token answer must have its record.
	for _, n := range nodes {
		n.Stop()
	}
	out, verr := nodes[0].CLI("", "audit", "verify")
	auditChain := strings.TrimSpace(firstLine(out))
	if verr != nil {
		auditChain = "FAILED: " + verr.Error() + " " + auditChain
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ar, aerr := e.ledger.checkAudit(ctx, schemaURL)
	if aerr == nil {
		ar.print()
	}
	if n := auditWriteFailures(tl.logs); n > 0 {
		fmt.Printf("  the nodes logged %d \"audit write failed\" (tokens issued, record not written; see %s)\n", n, tl.logs)
	}

	fmt.Println()
	add("no 5xx from the nodes", fiveXX == 0, strconv.Itoa(fiveXX)+" (a 503 with Retry-After in the PostgreSQL restart is expected, not counted)")
	add("no unexplained errors", unexpected == 0, strconv.Itoa(unexpected)+" (any kind but ok, cut by the kill, 503 in the restart)")
	add("no request slower than "+c.maxLatency.String(), slow == 0, strconv.Itoa(slow))
	add("survivor served after the kill", afterKill(all) > 0, fmt.Sprintf("%d requests", afterKill(all)))
	if c.pgRestart {
		ok := tl.restartErr == nil && recoveryNote == "" && recovery >= 0 && recovery <= c.maxRecovery
		info := fmt.Sprintf("every node serving %s after PostgreSQL accepted connections", recovery.Round(time.Millisecond))
		if tl.restartErr != nil {
			info = tl.restartErr.Error()
		} else if recoveryNote != "" {
			info = recoveryNote
		} else if start.IsZero() {
			ok, info = false, "the restart did not happen (run too short?)"
		}
		add("nodes reconnected by themselves", ok, info)
	}
	add("no refresh chain broken", e.broken.Load() == 0, fmt.Sprintf("%d broken; of the refreshes cut by the kill or answered 503, %d resumed with the same token, %d had been rotated by the dead node",
		e.broken.Load(), e.resumed.Load(), e.lost.Load()))
	add("no refresh rotated behind a 503", e.inDoubt.Load() == 0, fmt.Sprintf("%d (a 503 whose rotation had committed: the client lost its chain)", e.inDoubt.Load()))
	chainInfo := fmt.Sprintf("%d of %d chains refreshed once more, reuse refused for %d; %d lost earlier to the kill", refreshed, refreshed+lostEarlier, refused, lostEarlier)
	if chainErr != nil {
		chainInfo += "; " + chainErr.Error()
	}
	add("every chain refreshes once per token", chainErr == nil && refreshed > 0, chainInfo)
	add("a new chain refreshes at the end", finalRefresh == "ok", finalRefresh)
	sampleInfo := fmt.Sprintf("%d of %d tokens issued before the restart still active", active, kept)
	if sampleErr != nil {
		sampleInfo += "; " + sampleErr.Error()
	}
	add("no committed token lost", sampleErr == nil, sampleInfo)
	if aerr != nil {
		add("audit records match the answers", false, aerr.Error())
	} else {
		unseen, unseenRec, s503 := 0, 0, 0
		lost, dup := 0, 0
		for _, g := range ar.grants {
			unseen += g.answers[answerUnseen]
			unseenRec += g.records[answerUnseen]
			s503 += g.answers[answer503]
			lost += g.lost
			dup += g.dup
		}
		// A 503 may follow a commit: the authorization-code exchange reads
		// the OpenID Connect session after fosite committed the tokens and
		// their record. Those tokens exist, were never handed out, and are
		// recorded once: slack like a cut answer, shown, not a failure.
		add("audit records match the answers", ar.failures() == 0,
			fmt.Sprintf("%d lost, %d duplicated, %d foreign; slack: %d answers cut (%d recorded), %d answered 503 (%d recorded: committed before a later step failed)",
				lost, dup, ar.foreign, unseen, unseenRec, s503, ar.inDoubt()))
	}
	add("no growth of goroutines or RSS", !grew, growth)
	add("audit chain verifies", verr == nil, auditChain)
	pass := true
	for _, ch := range checks {
		mark := "ok  "
		if !ch.ok {
			mark, pass = "FAIL", false
		}
		fmt.Printf("%s %-38s %s\n", mark, ch.name, ch.info)
	}

	summary(c, all, lat, lat503, redirects, fiveXX, recovery, windows, samples)
	return pass, nil
}

func afterKill(all map[string]*stats) int {
	n := 0
	for _, s := range all {
		n += s.afterKill
	}
	return n
}

// summary prints the figures of a closing note as a Markdown table.
func summary(c config, all map[string]*stats, lat, lat503 []time.Duration, redirects, fiveXX int, recovery time.Duration, windows []string, samples []sampleRow) {
	fmt.Printf("\nSummary (%s, %d workers per scenario)\n\n", c.duration, c.workers)
	fmt.Println("| | |")
	fmt.Println("|---|---|")
	fmt.Printf("| requests/s (successful, all scenarios) | %.0f |\n", float64(len(lat))/c.duration.Seconds())
	for _, name := range scenarioOrder {
		s := all[name]
		fmt.Printf("| %s p50 / p99 | %s / %s |\n", name, pct(s.lat, 50), pct(s.lat, 99))
	}
	fmt.Printf("| 5xx from the nodes | %d |\n", fiveXX)
	if c.pgRestart {
		fmt.Printf("| 503 with Retry-After in the PostgreSQL restart | %d (p50 %s, p99 %s), and %d authorization redirects with temporarily_unavailable |\n",
			len(lat503), pct(lat503, 50), pct(lat503, 99), redirects)
		fmt.Printf("| outage as the clients saw it | %s |\n", strings.Join(windows, ", "))
		rec := "did not recover"
		if recovery >= 0 {
			rec = recovery.Round(time.Millisecond).String()
		}
		fmt.Printf("| recovery after PostgreSQL accepted connections | %s |\n", rec)
	}
	if len(samples) > 0 {
		f, l := samples[0], samples[len(samples)-1]
		for i := range f.rssMiB {
			fmt.Printf("| node %d RSS, goroutines: first → last sample | %d → %d MiB, %d → %d |\n", i+1, f.rssMiB[i], l.rssMiB[i], f.goroutines[i], l.goroutines[i])
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

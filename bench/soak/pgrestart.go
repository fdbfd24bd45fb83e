package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// outage is the PostgreSQL restart as the soak sees it. From the moment
// the restart command starts until maxRecovery after PostgreSQL accepts
// connections again, a node's 503 with Retry-After is the expected answer.
type outage struct {
	start       atomic.Int64 // unix nanoseconds the restart command started; 0 before
	cmdDone     atomic.Int64 // the command returned
	pgUp        atomic.Int64 // pg_isready answered again
	maxRecovery time.Duration
}

func (o *outage) begun() bool { return o.start.Load() != 0 }

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// expecting says whether a 503 at t falls in the outage window.
func (o *outage) expecting(t time.Time) bool {
	start := o.start.Load()
	if start == 0 || t.UnixNano() < start {
		return false
	}
	up := o.pgUp.Load()
	return up == 0 || t.Before(unixTime(up).Add(o.maxRecovery))
}

// cluster is the PostgreSQL the soak runs on and how to restart it.
type cluster struct {
	url        string // to connect to, for the watch during the restart
	host, port string
	restart    string // shell command
	start      string // shell command that starts it when down; "" if unknown
}

// defaultRestart is the restart command when pg_lsclusters names no
// cluster on the database URL's port.
const defaultRestart = "pg_ctlcluster --skip-systemctl-redirect 15 main restart"

// findCluster works out the restart command: cmd when given, else the
// Debian cluster (pg_lsclusters) listening on dbURL's port, else
// defaultRestart.
func findCluster(dbURL, cmd string) (cluster, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return cluster{}, fmt.Errorf("database URL: %w", err)
	}
	c := cluster{url: dbURL, host: u.Hostname(), port: u.Port()}
	if c.host == "" {
		c.host = "127.0.0.1"
	}
	if c.port == "" {
		c.port = "5432"
	}
	if cmd != "" {
		c.restart = cmd
		if rest, ok := strings.CutSuffix(strings.TrimSpace(cmd), " restart"); ok {
			c.start = rest + " start"
		}
		return c, nil
	}
	c.restart = defaultRestart
	c.start = strings.TrimSuffix(defaultRestart, "restart") + "start"
	out, err := exec.Command("pg_lsclusters", "--no-header").Output()
	if err != nil {
		return c, nil // not Debian's tooling: the default, which fails loudly if wrong
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text()) // Ver Cluster Port Status Owner Data Log
		if len(f) >= 3 && f[2] == c.port {
			base := "pg_ctlcluster --skip-systemctl-redirect " + f[0] + " " + f[1]
			c.restart, c.start = base+" restart", base+" start"
			break
		}
	}
	return c, nil
}

// ready runs pg_isready against the cluster.
func (c cluster) ready() bool {
	return exec.Command("pg_isready", "-q", "-h", c.host, "-p", c.port, "-t", "1").Run() == nil
}

// accepts says whether PostgreSQL accepts a new connection now; cheaper
// and closer to the moment than starting pg_isready.
func (c cluster) accepts() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		return false
	}
	conn.Close(ctx)
	return true
}

// restartPG runs the restart command while a watcher sees PostgreSQL go
// down and come back, recording the moments in o: the command itself
// returns some time after PostgreSQL accepts connections again.
func (c cluster) restartPG(o *outage) error {
	o.start.Store(time.Now().UnixNano())
	watched := make(chan time.Time, 1)
	stop := make(chan struct{})
	go func() { // the first moment it accepts connections after being down
		down := false
		for {
			select {
			case <-stop:
				watched <- time.Time{}
				return
			default:
			}
			ok := c.accepts()
			if down && ok {
				watched <- time.Now()
				return
			}
			down = down || !ok
			time.Sleep(10 * time.Millisecond)
		}
	}()
	out, err := exec.Command("sh", "-c", c.restart).CombinedOutput()
	o.cmdDone.Store(time.Now().UnixNano())
	if err != nil {
		close(stop)
		return fmt.Errorf("%s: %w: %s", c.restart, err, strings.TrimSpace(string(out)))
	}
	deadline := time.Now().Add(time.Minute)
	for !c.ready() {
		if time.Now().After(deadline) {
			close(stop)
			return errors.New("PostgreSQL did not accept connections within a minute of the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	up := <-watched
	if up.IsZero() { // never seen down: the command's return is the best we know
		up = unixTime(o.cmdDone.Load())
	}
	o.pgUp.Store(up.UnixNano())
	return nil
}

// ensureUp starts PostgreSQL again if the soak left it down (a failed
// restart, an interrupted run), so that nothing else on the machine is
// left without its database.
func (c cluster) ensureUp(ctx context.Context) error {
	if c.ready() {
		return nil
	}
	if c.start == "" {
		return fmt.Errorf("PostgreSQL at %s:%s is down and no start command is known; start it by hand", c.host, c.port)
	}
	fmt.Println("soak: PostgreSQL is down; running", c.start)
	if out, err := exec.CommandContext(ctx, "sh", "-c", c.start).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", c.start, err, strings.TrimSpace(string(out)))
	}
	for range 300 {
		if c.ready() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("PostgreSQL at %s:%s still down after %s", c.host, c.port, c.start)
}

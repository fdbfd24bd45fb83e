// Command startup measures how long `sso serve` takes from process start to
// /healthz/ready answering 200, and its resident memory once idle, on a fresh
// SQLite data directory (first start) and on the same directory again.
//
//	go build -o bin/sso ./cmd/sso && go run ./bench/startup -bin bin/sso
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/sso", "the sso binary")
	runs := flag.Int("runs", 10, "restarts to measure")
	flag.Parse()
	dir, err := os.MkdirTemp("", "sso-startup-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)

	first, _, err := start(*bin, dir, false)
	if err != nil {
		fail(err)
	}
	fmt.Printf("first start (migrations, keys, admin): %s\n", first.Round(time.Millisecond))
	var times []time.Duration
	var rss string
	for i := 0; i < *runs; i++ {
		d, mem, err := start(*bin, dir, i == *runs-1)
		if err != nil {
			fail(err)
		}
		times = append(times, d)
		if mem != "" {
			rss = mem
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("restart to ready over %d runs: min %s, median %s, max %s\n", len(times),
		times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	fmt.Printf("idle RSS after 3 s: %s\n", rss)
}

// start runs the binary on a free port until it is ready, optionally reads its
// idle RSS, and stops it with SIGTERM.
func start(bin, dir string, measureRSS bool) (time.Duration, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "SSO_ADDR="+addr, "SSO_DATA_DIR="+filepath.Join(dir, "data"), "SSO_LOG_LEVEL=warn")
	cmd.Stderr = nil
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, "", err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	client := &http.Client{Timeout: time.Second}
	for time.Since(began) < 20*time.Second {
		resp, err := client.Get("http://" + addr + "/healthz/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				elapsed := time.Since(began)
				rss := ""
				if measureRSS {
					time.Sleep(3 * time.Second)
					rss = readRSS(cmd.Process.Pid)
				}
				return elapsed, rss, nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, "", fmt.Errorf("not ready after 20 s")
}

func readRSS(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "startup:", err)
	os.Exit(1)
}

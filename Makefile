# The one test command (README, CI): formatting, vet, and every test with
# the race detector, on SQLite and on PostgreSQL ($SSO_TEST_DATABASE_URL,
# default postgres://postgres@127.0.0.1:5432/test). With CI=true a missing
# PostgreSQL fails the run instead of skipping.
GO ?= go
PKGS ?= ./...

.PHONY: test fmt-check vet build bench bench-startup bench-http bench-login bench-search bench-ui run test-browser soak fuzz bench-certs

test: fmt-check vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/sso ./cmd/sso

run:
	$(GO) run ./cmd/sso serve

# Store benchmarks on both backends (figures for the closing notes).
bench:
	$(GO) test -run '^$$' -bench 'GetByUsername|Token|Append' -benchmem -benchtime 2000x ./users/ ./oauth/ ./audit/
	$(GO) test -run '^$$' -bench 'Argon2|PasswordLogin' -benchmem -benchtime 20x ./users/


# Process start to /healthz/ready, and idle RSS, on SQLite.
bench-startup: build
	$(GO) run ./bench/startup -bin bin/sso

# Load over loopback against `sso serve` on PostgreSQL: client_credentials,
# introspection, refresh rotation, authorization code with an SSO session.
bench-http: build
	$(GO) run ./bench/http -bin bin/sso -duration 20s -conns 16,64

# Password sign-ins over HTTP against the raw argon2id hash rate, on equal
# terms: the server is pinned to CPU 0 (GOMAXPROCS=1) and the hash rate is
# measured on CPU 0 too; the load generator runs on CPU 1. Needs 2 CPUs.
bench-login: build
	$(GO) build -o bin/bench-http ./bench/http
	taskset -c 1 bin/bench-http -bin bin/sso -scenarios password_login -conns 2,4,8 -server-cpu 0 -duration 20s

# Only the browser tests (chromium headless; installed when missing, see README).
test-browser:
	$(GO) test -count=1 -timeout 10m ./browsertest/

# Admin searches against 1,000,000 accounts in PostgreSQL: p50 and p99 per search.
bench-search:
	$(GO) test -run '^$$' -bench SearchMillion -benchtime 2000x -timeout 30m ./users/

# Soak over loopback: two nodes on PostgreSQL behind a round-robin proxy,
# mixed traffic with admin reads, a key rotation, one node SIGKILLed
# half-way and started again, PostgreSQL restarted at 3/4 (pg_ctlcluster,
# as root: it disturbs anyone else on that PostgreSQL); no 5xx but 503
# with Retry-After in the restart, recovery time, no lost token or audit
# record, p99, goroutines and RSS over time. SOAK_DURATION=10m for the full run;
# SOAK_FLAGS for more, e.g. -database-url of a PostgreSQL of its own.
SOAK_DURATION ?= 2m
SOAK_FLAGS ?=
soak: build
	$(GO) run ./bench/soak -bin bin/sso -duration $(SOAK_DURATION) $(SOAK_FLAGS)

# Scaling: the client_credentials and SSO authorization-code loops against
# 1, 2 and 3 nodes on one PostgreSQL behind a round-robin proxy, 20 s each;
# req/s, p99, and the CPU the nodes and PostgreSQL spent.
.PHONY: bench-scale
bench-scale: build
	$(GO) run ./bench/scale -bin bin/sso -duration 20s -nodes 1,2,3

# SM2 sign/verify, CMS sign/verify (SQLite), and licence verification and
# status over HTTP on loopback on SQLite and PostgreSQL, with the per-address
# limit counted in the database, in Redis ($SSO_TEST_REDIS_URL, default
# 127.0.0.1:6379) and off; then `openssl speed sm2` for comparison.
bench-certs:
	$(GO) test -run '^$$' -bench 'SM2|CMS|LicenceVerifyHTTP' -benchtime 2s ./certs/
	openssl speed -seconds 3 sm2

# The sign-in page: server-side render time (p50, p99 over 1,000) and weight (HTML + CSS + JS).
bench-ui:
	$(GO) test -run '^$$' -bench SignInPage -benchtime 1000x ./ui/

# Every fuzz test in the repository (func FuzzX in a _test.go file), one
# after another for FUZZTIME each; a crasher is written under the
# package's testdata/fuzz and fails the run.
FUZZTIME ?= 1m
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		dir=$$(dirname $$f); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$dir $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

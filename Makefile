# NettPortal sessions. `make demo` runs the product, `make test` the tests.
GO ?= go
PKGS := ./...
# The test timeout covers the end-to-end suites (browser, simulated fleet).
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: build demo test check race fuzz bench bench-history bench-peer bench-peer-ingest clean

build:
	$(GO) build -o bin/nettportal ./cmd/nettportal

demo:
	$(GO) run ./cmd/nettportal demo

# Finds a PostgreSQL (DATABASE_URL, else the local server) or starts a
# throwaway cluster with the installed initdb/pg_ctl, then runs every test.
test: check
	$(GO) run ./tools/withpg -- $(GO) test $(TESTFLAGS) $(PKGS)

# gofmt, go vet, staticcheck (pinned in go.mod as a tool), and the web UI's
# JavaScript: every module must parse, and format.js has unit tests run by
# node's own test runner (web/jstest).
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@for f in web/ui/js/*.js; do node --input-type=module --check < "$$f" || { echo "$$f: syntax error"; exit 1; }; done
	TZ=UTC node --experimental-detect-module --test web/jstest/

race:
	$(GO) run ./tools/withpg -- $(GO) test -race $(TESTFLAGS) $(PKGS)

# Short runs of every fuzz target; FUZZTIME=5m for a longer one.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./radius
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyResponse$$' -fuzztime $(FUZZTIME) ./coa
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyRequest$$' -fuzztime $(FUZZTIME) ./coa
	$(GO) test -run '^$$' -fuzz '^FuzzReadSentence$$' -fuzztime $(FUZZTIME) ./routeros/routerostest
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(FUZZTIME) ./routeros/routerostest
	$(GO) test -run '^$$' -fuzz '^FuzzParseUptime$$' -fuzztime $(FUZZTIME) ./routeros
	$(GO) run ./tools/withpg -- $(GO) test -run '^$$' -fuzz '^FuzzAPIJSON$$' -fuzztime $(FUZZTIME) ./web
	$(GO) run ./tools/withpg -- $(GO) test -run '^$$' -fuzz '^FuzzApplyAccounting$$' -fuzztime $(FUZZTIME) ./store

# Load benchmarks against the real serve wiring and a local PostgreSQL with
# fsync and synchronous_commit on. They print their figures: ingest through
# serve (packets/s, p50/p99, at full speed and at 20,000/s, ledger check),
# the accounting upsert alone, the sessions API over 100,000 sessions,
# history searches over 400,000 closed sessions and 50,000 customers, the
# open-loop ramp (capacity, 2x overload, recovery; NETTPORTAL_BENCH_RATES,
# NETTPORTAL_BENCH_STEP, NETTPORTAL_BENCH_MIXES) and accounting beside
# heavy viewers, CSV exports and 10,000 WebSockets.
bench:
	$(GO) run ./tools/withpg -- $(GO) test -run '^$$' \
		-bench '^Benchmark(Ingest|LiveView|ApplyAccounting|ApplyByKind|SessionsAPI|HistorySearch|OpenLoop|OneRouterFlood|ViewerAbuse)$$' \
		-benchtime 1x -timeout 45m ./cmd/nettportal ./store

# History: ingest and live-page latency with and without 20 million closed
# sessions (NETTPORTAL_BENCH_HISTORY_ROWS to change); the fill takes ~10 min.
bench-history:
	$(GO) run ./tools/withpg -- $(GO) test -run '^$$' -bench '^BenchmarkHistory$$' -benchtime 1x -timeout 2h ./cmd/nettportal

# The open-loop ramp against serve and then, in the same run, against
# FreeRADIUS 3.2 + stock rlm_sql on its own database: both capacities and
# their ratio (NETTPORTAL_BENCH_PEER_RATES is FreeRADIUS's ramp). Fails
# without the freeradius and freeradius-postgresql packages.
bench-peer:
	$(GO) run ./tools/withpg -- $(GO) test -run '^$$' -bench '^BenchmarkOpenLoopPeer$$' -benchtime 1x -timeout 30m ./cmd/nettportal

# The closed-loop ingest load against an accounting server you run:
# NETTPORTAL_BENCH_PEER=host:port, NETTPORTAL_BENCH_PEER_DB=its database
# URL, NETTPORTAL_BENCH_PEER_SECRET.
bench-peer-ingest:
	$(GO) test -run '^$$' -bench '^BenchmarkIngestPeer$$' -benchtime 1x -timeout 30m ./cmd/nettportal

clean:
	rm -rf bin

.PHONY: soak outage

# Soak: 10,000 packets/s over 50,000 open sessions against serve as its own
# process; prints RSS and goroutines early and late, p99, the ledger check.
# SOAK_DURATION=2m for a short one.
SOAK_DURATION ?= 15m
soak:
	NETTPORTAL_SOAK=1 NETTPORTAL_SOAK_DURATION=$(SOAK_DURATION) $(GO) run ./tools/withpg -- \
		$(GO) test -run '^$$' -bench '^BenchmarkSoak$$' -benchtime 1x -timeout 2h ./cmd/nettportal

# PostgreSQL down for a minute under 5,000 packets/s (its own throwaway
# cluster): answers from the spool during the outage, spool peak, replay
# time, ledger check.
outage:
	NETTPORTAL_OUTAGE_BENCH=1 $(GO) test -run '^$$' -bench '^BenchmarkOutage$$' -benchtime 1x -timeout 30m ./cmd/nettportal

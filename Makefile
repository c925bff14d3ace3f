# linkaud — see README.md. DuckDB's Arrow interface needs the duckdb_arrow tag
# on every build and test.
GO       ?= go
TAGS     ?= duckdb_arrow
GOFLAGS  += -tags=$(TAGS)
export GOFLAGS
BIN      := bin/linkaud
FUZZTIME ?= 30s
BENCHTIME ?= 1x

.PHONY: build test test-crash test-corruption test-faults demo bench bench-go fuzz fuzz-ci fuzz-planner vet clean

# What `linkaud --version`, /healthz and linkaud_build_info report
# (internal/buildinfo). VERSION is the nearest v* tag, if any; without one
# the binary says (devel).
BUILDINFO := github.com/linkaud/linkaud/internal/buildinfo
VERSION   ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
BUILDTIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# -s -w drop the symbol table and DWARF (40 MB; panics keep their stack
# traces, which come from the pclntab); --exclude-libs keeps the C++
# symbols of the static DuckDB library out of the dynamic symbol table
# (7 MB nothing looks up). docs/install.md has the breakdown.
LDFLAGS   ?= -s -w -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(BUILDTIME)
ifeq ($(shell uname -s),Linux)
LDFLAGS   += -extldflags=-Wl,--exclude-libs,ALL
endif

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/linkaud

# The tests that need PostgreSQL run against a private server that
# .ci/with-postgres.sh starts (and stops) when PostgreSQL is installed;
# without it they skip, saying so.
test:
	$(GO) vet ./...
	./.ci/with-postgres.sh $(GO) test -count=1 -timeout 40m ./...

# The seed's three use cases end to end: an embedded DuckDB bank + household
# data set, two compute cycles with a change in between, events to a JSONL
# file and to an in-process Kafka broker. The workspace stays in DEMO_DIR.
DEMO_DIR ?= linkaud-demo
demo: build
	./$(BIN) demo --dir $(DEMO_DIR)

# SIGKILL linkaud run and linkaud worker at every crash point, at every step,
# and at random times (>= 100 kills); prints a summary line. `make test`
# runs a smaller share of the same suite.
test-crash:
	LINKAUD_CRASH_FULL=1 $(GO) test -count=1 -timeout 60m -v -run 'TestCrashPoints|TestRandomKills|TestWorkerKills|TestUpgradeCrashPoints' ./internal/crashtest

# Damage the state file by file (single-bit flips and truncations of
# write-ahead logs, sstables, MANIFEST, OPTIONS and the commit record; a
# log deleted) and check each trial ends in a clean refusal or exactly a
# clean run's result; prints the counts by outcome. `make test` runs 240.
CORRUPTION_TRIALS ?= 3000
test-corruption:
	LINKAUD_CORRUPTION_TRIALS=$(CORRUPTION_TRIALS) $(GO) test -count=1 -timeout 60m -v -run '^TestCorruption$$' ./diff

# The pipeline on generated data against the bare query, the EXCEPT
# baseline and raw franz-go (BENCHMARKS.md). The data is generated once
# per size into BENCH_DIR and reused.
BENCH_PROFILES ?= 100000
BENCH_DIR      ?= .bench
BENCH_FLAGS    ?=
bench: build
	./$(BIN) bench --profiles $(BENCH_PROFILES) --dir $(BENCH_DIR) $(BENCH_FLAGS)

# Every Go benchmark (planning, merge diff, event encoding, Kafka delivery…).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=$(BENCHTIME) ./...

# Bounded fuzzing for CI (about a minute and a half on 2 cores; make test
# already runs 1,200 of the planner's random cases). A failure writes its
# input to <pkg>/testdata/fuzz/<Target>/: keep it as a seed. A count, not
# a duration: with a duration, a worker still busy at the deadline on a
# loaded machine fails the run with "context deadline exceeded" and no
# input (CI, FuzzCheck, 2026-12-02).
CI_FUZZTIME ?= 8000x
fuzz-ci:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(CI_FUZZTIME) ./grammar
	$(GO) test -run '^$$' -fuzz '^FuzzLexer$$' -fuzztime $(CI_FUZZTIME) ./grammar
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(CI_FUZZTIME) ./dsl

# Longer: make fuzz FUZZTIME=10m FUZZ_CASES=100000
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./grammar
	$(GO) test -run '^$$' -fuzz '^FuzzLexer$$' -fuzztime $(FUZZTIME) ./grammar
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./dsl
	$(MAKE) fuzz-planner

# Faults through the engine: warehouse, full disk, broker and webhooks.
test-faults:
	$(GO) test -count=1 -v ./internal/faults

# The planner's randomized differential test (SQL on DuckDB vs the reference
# evaluator) at any size: make fuzz-planner FUZZ_CASES=100000 FUZZ_SEED=7.
# A failure prints a shrunk reproducer and the -seed/-case to rerun it.
FUZZ_CASES ?= 20000
FUZZ_SEED  ?= $(shell date +%s)
fuzz-planner:
	LINKAUD_FUZZ_CASES=$(FUZZ_CASES) LINKAUD_FUZZ_SEED=$(FUZZ_SEED) $(GO) test -count=1 -timeout 0 -v -run '^TestDifferential$$' ./planner

vet:
	$(GO) vet ./...

clean:
	rm -rf bin

# linkaud — see README.md. DuckDB's Arrow interface needs the duckdb_arrow tag
# on every build and test.
GO       ?= go
TAGS     ?= duckdb_arrow
GOFLAGS  += -tags=$(TAGS)
export GOFLAGS
BIN      := bin/linkaud
FUZZTIME ?= 30s
BENCHTIME ?= 1x

.PHONY: build test demo bench fuzz fuzz-planner vet clean

build:
	$(GO) build -o $(BIN) ./cmd/linkaud

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...

# Until the compute cycle lands, the demo checks and draws the example workspace.
demo: build
	./$(BIN) check testdata/workspaces/design
	./$(BIN) graph testdata/workspaces/design

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=$(BENCHTIME) ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./grammar

vet:
	$(GO) vet ./...

clean:
	rm -rf bin

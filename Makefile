# The SSE gateway. `make run` starts a node; `make test` runs every test.
GO      ?= go
GOFLAGS ?=
TESTFLAGS ?= -race -count=1 -timeout 15m

.PHONY: run test deps lint build bench fuzz chaos clean

## run: start one node on :8080 (embedded Redis unless GATEWAY_REDIS_URL is set)
run:
	$(GO) run ./cmd/gateway

## test: install what the tests need if missing, check formatting and vet, then run every test with -race
test: deps lint
	$(GO) test $(TESTFLAGS) ./...

## deps: install redis-server if it is missing (Debian/Ubuntu; uses sudo when not root)
deps:
	@./.ci/deps.sh

## chaos: the chaos scenario with long phases (CHAOS_PHASE, default 5s) behind nginx and HAProxy; prints the table
CHAOS_PHASE ?= 5s
chaos: deps
	@rm -f chaos-table.txt
	CHAOS_PHASE=$(CHAOS_PHASE) CHAOS_TABLE=$(CURDIR)/chaos-table.txt $(GO) test -count=1 -timeout 30m -run TestChaos ./deploy/
	@cat chaos-table.txt

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd tools && $(GO) vet ./...

## build: the gateway binary in ./bin
build:
	$(GO) build -o bin/gateway ./cmd/gateway

## bench: the Go micro-benchmarks (encoder, cursor, hub fan-out to topics and to 1–10,000 patterns,
## queue, patterns) with allocations; publish and fan-in throughput on one real Redis and on a
## 3-primary Redis Cluster, and a publish's cost in Redis before and after contract v2; then the load
## scenarios (cmd/ssebench suite) against a node and Redis started locally and against the floor
## server (ssebench floor-server) in the same run, on a topic and on a pattern: the gateway / floor
## ratios first, then every figure
BENCHTIME ?= 1s
SUITEFLAGS ?=
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 3 ./gateway/ ./gateway/fanout/ ./auth/
	$(GO) test -run '^$$' -bench . -benchtime 3s -count 3 ./pubsub/
	$(GO) run ./cmd/ssebench suite $(SUITEFLAGS)

## fuzz: run every fuzz target of every package for a while each (FUZZTIME, default 2m)
FUZZTIME ?= 2m
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test $$pkg -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) || exit 1; \
		done; \
	done

clean:
	rm -rf bin

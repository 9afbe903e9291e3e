# The SSE gateway. `make run` starts a node; `make test` runs every test; `make image` builds the
# container image and `make dist` the release binaries.
GO      ?= go
GOFLAGS ?=
TESTFLAGS ?= -race -count=1 -timeout 15m

# The version stamped into binaries and images (`gateway version`,
# ssegateway_build_info, the image's labels): the nearest tag, else the commit.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# A static binary with no build paths in it, as released and as in the image.
STATIC_BUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"

.PHONY: run test deps lint build dist image bench soak fuzz chaos clean

## run: start one node on :8080 (embedded Redis unless GATEWAY_REDIS_URL is set)
run:
	$(GO) run ./cmd/gateway

## test: install what the tests need if missing, check formatting and vet, then run every test with -race
test: deps lint
	$(GO) test $(TESTFLAGS) ./...

## deps: install what the tests need if missing: redis-server, nginx, HAProxy, Chromium, Node.js, podman,
## runc and openssl (Debian/Ubuntu; uses sudo when not root), and the chaos test's npm packages
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

## build: the gateway binary in ./bin, version stamped
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/gateway ./cmd/gateway

## dist: release binaries, static and version stamped, for every DIST_PLATFORMS, in DIST_DIR
## (bin/dist/gateway-<version>-<os>-<arch>) with their SHA256SUMS
DIST_DIR       ?= bin/dist
DIST_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
dist:
	@mkdir -p $(DIST_DIR) && rm -f $(DIST_DIR)/gateway-* $(DIST_DIR)/SHA256SUMS
	@for p in $(DIST_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out=$(DIST_DIR)/gateway-$(VERSION)-$$os-$$arch; echo "$$out"; \
		GOOS=$$os GOARCH=$$arch $(STATIC_BUILD) -o $$out ./cmd/gateway || exit 1; \
	done
	@cd $(DIST_DIR) && { sha256sum gateway-* 2>/dev/null || shasum -a 256 gateway-*; } > SHA256SUMS
	@echo "$(DIST_DIR)/SHA256SUMS"

## image: the container image IMAGE (ssegateway:dev) for linux/IMAGE_ARCH (this machine's), built
## offline with CONTAINER_ENGINE (podman if installed, else docker) from deploy/Containerfile: the
## static binary, the CA bundle CA_BUNDLE and a passwd entry, on an empty base; no registry needed
IMAGE            ?= ssegateway:dev
IMAGE_ARCH       ?= $(shell $(GO) env GOARCH)
IMAGE_CONTEXT    ?= bin/image
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
CA_BUNDLE        ?= $(firstword $(wildcard /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem))
image:
	$(if $(CA_BUNDLE),,$(error no CA bundle found; set CA_BUNDLE to a PEM file of root certificates))
	@mkdir -p $(IMAGE_CONTEXT)/etc/ssl/certs
	GOOS=linux GOARCH=$(IMAGE_ARCH) $(STATIC_BUILD) -o $(IMAGE_CONTEXT)/gateway ./cmd/gateway
	cp deploy/image/passwd deploy/image/group $(IMAGE_CONTEXT)/etc/
	cp $(CA_BUNDLE) $(IMAGE_CONTEXT)/etc/ssl/certs/ca-certificates.crt
	$(CONTAINER_ENGINE) build $(if $(findstring podman,$(CONTAINER_ENGINE)),--format docker) \
		--platform linux/$(IMAGE_ARCH) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		-f deploy/Containerfile -t $(IMAGE) $(IMAGE_CONTEXT)

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

## soak: one node and a real Redis (AOF) holding SOAK_STREAMS streams (19000), judged for SOAK_DURATION (10m) once warm, with churn,
## steady publishing, a Redis restart midway and tracked clients checked for exact delivery; prints the table
## of RELIABILITY.md and fails on any loss, duplicate or reordering, or on memory, goroutines or fds not flat
SOAK_DURATION ?= 10m
SOAK_STREAMS ?= 19000
SOAKFLAGS ?=
soak: deps
	$(GO) run ./cmd/ssebench soak --duration $(SOAK_DURATION) --streams $(SOAK_STREAMS) $(SOAKFLAGS)

## fuzz: run every fuzz target of every package for a while each (FUZZTIME, default 2m); a target fails
## when it writes a failing input (Go 1.26's coordinator can also fail a target at the end of
## -fuzztime having found nothing, go.dev/issue/75804: that is reported and not counted)
FUZZTIME ?= 2m
fuzz:
	@mark=$$(mktemp); trap 'rm -f $$mark' EXIT; for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; touch $$mark; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) && continue; \
			if [ -n "$$(find $$dir/testdata/fuzz/$$t -newer $$mark -type f 2>/dev/null)" ]; then exit 1; fi; \
			echo "== $$t: failed without writing a failing input: Go's fuzz coordinator at the end of -fuzztime (go.dev/issue/75804), not a finding"; \
		done; \
	done

clean:
	rm -rf bin

# Two commands on a fresh machine: `make run` and `make test`. Everything they need is built
# or installed from here (Go itself is expected on PATH).
GO       ?= go
BINARY   := coredns
CTL      := regdnsctl
COREFILE ?= Corefile.example
GOFILES  := $(shell find . -name '*.go' -not -path './data/*' -not -path './dist/*')

# This project's release and commit, printed by ./coredns -version (build/version).
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
COMMIT   := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/regdns/regdns/build/version.Version=$(VERSION) \
            -X github.com/regdns/regdns/build/version.Commit=$(COMMIT)

.PHONY: all build generate run test test-deps vet fmt bench bench-capacity bench-deps fuzz soak release image clean

all: build

build: $(BINARY) $(CTL)

$(BINARY): build/zplugins.go $(GOFILES) go.mod go.sum
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BINARY) ./build

# The operator's tool (import, check, corefile): see README "Migrating from the original server".
$(CTL): $(GOFILES) go.mod go.sum
	$(GO) build -ldflags '$(LDFLAGS)' -o $(CTL) ./build/regdnsctl

# build/zplugins.go is generated from plugin.cfg (and committed, so `go build ./...` works).
build/zplugins.go: plugin.cfg build/gen/main.go
	$(GO) generate ./build

generate: build/zplugins.go

run: build
	@echo "Serving $(COREFILE): DNS on 127.0.0.1:5300 (UDP and TCP), API on http://127.0.0.1:8081, etcd data in ./data"
	@echo "Try: dig @127.0.0.1 -p 5300 mydomain.org SOA   and   curl 'http://127.0.0.1:8081/subscribe?name=demo'"
	./$(BINARY) -conf $(COREFILE)

# The end-to-end tests run ./coredns, open mailed links in headless Chromium, resolve through
# unbound, tunnel through pagekite and back up the embedded etcd with etcdctl; the importer's
# tests read real PostgreSQL and MariaDB servers; the packaging tests run promtool
# (prometheus), systemd-analyze (systemd) and the container image (podman, runc): Debian
# packages, installed here when missing.
TEST_PACKAGES := chromium unbound pagekite nsd iproute2 etcd-client postgresql mariadb-server prometheus systemd podman runc

test: build test-deps
	$(GO) vet ./...
	COREDNS_BINARY=$(CURDIR)/$(BINARY) REGDNSCTL_BINARY=$(CURDIR)/$(CTL) $(GO) test -count=1 -timeout 15m ./...

test-deps:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the end-to-end tests: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The soak test (a short version runs in `make test`): mixed API and DNS load on two replicas
# while etcd is stopped and started and replicas are killed; SOAK sets how long.
SOAK ?= 5m
soak: build test-deps
	COREDNS_BINARY=$(CURDIR)/$(BINARY) REGDNS_SOAK=$(SOAK) $(GO) test -count=1 -timeout 60m -run '^TestSoak$$' -v ./build/e2e/

# Every native fuzz target for FUZZTIME each (seeds also run in `make test`). FUZZTIME is an
# execution count (`Nx`) by default: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" failure when a duration budget expires (golang/go#75804, fixed in
# Go 1.27); a count has no deadline to race. A duration (FUZZTIME=1m) works but may hit that race.
FUZZTIME ?= 20000x
FUZZ_PACKAGES := ./api ./etcdstore ./plugin/registry
fuzz:
	@for pkg in $(FUZZ_PACKAGES); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/regdns-fuzz.log 2>&1 || { cat /tmp/regdns-fuzz.log; exit 1; }; \
		done; \
	done

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# Go benchmarks of the DNS hot paths, then dnsperf against ./coredns (registry plugin vs file
# plugin, N = 10k and 1M), API load and replica propagation, then the capacity scenario: see
# build/bench/README.md. `make bench BENCHFLAGS=-quick` for a short run (the capacity scenario
# takes -quick and -save from BENCHFLAGS; CAPACITYFLAGS sets its flags apart).
BENCH_PACKAGES := dnsperf util-linux knot
BENCHFLAGS ?=
CAPACITYFLAGS ?= $(filter -quick -save,$(BENCHFLAGS))
bench: build bench-deps
	$(GO) test -run '^$$' -bench . -benchmem ./plugin/registry/
	$(GO) test -run '^$$' -bench '^BenchmarkImport$$' -benchtime 1x ./build/regdnsctl/
	$(GO) run ./build/bench -binary ./$(BINARY) $(BENCHFLAGS)
	$(MAKE) --no-print-directory bench-capacity

# The capacity scenario alone (issue 14): a million names under DNS load and the pings of a
# million gateways, 13 minutes; `make bench-capacity CAPACITYFLAGS=-quick` in under 3.
bench-capacity: build bench-deps
	$(GO) run ./build/bench -binary ./$(BINARY) -capacity $(CAPACITYFLAGS)

bench-deps:
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the benchmark: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Static linux binaries (no cgo) for each of RELEASE_PLATFORMS in dist/, with SHA256SUMS:
# coredns and, where build/regdnsctl exists, regdnsctl, named NAME-VERSION-OS-ARCH.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
release: build/zplugins.go
	rm -rf dist && mkdir -p dist
	@for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		for cmd in coredns:./build regdnsctl:./build/regdnsctl; do \
			name=$${cmd%%:*}; pkg=$${cmd#*:}; \
			[ -d $$pkg ] || continue; \
			echo "building dist/$$name-$(VERSION)-$$os-$$arch"; \
			CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' \
				-o dist/$$name-$(VERSION)-$$os-$$arch $$pkg || exit 1; \
		done; \
	done
	cd dist && sha256sum * > SHA256SUMS && cat SHA256SUMS

# The container image (podman) of build/package/container/Containerfile: its build context in
# dist/image holds a static ./coredns, the container's Corefile and an empty state directory.
IMAGE ?= regdns:$(VERSION)
image: build/zplugins.go
	rm -rf dist/image && mkdir -p dist/image/state
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/image/coredns ./build
	cp build/package/container/Corefile dist/image/
	podman build -f build/package/container/Containerfile -t $(IMAGE) dist/image

clean:
	rm -f $(BINARY) $(CTL)

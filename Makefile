# tandem: `make demo` runs a real migration on throwaway local databases;
# `make test` runs the whole suite. Both install what is missing (apt-get)
# and start their own servers on loopback under .work/, without systemd.

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/tandem
# Every package whose code or tests start goroutines, for the race pass
# (find them: grep -rlE 'go func|errgroup' --include=*.go), but three.
# ./chaos and ./bench's tests run tandem as child processes, built without
# -race, and start goroutines only in their harness (waiting for a child,
# a workload's writer): a race build of it instruments none of tandem's
# code and would double the fault suite's minutes (bench's in-process goroutines are in benchmarks, which
# the race pass does not run). ./demo has no tests (`make demo` runs it).
RACE_PKGS := ./apply ./backfill/... ./capture/... ./cmd/tandem ./internal/app/... ./internal/change \
	./internal/fixture/... ./internal/kafka ./internal/mysqlurl ./internal/testenv ./reconcile/... \
	./sink/... ./transform

.PHONY: all deps build test chaos vet lint bench demo clean image image-check mutate

all: build

deps:
	@bash scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/tandem

vet:
	$(GO) vet ./...

# go vet, then staticcheck at the version go.mod pins as a tool (default
# checks; staticcheck.conf, if present, says why any is off). `go tool`
# builds it from the module cache, so there is nothing to install.
lint: vet
	$(GO) vet -tags imagecheck ./deploy
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags imagecheck ./deploy

# The whole suite, integration tests included (real PostgreSQL 15, kfake over
# the Kafka protocol, promtool) and the fault suite (./chaos, a package like
# the others), after gofmt and `make lint`: the packages that start
# goroutines (RACE_PKGS) under the race detector, the others without it,
# so that no test runs twice. -timeout is each package's alarm against a
# hang (every test polls with deadlines of its own): internal/app takes
# about 7 minutes under the race detector on an idle 2-core machine. CI
# runs this through .ci/run, and then image-check (about 20 s with a warm
# Go cache; a cold one adds the static build, 2-4 min, and apt's buildah,
# 1 min).
test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.work/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(MAKE) --no-print-directory lint
	$(GO) test -count=1 -timeout 25m $$(comm -23 <($(GO) list ./... | sort) <($(GO) list $(RACE_PKGS) | sort))
	$(GO) test -race -count=1 -timeout 25m $(RACE_PKGS)

# The fault suite alone (chaos/doc.go: kill -9, source restarts, target
# down, resets, stalls, broker restart, forged records), each scenario on
# real servers under a steady writer; about 3-4 min, its scenarios in
# parallel. CHAOS_SEED replays the random fault moments of a logged run.
chaos: deps
	$(GO) test -count=1 -timeout 10m -v ./chaos $(if $(CHAOS_SEED),-chaos.seed $(CHAOS_SEED))

# Mutation testing (go-gremlins) of the pure packages, one after the other:
# each mutant is a small change to the code (a flipped comparison, an
# off-by-one); a mutant the package's tests do not notice "lives". Not part
# of `make test` (minutes per package). scripts/mutate.sh runs each package
# and fails on a survivor not listed, with the reason it is equivalent, in
# docs/mutation-equivalent.md, and on a test efficacy (killed among covered
# mutants) below MUTATE_MIN percent. MUTATE_PKGS picks packages;
# MUTATE_WORKERS bounds the CPUs used (the machines are shared); each
# package's run is cut at MUTATE_TIMEOUT; its JSON results go to .work/mutate.
GREMLINS_VERSION ?= v0.5.0
MUTATE_PKGS ?= ./internal/change ./internal/config ./transform ./reconcile \
	./internal/pgtext ./internal/mysqlurl ./internal/repeat ./internal/poll
MUTATE_WORKERS ?= 1
MUTATE_TIMEOUT ?= 3h
MUTATE_MIN ?= 95
mutate:
	@GO=$(GO) GREMLINS_VERSION=$(GREMLINS_VERSION) MUTATE_WORKERS=$(MUTATE_WORKERS) MUTATE_TIMEOUT=$(MUTATE_TIMEOUT) \
		MUTATE_MIN=$(MUTATE_MIN) bash scripts/mutate.sh $(MUTATE_PKGS)

# The release image (Dockerfile), named $(IMAGE) in buildah's local store
# (vfs driver), built FROM scratch around a static binary, without a Docker
# engine or a registry; as root. `make image VERSION=v1.2.3` stamps a version
# (default: git describe). scripts/image.sh installs buildah when missing.
IMAGE ?= tandem
image:
	@IMAGE=$(IMAGE) VERSION="$(VERSION)" GO=$(GO) bash scripts/image.sh

# Builds the image, then checks what is in it and runs its binary inside it
# (buildah run --isolation chroot): version, check against a test PostgreSQL
# server, and a short run that converges.
image-check: image
	$(GO) test -tags imagecheck -count=1 -timeout 5m -run '^TestImage_' ./deploy -image $(IMAGE)

# Benchmarks with their physical limits measured in the same run, and the
# fault suite's soak after them, alone (chaos.BenchmarkSoak: 10 minutes per
# source, one after the other).
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/...
	$(GO) test -run '^$$' -bench Soak -benchtime 1x -timeout 30m ./chaos

demo: deps build
	$(GO) run ./demo

clean:
	rm -rf bin .work

# renderfarm. `make demo` and `make test` do all set-up themselves on a fresh
# Debian 12 machine (as root); see scripts/setup.sh.
SHELL := /bin/bash
BIN   := bin/renderfarm
GO    ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Fuzz each target briefly in `make test`; longer runs: make fuzz FUZZ_FAST=5000000x.
# Budgets are execution counts, not durations: Go 1.26's -fuzztime deadline
# can fail a clean run with "context deadline exceeded" (golang/go#75804).
FUZZ_FAST ?= 100000x
FUZZ_SLOW ?= 20000x

.PHONY: all setup build image demo test chaos-short fuzz bench bench-worker bench-e2e bench-web chaos cluster soak testdata clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/renderfarm

# The container image from the top-level Dockerfile, built with buildah on a
# locally made Debian 12 base (cached) and tested by running its binary:
# --version, tune, and its web tier and worker taking a render through
# RabbitMQ. Prints the image's size. See scripts/image.sh.
image:
	VERSION=$(VERSION) bash scripts/image.sh

# The main job, the whole path on one machine: RabbitMQ, a worker on local
# files, a Python Celery app enqueueing testdata's photos with the default
# recipe; prints what was written to ./out.
demo: build
	bash scripts/demo.sh

test: setup
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(MAKE) --no-print-directory chaos-short
	$(MAKE) --no-print-directory fuzz

# The part of `make chaos` CI runs (.ci/run is `make test`): the kill,
# restart and outage scenarios, about 3-4 minutes; the rest (memory,
# poison, self-kill) stays in `make chaos`.
chaos-short: setup
	$(GO) test -tags chaos -count=1 -timeout 10m -v -run '^TestChaos$$/^(sigkill|sigterm|rabbitmq-down|s3-down)$$' ./tools/chaos/

fuzz:
	$(GO) test ./render -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZ_FAST)
	$(GO) test ./render -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZ_SLOW)
	$(GO) test ./render -run '^$$' -fuzz '^FuzzJPEGDCOnly$$' -fuzztime $(FUZZ_FAST)
	$(GO) test ./broker/celery -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_FAST)
	$(GO) test ./storage -run '^$$' -fuzz '^FuzzParseLocation$$' -fuzztime $(FUZZ_FAST)

# Side by side with vipsthumbnail, Pillow and the djpeg decode floor on real
# photos; prints medians and ratios, output bytes and SSIM.
bench: build
	bash tools/bench/bench.sh

# The Go worker against a stock Celery 5.2 worker on no-op tasks, and
# publish throughput with confirms.
bench-worker: setup
	bash tools/bench/worker.sh

# The render task end to end (RabbitMQ, one worker, versitygw) against a
# Celery + Pillow + boto3 worker and the in-process engine on the same photos.
bench-e2e: build
	bash tools/bench/e2e.sh

# The web tier's enqueue rate (HTTP, 202 once confirmed) against raw amqp091-go publishing with confirms.
bench-web: build
	bash tools/bench/web.sh

# The fault suite: real workers, web tier, versitygw and a private RabbitMQ
# node on 127.0.0.1:5681 (the system node is never stopped); one table row
# per scenario, printed at the end and written to $(CHAOS_TABLE).
CHAOS_TABLE ?= chaos-table.md
chaos: setup
	CHAOS_TABLE=$(abspath $(CHAOS_TABLE)) $(GO) test -tags chaos -count=1 -timeout 15m -v -run '^TestChaos$$' ./tools/chaos/

# A three-node RabbitMQ cluster on 127.0.0.1:5701-5703 (booting and
# joining it takes over a minute, hence not in `make test`): the rig
# itself, and a worker and web tier given all three URLs losing their node
# mid-batch.
cluster: setup
	$(GO) test -tags cluster -count=1 -timeout 15m -v -run '^(TestRabbitMQCluster|TestClusterNodeLossMidBatch)$$' ./internal/testenv/ ./cmd/renderfarm/

# Not in CI: steady load for SOAK_DURATION (default 20m) at SOAK_RATE tasks/s
# (default 4); reports RSS drift and throughput per minute.
soak: setup
	CHAOS_TABLE=$(abspath $(CHAOS_TABLE)) $(GO) test -tags chaos -count=1 -timeout 40m -v -run '^TestSoak$$' ./tools/chaos/

testdata:
	$(GO) run ./tools/gendata -out testdata

clean:
	rm -rf bin out .cache/bench/out* chaos-table.md

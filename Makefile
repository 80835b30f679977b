# renderfarm. `make demo` and `make test` do all set-up themselves on a fresh
# Debian 12 machine (as root); see scripts/setup.sh.
SHELL := /bin/bash
BIN   := bin/renderfarm
GO    ?= go
# Fuzz each target briefly in `make test`; longer runs: make fuzz FUZZTIME=5m
FUZZTIME ?= 10s

.PHONY: all setup build demo test fuzz bench bench-worker bench-e2e testdata clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/renderfarm

# The main job, the whole path on one machine: RabbitMQ, a worker on local
# files, a Python Celery app enqueueing testdata's photos with the default
# recipe; prints what was written to ./out.
demo: build
	bash scripts/demo.sh

test: setup
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(MAKE) --no-print-directory fuzz

fuzz:
	$(GO) test ./render -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./render -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME)
	$(GO) test ./broker/celery -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./storage -run '^$$' -fuzz '^FuzzParseLocation$$' -fuzztime $(FUZZTIME)

# Side by side with vipsthumbnail on real photos; prints medians and ratios.
bench: build
	bash scripts/bench.sh

# The Go worker against a stock Celery 5.2 worker on no-op tasks, and
# publish throughput with confirms.
bench-worker: setup
	bash scripts/bench-worker.sh

# The render task end to end (RabbitMQ, one worker, versitygw) against the
# in-process engine on the same photos.
bench-e2e: build
	bash scripts/bench-e2e.sh

testdata:
	$(GO) run ./testdata/gen -out testdata

clean:
	rm -rf bin out .cache/bench/out*

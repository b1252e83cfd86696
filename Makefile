# Kerbside console latency loadtest. `make help` lists the targets.
#
# Everything runs through the Go toolchain: gotestsum and staticcheck are
# tool dependencies in go.mod (`go tool ...`), so a fresh machine needs
# only Go.

GO          ?= go
RESULTS_DIR ?= $(or $(LATENCY_RESULTS_DIR),results)
# go test's own timeout. The loadtest stops itself (and cleans up) a
# minute before it, because a go test timeout kills the binary without
# running any cleanup.
TIMEOUT     ?= 40m
GOTESTSUM   := $(GO) tool gotestsum
FUZZTIME    ?= 30s
BENCHTIME   ?= 1s

# The short fake loadtest that `make test` runs: a few samples at a fast
# cadence through the whole fake chain (fake cloud, .vv, fakeryll).
SHORT_LOADTEST_ENV := LATENCY_PROVIDER=fake LATENCY_SAMPLES=8 \
	LATENCY_CADENCE=250ms LATENCY_KEY_HOLD=30ms LATENCY_CADENCE_JITTER=40ms \
	LATENCY_MAX_DURATION=60s LATENCY_RESULTS_DIR=$(RESULTS_DIR)/short

# The real-cloud lane: deploy/devcloud's Zed on 127.0.0.1. Its openrc
# files and clouds.yaml (passwords) go under the cloud's own state
# directory, never into the results.
DEVCLOUD       := bash deploy/devcloud/devcloud.sh
DEVCLOUD_STATE ?= /var/tmp/kerbside-devcloud
DEVCLOUD_DIR   ?= $(DEVCLOUD_STATE)/out

.PHONY: help test unit loadtest-short loadtest lint bench fleet-bench fuzz sweep compare guest clean cloud-up cloud-test cloud-down

help:
	@echo "make test       unit tests with -race, then a short fake loadtest (what CI runs)"
	@echo "make loadtest   the loadtest (fake chain unless LATENCY_PROVIDER says otherwise); results in $(RESULTS_DIR)/"
	@echo "make lint       gofmt, go vet (with and without -tags loadtest), staticcheck, go mod tidy check"
	@echo "make bench      benchmarks (control client, pairing, accuracy)"
	@echo "make fleet-bench harness CPU, memory and measurement error per console at N = 1, 10, 50"
	@echo "make fuzz       the fuzz targets (control-socket lines, SPICE messages and link replies), FUZZTIME=$(FUZZTIME) each"
	@echo "make sweep      delete servers left by earlier runs (OpenStack; SWEEP_ARGS='-older-than 2h -dry-run')"
	@echo "make compare    OLD=results/latency-A.csv NEW=results/latency-B.csv: medians, confidence and p-value"
	@echo "make guest      rebuild the boot-sector guest harness/guest/guest.img from guest.asm (needs nasm)"
	@echo "make cloud-test the openstack provider's end-to-end cases against a real Zed on 127.0.0.1 (root, Debian 12: installs and starts it)"
	@echo "make cloud-down stop the dev cloud and delete its state"
	@echo "make clean      remove results and build output"

test: unit loadtest-short

unit:
	@mkdir -p $(RESULTS_DIR)
	$(GOTESTSUM) --format pkgname --junitfile $(RESULTS_DIR)/junit-unit.xml -- -race -count=1 -timeout 15m ./...

loadtest-short:
	@mkdir -p $(RESULTS_DIR)/short
	$(SHORT_LOADTEST_ENV) $(GOTESTSUM) --format testname --junitfile $(RESULTS_DIR)/short/junit.xml -- \
		-tags loadtest -count=1 -timeout 10m -run '^TestLatency' .

loadtest:
	@mkdir -p $(RESULTS_DIR)
	LATENCY_RESULTS_DIR=$(RESULTS_DIR) $(GOTESTSUM) --format testname --junitfile $(RESULTS_DIR)/junit.xml -- \
		-tags loadtest -count=1 -timeout $(TIMEOUT) -run '^TestLatency' .

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags loadtest ./...
	$(GO) vet -tags cloudtest ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags loadtest ./...
	$(GO) mod tidy -diff

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

# What N consoles cost the harness and the measurement, at N = 1, 10, 50.
fleet-bench:
	$(GO) test -run '^$$' -bench '^BenchmarkFleet$$' -benchtime 1x -timeout 20m ./harness/loadtest/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeLine$$' -fuzztime $(FUZZTIME) ./harness/control/
	$(GO) test -run '^$$' -fuzz '^FuzzReadMessage$$' -fuzztime $(FUZZTIME) ./fakeryll/spice/
	$(GO) test -run '^$$' -fuzz '^FuzzLinkReply$$' -fuzztime $(FUZZTIME) ./fakeryll/spice/

sweep:
	$(GO) run ./cmd/latency-sweep $(SWEEP_ARGS)

compare:
	@test -n "$(OLD)" && test -n "$(NEW)" || { echo "usage: make compare OLD=results/latency-A.csv NEW=results/latency-B.csv"; exit 2; }
	$(GO) run ./cmd/latency-compare $(COMPARE_ARGS) "$(OLD)" "$(NEW)"

# The repaint-on-key boot-sector guest. The image is committed; a test
# checks that it matches a fresh build when nasm is installed.
guest:
	@command -v nasm >/dev/null || { echo "nasm not installed: apt-get install -y nasm"; exit 1; }
	nasm -f bin -o harness/guest/guest.img harness/guest/guest.asm

cloud-up:
	@mkdir -p $(RESULTS_DIR)/cloud
	DEVCLOUD_STATE=$(DEVCLOUD_STATE) DEVCLOUD_APT_LOG=$(RESULTS_DIR)/cloud/apt.log $(DEVCLOUD) install | tee $(RESULTS_DIR)/cloud/times.env
	DEVCLOUD_STATE=$(DEVCLOUD_STATE) $(DEVCLOUD) up $(DEVCLOUD_DIR) | tee -a $(RESULTS_DIR)/cloud/times.env

cloud-test: cloud-up
	DEVCLOUD_DIR=$(DEVCLOUD_DIR) $(GOTESTSUM) --format testname --junitfile $(RESULTS_DIR)/cloud/junit.xml -- \
		-tags cloudtest -count=1 -timeout 15m -run '^TestCloud' .
	@DEVCLOUD_STATE=$(DEVCLOUD_STATE) $(DEVCLOUD) status | tail -n 1 | sed 's/^/after the tests: /'

cloud-down:
	DEVCLOUD_STATE=$(DEVCLOUD_STATE) $(DEVCLOUD) down

clean:
	rm -rf $(RESULTS_DIR) bin
	$(GO) clean -testcache

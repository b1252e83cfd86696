# Kerbside console latency loadtest. `make help` lists the targets.
#
# Everything runs through the Go toolchain: gotestsum and staticcheck are
# tool dependencies in go.mod (`go tool ...`), so a fresh machine needs
# only Go.

GO          ?= go
# -trimpath keeps the checkout's path out of every build and so out of Go's
# build cache keys: a fresh clone (CI's, a second checkout) reuses what
# another compiled instead of compiling the whole tree again. Compiling and
# linking make test's race-built tests in a fresh clone took 76 s without
# it and 40 s with it. The go commands the tests run inherit it.
export GOFLAGS += -trimpath
RESULTS_DIR ?= $(or $(LATENCY_RESULTS_DIR),results)
# go test's own timeout. The loadtest stops itself (and cleans up) a
# minute before it, because a go test timeout kills the binary without
# running any cleanup.
TIMEOUT     ?= 40m
GOTESTSUM   := $(GO) tool gotestsum
FUZZTIME    ?= 30s
BENCHTIME   ?= 1s
BENCHCOUNT  ?= 1
BENCHPKGS   ?= ./...

# The short fake loadtest that `make test` runs: a few samples at a fast
# cadence through the whole fake chain (fake cloud, .vv, fakeryll).
SHORT_LOADTEST_ENV := LATENCY_PROVIDER=fake LATENCY_SAMPLES=8 \
	LATENCY_CADENCE=250ms LATENCY_KEY_HOLD=30ms LATENCY_CADENCE_JITTER=40ms \
	LATENCY_MAX_DURATION=60s LATENCY_RESULTS_DIR=$(RESULTS_DIR)/short

# The short real lane that `make test` runs where QEMU is installed: the
# boot-sector guest in a local QEMU, a real SPICE session (ryll, or
# fakeryll's SPICE client), jittered presses; the median must land where
# a real SPICE session on these machines puts it (facts: 11-23 ms, with a
# generous margin for a loaded CI machine).
REAL_LOADTEST_ENV := LATENCY_PROVIDER=qemu LATENCY_SAMPLES=12 \
	LATENCY_CADENCE=300ms LATENCY_KEY_HOLD=30ms LATENCY_CADENCE_JITTER=100ms \
	LATENCY_MAX_DURATION=120s LATENCY_EXPECT_P50=0.003-0.08 LATENCY_RESULTS_DIR=$(RESULTS_DIR)/real

# The real-cloud lane: deploy/devcloud's OpenStack 2025.1 (Debian 13's, in
# a trixie chroot) in a network namespace of its own. The chroot is built
# once and kept (DEVCLOUD_CHROOT; `make cloud-purge` deletes it); the cloud's
# state, openrc files and clouds.yaml (passwords) live in DEVCLOUD_STATE,
# never in the results. The tests run inside the namespace
# (devcloud.sh exec), where the cloud's 127.0.0.1 and the fake driver's
# console host are.
DEVCLOUD        := bash deploy/devcloud/devcloud.sh
DEVCLOUD_STATE  ?= /var/tmp/kerbside-devcloud
DEVCLOUD_CHROOT ?= /var/tmp/kerbside-devcloud-chroot
DEVCLOUD_NETNS  ?= kerbside-devcloud
DEVCLOUD_DIR    ?= $(DEVCLOUD_STATE)/out
DEVCLOUD_ENV    := DEVCLOUD_GO=$(GO) DEVCLOUD_STATE=$(DEVCLOUD_STATE) DEVCLOUD_CHROOT=$(DEVCLOUD_CHROOT) DEVCLOUD_NETNS=$(DEVCLOUD_NETNS)

.PHONY: help test test-ab unit race loadtest-bin loadtest-short loadtest-real loadtest lint bench fleet-bench fuzz sweep compare guest guest-image clean cloud-up cloud-test cloud-down cloud-purge

help:
	@echo "make test       unit tests, a short simulated loadtest and, where QEMU is installed, a short"
	@echo "                real-SPICE loadtest and the real lane's quick end-to-end cases"
	@echo "make race       the unit tests under the race detector (about three minutes more; CI runs it after make test)"
	@echo "make test-ab    the real lane's A/B end to end (nagle fails, nodelay passes, a delay fails, a loaded host"
	@echo "                never passes unproven) and its busy cases (a link's RTT, the ACK window, rectangles, a short"
	@echo "                ramp); about ten minutes; CI runs it after make test"
	@echo "make loadtest   the loadtest; the default lane (LATENCY_PROVIDER=auto) is a real SPICE session to a local"
	@echo "                QEMU guest where qemu-system-x86_64 is installed, else the simulated fake chain; results in $(RESULTS_DIR)/"
	@echo "make loadtest-load a short load ramp on the real lane (0, 8 and 32 synthetic busy sessions through a nodelay proxy):"
	@echo "                the knee table, latency-<run>-load.json and its curve in $(RESULTS_DIR)/load/"
	@echo "make lint       gofmt, go vet (with and without -tags loadtest and cloudtest), staticcheck, go mod tidy check"
	@echo "make bench      benchmarks (control client, pairing, accuracy; with QEMU, BenchmarkRealFleet boots up to 25 QEMUs);"
	@echo "                output in $(RESULTS_DIR)/go-bench.txt; BENCHTIME, BENCHCOUNT, BENCHPKGS"
	@echo "make fleet-bench harness CPU, memory and measurement error per simulated console at N = 1, 10, 50"
	@echo "make fuzz       the fuzz targets (control-socket lines, SPICE messages and link replies), FUZZTIME=$(FUZZTIME) each"
	@echo "make sweep      delete servers left by earlier runs (OpenStack; SWEEP_ARGS='-older-than 2h -dry-run')"
	@echo "make compare    OLD=results/latency-A.csv NEW=results/latency-B.csv: medians, confidence and p-value"
	@echo "make guest      rebuild the boot-sector guest harness/guest/guest.img from guest.asm (needs nasm)"
	@echo "make guest-image the guest as a disk image Glance takes: GUEST_FORMAT=qcow2|raw (qcow2) into GUEST_IMAGE ($(RESULTS_DIR)/latency-guest.FORMAT)"
	@echo "make cloud-test the openstack provider's end-to-end cases against a real Nova 2025.1 (root, Debian: builds a trixie chroot, starts the cloud in its own network namespace)"
	@echo "make cloud-down stop the dev cloud and delete its state (the chroot is kept)"
	@echo "make cloud-purge cloud-down, then delete the chroot too"
	@echo "make clean      remove results and build output"

test: unit loadtest-short loadtest-real

# -p 4 -parallel 4: four packages, and four parallel tests in each, at
# once on a 2-core machine. Most slow tests wait (QEMU booting, a
# cadence, a child process) rather than compute, so the defaults (one
# package and one test per core) left the cores idle: unit took 273 s
# with them, 163 s with -p 4 and 130 s with both, on a quiet 2-core
# machine.
#
# go test starts packages in the order it is given them, so the longest
# (about a minute each, most of it waiting on children) go first: listed
# last, as in ./..., harness/loadtest started at 92 s and ran alone for the
# last 25 s (unit: 156 s in that order, 135 s in this one). The list only
# orders: ./... still names every package.
SLOW_PKGS := ./harness/loadtest . ./harness/guest ./harness/loadrig ./fixtures/fakechain ./harness/results
#
# -ldflags=-w: the test binaries are linked without DWARF (stack traces and
# race reports still name file and line). Linking the 50 test binaries was
# a quarter of unit's CPU; without DWARF each link costs about a quarter
# less. Debug a test with plain go test.
#
# make test's unit tests run without the race detector, make race with it,
# and CI runs both. Measured on a quiet 2-core machine, warm cache
# (2026-12-05): the same unit tests took 338 CPU-s and 170-187 s with
# -race, 161 CPU-s and 97 s without; linking the 50 race-built binaries
# alone took 63 s against 31 s. make test stays under three minutes; no
# change lands without make race passing.
UNIT_FLAGS = -ldflags=-w -count=1 -p 4 -parallel 4 -timeout 15m $(SLOW_PKGS) ./...
unit:
	@mkdir -p $(RESULTS_DIR)
	$(GOTESTSUM) --format pkgname --junitfile $(RESULTS_DIR)/junit-unit.xml -- $(UNIT_FLAGS)

race:
	@mkdir -p $(RESULTS_DIR)
	$(GOTESTSUM) --format pkgname --junitfile $(RESULTS_DIR)/junit-race.xml -- -race $(UNIT_FLAGS)

# The loadtest is compiled first and run under cmd/latency-run, which
# keeps gotestsum and test2json out of reach of a signal to the whole
# process group (a CI cancel) and passes a stop on to the loadtest alone,
# so that the results, the JUnit file included, are written whatever
# stops the run: Ctrl-C, a group SIGTERM or SIGKILL, a kill of make alone.
# Each run keeps its own JUnit file, junit-<run>.xml next to $(1); $(1)
# itself is a link to the latest run's.
LATENCY_RUN = bin/latency-run -junit $(1) -- $(GOTESTSUM) --format standard-verbose --hide-summary=output --junitfile {junit} --raw-command -- \
	$(GO) tool test2json -t -p latency bin/latency.test -test.v=test2json -test.timeout $(2) -test.run '^TestLatency$$'

# loadtest-bin and loadtest print nothing of their own on stdout (what
# they say goes to stderr): make dies of SIGPIPE writing to a stdout whose
# reader went away (`make loadtest | head -1`), and the run with it.
loadtest-bin:
	@mkdir -p bin
	@echo "building bin/latency-run, bin/latency.test (the loadtest) and gotestsum (seconds; a first build takes a minute or two)" >&2
	@$(GO) build -o bin/latency-run ./cmd/latency-run
	@$(GO) test -c -tags loadtest -o bin/latency.test .
	@$(GOTESTSUM) --version >/dev/null

loadtest-short: loadtest-bin
	@mkdir -p $(RESULTS_DIR)/short
	$(SHORT_LOADTEST_ENV) $(call LATENCY_RUN,$(RESULTS_DIR)/short/junit.xml,10m)

loadtest-real:
	@if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then \
		echo "SKIPPED: the real SPICE lane (make loadtest-real) needs QEMU: apt-get install -y qemu-system-x86"; \
		echo "         only the simulated lanes ran; no number from a real SPICE session was taken"; exit 0; fi
	@$(MAKE) --no-print-directory loadtest-bin
	@mkdir -p $(RESULTS_DIR)/real
	$(REAL_LOADTEST_ENV) $(call LATENCY_RUN,$(RESULTS_DIR)/real/junit.xml,10m)
	@# The real lane's quick end-to-end cases (the direct and file
	@# providers, a wrong password, QEMU killed mid-run), after the unit
	@# tests, side by side: each has a guest of its own. The A/B cases are make
	@# test-ab's.
	LATENCY_E2E_REAL=1 $(GOTESTSUM) --format testname --junitfile $(RESULTS_DIR)/real/junit-e2e.xml -- \
		-count=1 -parallel 3 -timeout 15m -run '^TestRealLane(WrongPassword|NoCloudProviders|QemuKilled)' .

# The real lane's A/B end to end (CI runs it after make test): nagle must
# fail naming the repaint, nodelay pass with its interval proving it (100
# samples a leg), a 30 ms delay fail both figures, and under busy loops
# never a pass the interval does not prove; with them the busy cases:
# a link's RTT and the ACK window's bound, a video guest measured by its
# rectangles, and a short load ramp (0 and 8 synthetic sessions, 40
# samples: about 40 s, too long for make test, whose unit tests cover
# the ramp's parts in seconds).
test-ab:
	@if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then \
		echo "SKIPPED: the real lane's A/B (make test-ab) needs QEMU: apt-get install -y qemu-system-x86"; exit 0; fi
	@mkdir -p $(RESULTS_DIR)/real
	LATENCY_E2E_REAL=1 $(GOTESTSUM) --format testname --junitfile $(RESULTS_DIR)/real/junit-ab.xml -- \
		-count=1 -timeout 25m -run '^(TestRealLaneAB|TestRealLaneActivityRects|TestRealLaneLink(RTT|ACKWindow)|TestRealLaneRampShort)' .

# A short load ramp on the real lane: synthetic busy sessions (1 Mbit/s
# of video each) at 0, 8 and 32 beside the measured guest, all through
# one proxy (LATENCY_PROXY, nodelay unless set), 20 samples a step over
# two interleaved rounds. It prints the ramp's table (where the curve
# is) and writes latency-<run>-load.json and its curve, -load.png. On a
# host too busy to tell (this shared one often is) the verdict is
# host-bound and the run fails, saying so.
LOAD_LOADTEST_ENV := LATENCY_PROVIDER=qemu LATENCY_LOAD=0,8,32 LATENCY_SAMPLES=20 \
	LATENCY_CADENCE=300ms LATENCY_KEY_HOLD=30ms LATENCY_CADENCE_JITTER=100ms \
	LATENCY_MAX_DURATION=180s LATENCY_RESULTS_DIR=$(RESULTS_DIR)/load

.PHONY: loadtest-load
loadtest-load:
	@if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then \
		echo "SKIPPED: the load ramp (make loadtest-load) needs QEMU: apt-get install -y qemu-system-x86"; exit 0; fi
	@$(MAKE) --no-print-directory loadtest-bin
	@mkdir -p $(RESULTS_DIR)/load
	$(LOAD_LOADTEST_ENV) $(call LATENCY_RUN,$(RESULTS_DIR)/load/junit.xml,10m)

loadtest: loadtest-bin
	@mkdir -p $(RESULTS_DIR)
	@LATENCY_RESULTS_DIR=$(RESULTS_DIR) $(call LATENCY_RUN,$(RESULTS_DIR)/junit.xml,$(TIMEOUT))

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags loadtest ./...
	$(GO) vet -tags cloudtest ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags loadtest ./...
	$(GO) tool staticcheck -tags cloudtest ./...
	$(GO) mod tidy -diff

# The output is kept in $(RESULTS_DIR)/go-bench.txt for benchstat, and
# searched for failures too: with -count above 1 (or a -cpu list) go
# test prints a repetition's "--- FAIL" yet reports PASS and exits 0.
bench:
	@mkdir -p $(RESULTS_DIR)
	@{ $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(BENCHPKGS) 2>&1; \
		echo $$? > $(RESULTS_DIR)/go-bench.status; } | tee $(RESULTS_DIR)/go-bench.txt
	@status=$$(cat $(RESULTS_DIR)/go-bench.status); rm -f $(RESULTS_DIR)/go-bench.status; \
	if grep -Eq '(^|[[:space:]])--- FAIL:' $(RESULTS_DIR)/go-bench.txt; then \
		echo "make bench: a benchmark failed (see --- FAIL above; go test exited $$status)"; exit 1; fi; \
	exit $$status

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

# The guest as a 1 MiB hard disk (MBR, SeaBIOS) that a cloud boots from
# Glance; the qcow2 is written by harness/guest, no qemu-img.
GUEST_FORMAT ?= qcow2
GUEST_IMAGE  ?= $(RESULTS_DIR)/latency-guest.$(GUEST_FORMAT)
guest-image:
	@mkdir -p $(dir $(GUEST_IMAGE))
	$(GO) run ./cmd/latency-guest-image -format $(GUEST_FORMAT) -o $(GUEST_IMAGE)

cloud-up:
	@mkdir -p $(RESULTS_DIR)/cloud
	$(DEVCLOUD_ENV) $(DEVCLOUD) install | tee $(RESULTS_DIR)/cloud/times.env
	$(DEVCLOUD_ENV) $(DEVCLOUD) up $(DEVCLOUD_DIR) | tee -a $(RESULTS_DIR)/cloud/times.env

# The test binary and the tools are built here, on the host: inside the
# namespace there is no network (the tests' own builds find everything in
# the caches). What the terminal shows goes to cloud-test.log, everything
# the tests printed (the A/B table among it) to cloud-test.json, and those
# and every other result file are searched for the cloud's passwords and
# console tokens afterwards.
cloud-test: cloud-up
	@mkdir -p bin $(RESULTS_DIR)/cloud
	$(GO) test -c -tags cloudtest -o bin/cloud.test .
	$(GO) test -c -tags loadtest -o bin/latency.test .
	$(GO) build -o bin/ ./fakeryll ./cmd/latency-run ./cmd/latency-sweep
	@$(GOTESTSUM) --version >/dev/null
	@t0=$$(date +%s); rm -f $(RESULTS_DIR)/cloud/status; \
	{ $(DEVCLOUD_ENV) $(DEVCLOUD) exec env DEVCLOUD_DIR=$(DEVCLOUD_DIR) GOFLAGS='$(GOFLAGS) -mod=readonly' GOPROXY=off \
		$(GOTESTSUM) --format testname --junitfile $(RESULTS_DIR)/cloud/junit.xml --jsonfile $(RESULTS_DIR)/cloud/cloud-test.json --raw-command -- \
		$(GO) tool test2json -t -p latency bin/cloud.test -test.v=test2json -test.count=1 -test.timeout 20m -test.run '^TestCloud'; \
		echo $$? > $(RESULTS_DIR)/cloud/status; } 2>&1 | tee $(RESULTS_DIR)/cloud/cloud-test.log; \
	status=$$(cat $(RESULTS_DIR)/cloud/status); rm -f $(RESULTS_DIR)/cloud/status; \
	echo "tests_seconds=$$(( $$(date +%s) - t0 ))" | tee -a $(RESULTS_DIR)/cloud/times.env; \
	$(DEVCLOUD_ENV) bash deploy/devcloud/nosecrets.sh $(RESULTS_DIR)/cloud || status=1; \
	exit $$status
	@$(DEVCLOUD_ENV) $(DEVCLOUD) status | tail -n 1 | sed 's/^/after the tests: /'

cloud-down:
	$(DEVCLOUD_ENV) $(DEVCLOUD) down

cloud-purge:
	$(DEVCLOUD_ENV) $(DEVCLOUD) purge

clean:
	rm -rf $(RESULTS_DIR) bin
	$(GO) clean -testcache

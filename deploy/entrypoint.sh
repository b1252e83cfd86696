#!/bin/sh
# Entry point of the kerbside-latency image.
#
# Runs the compiled loadtest under gotestsum, the way `go test` would run
# it, with no Go toolchain in the image, all under latency-run, so that a
# stop signal reaches the loadtest alone and gotestsum lives on to write
# junit.xml (cmd/latency-run):
#
#   latency-run -- gotestsum --junitfile $LATENCY_RESULTS_DIR/junit.xml \
#     --format standard-verbose --raw-command -- test2json -t -p latency \
#     /usr/local/bin/latency.test -test.v=test2json \
#     -test.timeout=$LATENCY_TEST_TIMEOUT [arguments]
#
# Arguments given to `docker run IMAGE ...` go to the test binary, after
# the defaults, so they win (e.g. -test.run '^TestLatency$' or
# -test.timeout=90m). Everything else is configured through the LATENCY_*
# and OS_* environment variables the loadtest reads. The container's exit
# status is gotestsum's, which is the test result.
#
# Variables read here:
#   LATENCY_RESULTS_DIR   where junit.xml, the CSV and the sidecar go (/results)
#   LATENCY_TEST_TIMEOUT  the test binary's -test.timeout (40m); the loadtest
#                         stops itself and cleans up before it runs out
#   LATENCY_TEST_BINARY   the compiled loadtest (/usr/local/bin/latency.test)
set -eu

prog=latency-entrypoint

fail() {
	echo "$prog: $*" >&2
	exit 2
}

results_dir=${LATENCY_RESULTS_DIR:-/results}
test_binary=${LATENCY_TEST_BINARY:-/usr/local/bin/latency.test}
test_timeout=${LATENCY_TEST_TIMEOUT:-40m}

[ -n "$results_dir" ] || fail "LATENCY_RESULTS_DIR is empty"
[ -n "$test_timeout" ] || fail "LATENCY_TEST_TIMEOUT is empty"
[ -x "$test_binary" ] || fail "the loadtest binary $test_binary is missing or not executable"
for tool in latency-run gotestsum test2json; do
	command -v "$tool" > /dev/null 2>&1 || fail "$tool is not on PATH ($PATH)"
done

mkdir -p "$results_dir" 2> /dev/null || true
if [ ! -d "$results_dir" ] || [ ! -w "$results_dir" ]; then
	fail "results directory $results_dir is not a directory writable by uid $(id -u) (gid $(id -g)); make the mounted directory writable by that uid, or run the container with --user \"\$(id -u):\$(id -g)\""
fi
# The loadtest reads the same variable; make sure it sees what junit.xml
# is written next to.
LATENCY_RESULTS_DIR=$results_dir
export LATENCY_RESULTS_DIR

# gotestsum puts the Go version in the JUnit report and runs `go version`
# to find it unless GOVERSION is set; there is no go here, so use the
# version the loadtest was compiled with.
if [ -z "${GOVERSION:-}" ] && [ -r /usr/local/share/kerbside-latency/go-version ]; then
	GOVERSION=$(cat /usr/local/share/kerbside-latency/go-version)
	export GOVERSION
fi

exec latency-run -- gotestsum \
	--junitfile "$results_dir/junit.xml" \
	--format standard-verbose \
	--raw-command -- \
	test2json -t -p latency "$test_binary" \
	-test.v=test2json \
	"-test.timeout=$test_timeout" \
	"$@"

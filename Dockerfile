# syntax=docker/dockerfile:1
#
# Container image for the Kerbside console latency loadtest.
#
#   docker build -t kerbside-latency .                     # the real image (last stage)
#   docker build --target smoke -t latency:smoke .         # fakeryll, fake cloud, no Rust
#   docker build --build-arg RYLL_REF=<branch|tag|commit> -t kerbside-latency .
#
# Stages, in order:
#   ryll          builds the slim headless ryll from source (Rust toolchain)
#   go            builds the compiled loadtest, latency-run, test2json, gotestsum and fakeryll
#   runtime-base  debian:bookworm-slim, the Go binaries, a non-root user, /results;
#                 no ryll, so the smoke target never needs the Rust stage
#   smoke         runtime-base with fakeryll installed as /usr/local/bin/ryll
#   runtime       runtime-base with the real ryll; the default target
#
# Needs BuildKit (the default builder since Docker 23): the cache mounts
# below are BuildKit features, and BuildKit is what skips the ryll stage
# when only the smoke target is built.
# deploy/dockerfile_test.go checks this file's structure; keep it passing.

# Rust 1.88 is ryll's declared rust-version. The default is newer because
# ryll's own CI builds with stable, so its Cargo.lock may hold crates that
# need more than the declared minimum. The builder must stay on bookworm:
# the binary links against glibc and runs on bookworm-slim.
ARG RUST_VERSION=1.92
# The ryll branch, tag or commit to build. A plain clone of `main` is
# cached by the builder like any other layer: pass a commit for a
# reproducible image, or --no-cache-filter ryll to pick up a moved branch.
ARG RYLL_REF=main
ARG RYLL_REPO=https://github.com/shakenfist/ryll.git

FROM rust:${RUST_VERSION}-bookworm AS ryll
ARG RYLL_REF
ARG RYLL_REPO
# cmake: ryll's WebRTC code pulls in opus, which is built from vendored C
# sources even with --no-default-features. pkg-config and libssl-dev for
# the TLS crates; the compilers themselves come with the rust image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# A full clone (not --depth 1) so RYLL_REF can be any commit, not just a
# branch head or tag.
RUN git clone --no-checkout "$RYLL_REPO" ryll \
 && git -C ryll -c advice.detachedHead=false checkout "$RYLL_REF" \
 && mkdir -p /out \
 && git -C ryll rev-parse HEAD > /out/ryll-commit
WORKDIR /src/ryll
# --no-default-features is the slim headless build: no eframe, cpal or
# arboard, so the runtime image needs no GUI or audio libraries. The
# target directory is a cache mount, so the binary is copied out in the
# same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/ryll/target \
    cargo build --release --locked --no-default-features -p ryll \
 && install -m 0755 target/release/ryll /out/ryll

FROM golang:1.26-bookworm AS go
# Static binaries: the runtime image has no Go toolchain and no libc
# expectations beyond bookworm's.
ENV CGO_ENABLED=0
WORKDIR /src
# Modules first, in their own layer, so editing code does not download
# them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The loadtest is compiled as a test binary (`go test -c`) and run under
# gotestsum with test2json, exactly as `go test` would run it, so the
# image needs neither the toolchain nor the sources. The Go version is
# recorded for gotestsum's JUnit report, which would otherwise run `go
# version` to find it.
RUN --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out \
 && go test -c -trimpath -tags loadtest -o /out/latency.test . \
 && go build -trimpath -o /out/latency-run ./cmd/latency-run \
 && go build -trimpath -o /out/test2json cmd/test2json \
 && go build -trimpath -o /out/gotestsum gotest.tools/gotestsum \
 && go build -trimpath -o /out/fakeryll ./fakeryll \
 && go env GOVERSION > /out/go-version

FROM debian:bookworm-slim AS runtime-base
# libssl3 and ca-certificates are all ryll needs at run time. tini is PID
# 1: it reaps ryll processes and, with -g, passes the stop signal to the
# entry point's process group, where latency-run hears it and passes it on
# to the loadtest alone (gotestsum and test2json run in a session of their
# own), so the loadtest deletes its server and writes its results, and
# gotestsum still writes junit.xml, before the container exits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 tini \
 && rm -rf /var/lib/apt/lists/*
# The user the loadtest runs as. A bind-mounted results directory must be
# writable by this uid (or run with --user); see deploy/DOCKER.md.
ARG LATENCY_UID=1000
ARG LATENCY_GID=1000
RUN groupadd --gid "$LATENCY_GID" latency \
 && useradd --uid "$LATENCY_UID" --gid latency --create-home --shell /usr/sbin/nologin latency \
 && install -d -o latency -g latency -m 0755 /results
COPY --from=go /out/latency.test /out/latency-run /out/test2json /out/gotestsum /usr/local/bin/
COPY --from=go /out/go-version /usr/local/share/kerbside-latency/go-version
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/latency-entrypoint
ENV LATENCY_RESULTS_DIR=/results \
    LATENCY_RYLL=/usr/local/bin/ryll
USER latency
WORKDIR /home/latency
# SIGINT is what latency-run, the loadtest and ryll all treat as "stop
# cleanly". Give `docker stop` time to let the run clean up: -t 120.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/latency-entrypoint"]

# The smoke test: the whole chain (entry point, gotestsum, test2json, the
# loadtest, its in-process fake cloud) with fakeryll standing in for ryll.
# Short settings so `docker run --rm latency:smoke` finishes in seconds;
# every one can be overridden with -e.
FROM runtime-base AS smoke
COPY --from=go /out/fakeryll /usr/local/bin/ryll
ENV LATENCY_PROVIDER=fake \
    LATENCY_SAMPLES=8 \
    LATENCY_CADENCE=250ms \
    LATENCY_CADENCE_JITTER=40ms \
    LATENCY_KEY_HOLD=30ms \
    LATENCY_MAX_DURATION=60s

# The real image, and the default target because it is the last stage.
FROM runtime-base AS runtime
ARG RYLL_REF
LABEL org.opencontainers.image.title="kerbside-latency" \
      org.opencontainers.image.description="Keypress-to-screen latency loadtest for Kerbside SPICE consoles" \
      org.opencontainers.image.source="https://github.com/shakenfist/kerbside-latency" \
      com.shakenfist.ryll.ref="${RYLL_REF}"
COPY --from=ryll /out/ryll /usr/local/bin/ryll
COPY --from=ryll /out/ryll-commit /usr/local/share/kerbside-latency/ryll-commit
# Fails the build, rather than the first run, if ryll needs a shared
# library (or a glibc symbol version) this image lacks.
RUN if ldd /usr/local/bin/ryll | grep 'not found'; then \
        echo "ryll needs a shared library the runtime image lacks" >&2; exit 1; \
    fi
ENV LATENCY_PROVIDER=openstack

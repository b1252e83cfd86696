// Package deploy holds the container image's support files and the tests
// that keep them honest.
//
// The image itself is built from the repository's Dockerfile (see
// docs/container.md for how to build and run it);
// deploy/entrypoint.sh is its entry point. No machine this project is
// developed on has a Docker engine, so the image cannot be built in CI
// here. Instead, the tests in this package read the Dockerfile with
// BuildKit's own parser, instruction decoder and linter, and .dockerignore
// with the pattern matcher BuildKit uses, and check the properties a broken
// image would otherwise only reveal at build or run time: the stage order,
// the toolchain images against ryll's rust-version and go.mod, that every
// file the build and the images need is in the build context and made by
// the stage it is copied from, that the smoke target needs no Rust, that
// the images run the entry point under tini -g as a non-root user and stop
// on SIGINT, and that the entry point script runs the loadtest under
// latency-run and passes the test result on.
// The Kubernetes manifests in deploy/k8s are checked the same way.
//
// The package has no Go API; it exists for its tests.
package deploy

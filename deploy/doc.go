// Package deploy holds the container image's support files and the tests
// that keep them honest.
//
// The image itself is built from the repository's Dockerfile (see
// docs/container.md for how to build and run it);
// deploy/entrypoint.sh is its entry point. No machine this project is
// developed on has a Docker engine, so the image cannot be built in CI
// here. Instead, the tests in this package parse the Dockerfile with
// BuildKit's own parser and check the properties a broken image would
// otherwise only reveal at build or run time: the stage order, the
// toolchain image versions against ryll's rust-version and go.mod, COPY
// sources against the repository and .dockerignore, that the runtime
// stages carry no compiler and run as a non-root user, and that the entry
// point script is valid and propagates the test result.
//
// The package has no Go API; it exists for its tests.
package deploy

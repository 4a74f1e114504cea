#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root):
#   installs what the tests need (Podman 5 from trixie, runc, lintian, rpm, ...),
#   boots the real systemd + user manager test environment (tests/env/testenv),
#   then lint, unit tests, integration and end-to-end tests, packaging tests,
#   a short fuzz run; tears the environment down at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

phase_start=$SECONDS
phase() {
    local now=$SECONDS
    echo "::: $1 (previous phase took $((now - phase_start)) s)"
    phase_start=$now
}

phase "install test dependencies"
bash tests/env/testenv install

phase "format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets --features failpoints -- -D warnings

phase "build"
cargo build --features failpoints --tests --bins

phase "boot the real systemd + Podman test environment"
bash tests/env/testenv up
trap 'bash tests/env/testenv down || true' EXIT

phase "tests"
# One job at a time for the end-to-end tests: they share one user manager.
cargo test --no-fail-fast --features failpoints -- --test-threads=2

phase "packaging"
# The install test boots its own environment (another user); one namespace at a time.
bash tests/env/testenv down
if [ -x tests/packaging/build.sh ]; then
    bash tests/packaging/build.sh
fi
if [ -x tests/packaging/install-test.sh ]; then
    bash tests/packaging/install-test.sh
fi

phase "done"

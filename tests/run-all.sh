#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root):
#   installs what the tests need (Podman 5 from trixie, runc, lintian, rpm, ...),
#   boots the real systemd + user manager test environment (tests/env/testenv),
#   then lint, unit tests, integration and end-to-end tests, the environment's
#   smoke test and the units' hardening check, packaging tests (release .deb
#   and .rpm, lintian, rpmlint, glibc check, install/upgrade/remove test);
#   tears the environment down at the end. A failing test does not stop the
#   run: every phase runs, and the exit status says whether all passed.
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

# Features: failpoints (the crash tests) and gen-docs (the man pages and the
# tests that compare them with the parser's keys). A test behind a feature
# left off here would never run.
phase "format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets --features failpoints,gen-docs -- -D warnings

phase "build"
cargo build --features failpoints,gen-docs --tests --bins

phase "boot the real systemd + Podman test environment"
bash tests/env/testenv up
trap 'bash tests/env/testenv down || true' EXIT

phase "tests"
# One job at a time for the end-to-end tests: they share one user manager.
# The output is kept to check below that no test binary ran zero tests.
mkdir -p target
set +e
cargo test --no-fail-fast --features failpoints,gen-docs -- --test-threads=2 2>&1 | tee target/test-output.txt
test_status=${PIPESTATUS[0]}
set -e
# The library and every tests/*.rs binary must run at least one test: a
# binary whose tests all sit behind a feature CI did not enable would
# otherwise pass by running nothing.
empty=$(awk '/^ *(Running|Doc-tests) / { bin = "" }
    /^ *Running (unittests src\/lib.rs|tests\/)/ { bin = $2 " " $3 }
    /^running 0 tests$/ && bin != "" { print bin }' target/test-output.txt)
if [ -n "$empty" ]; then
    echo "run-all: test binaries that ran no test: $empty" >&2
    test_status=1
fi

phase "environment checks (smoke test, unit hardening)"
bash tests/env/smoke.sh || test_status=1
bash tests/packaging/hardening-check.sh || test_status=1

phase "packaging"
# The install test boots its own environment (another user); one namespace at a time.
bash tests/env/testenv down
# --nocheck: the unit tests the package builds would run again (in release
# mode) have just run in the tests phase, on the same sources.
bash tests/packaging/build.sh --nocheck
bash tests/packaging/install-test.sh

phase "done"
exit "$test_status"

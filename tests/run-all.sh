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
current_phase=""
phase() {
    local now=$SECONDS
    echo "::: $1 (previous phase took $((now - phase_start)) s)"
    phase_start=$now
    current_phase=$1
}

# One line per checked phase, printed again at the very end: a CI log that
# keeps only its tail still says which phase failed.
summary=()
record() { # record NAME STATUS [DETAIL]
    if [ "$2" = 0 ]; then summary+=("ok   $1${3:+ ($3)}"); else summary+=("FAIL $1${3:+ ($3)}"); fi
}
print_summary() { # print_summary EXIT_STATUS
    [ "$current_phase" = done ] || record "stopped in phase \"$current_phase\"" 1 "exit $1"
    printf 'run-all: %s\n' "${summary[@]}"
}
trap 'print_summary $?' EXIT

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
trap 'rc=$?; bash tests/env/testenv down || true; print_summary $rc' EXIT

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
totals=$(awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d ignored", p, f, i }' target/test-output.txt)
# The last "failures:" block before each "test result:" lists the names.
failed=$(awk '/^failures:$/ { on = 1; cur = ""; next } on && /^    [^ ]/ { cur = cur $1 " " }
    /^test result:/ { out = out cur; on = 0; cur = "" } END { printf "%s", out }' target/test-output.txt)
record "cargo test" "$test_status" "$totals${failed:+; failed: $failed}${empty:+; ran no test: $empty}"

phase "environment checks (smoke test, unit hardening)"
st=0; bash tests/env/smoke.sh || st=$?
record "smoke test" "$st"; [ "$st" = 0 ] || test_status=1
st=0; bash tests/packaging/hardening-check.sh || st=$?
record "unit hardening check" "$st"; [ "$st" = 0 ] || test_status=1

phase "packaging"
# The install test boots its own environment (another user); one namespace at a time.
bash tests/env/testenv down
# --nocheck: the unit tests the package builds would run again (in release
# mode) have just run in the tests phase, on the same sources.
bash tests/packaging/build.sh --nocheck
record "packages built and checked" 0
bash tests/packaging/install-test.sh
record "package install test" 0

phase "done"
exit "$test_status"

#!/usr/bin/env bash
# Mutation check: shows that the tests behind the injection and file-access
# claims fail when the guard they cover is taken out. Not run by CI (it
# rebuilds the crate once per mutation: some 15-60 s each).
#
# For each mutation: a copy of the working tree (without target directories
# and .git) in a temporary directory, one small sed edit to one guard, then
# only the test that covers it:
#   fuzz        cargo test --test fuzz_spec_render
#   unreadable  cargo test --lib spec::tests::files::unreadable_file -- --exact
# "caught" when the test fails, "MISSED" when it passes. A mutation whose
# sed pattern no longer matches the source ("NOT APPLIED") or that does not
# compile ("BROKEN") is an error too. Exit status 1 if any mutation is not
# caught, 0 if all are.
#
#   bash tests/mutation-check.sh               # all mutations
#   bash tests/mutation-check.sh escape        # those whose name contains "escape"
#   MUTATION_DRY_RUN=1 bash tests/mutation-check.sh
#       # only show each mutation as a diff
#   MUTATION_TESTS_FROM=HEAD~3 bash tests/mutation-check.sh
#       # the same mutations against the test files of another revision
#       # (tests/fuzz_spec_render.rs, its regressions, src/spec/tests.rs)
#
# CARGO_TARGET_DIR is shared by all mutants, so each one only rebuilds this
# crate (default: $TMPDIR/deploy-agent-mutation-target). FUZZ_CASES is passed
# on (default 512, the count CI runs).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
filter=${1:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/deploy-agent-mutation-target}
export CARGO_TERM_COLOR=never
# A failing property only has to fail: no shrinking.
export PROPTEST_MAX_SHRINK_ITERS=0
test_timeout=${MUTATION_TEST_TIMEOUT:-1800}

work=$(mktemp -d "${TMPDIR:-/tmp}/deploy-agent-mutants.XXXXXX")
trap 'rm -rf "$work"' EXIT
pristine=$work/pristine
copy=$work/repo
mkdir "$pristine"
for entry in "$repo"/* "$repo"/.[!.]*; do
    [ -e "$entry" ] || continue
    case ${entry##*/} in
    target* | .git) continue ;;
    esac
    cp -a "$entry" "$pristine/"
done
test_files="tests/fuzz_spec_render.rs tests/fuzz_spec_render.proptest-regressions src/spec/tests.rs"
if [ -n "${MUTATION_TESTS_FROM:-}" ]; then
    for f in $test_files; do
        git -C "$repo" show "$MUTATION_TESTS_FROM:$f" >"$pristine/$f"
    done
    echo "test files from $MUTATION_TESTS_FROM"
fi
# Cargo finds a path package's artifacts by its path relative to the
# workspace and judges them by file times, so the copies would share
# artifacts with the repository's own builds in the same target directory,
# and a copy with older file times would run the previous mutant's binary.
# A feature only the copies have keeps their artifacts apart; a fresh copy
# (new file times) for every run forces the rebuild.
feature=mutation-check
if grep -q '^\[features\]$' "$pristine/Cargo.toml"; then
    sed -i "/^\[features\]\$/a $feature = []" "$pristine/Cargo.toml"
else
    printf '\n[features]\n%s = []\n' "$feature" >>"$pristine/Cargo.toml"
fi

# fresh_copy: $copy as $pristine, every file with a new time.
fresh_copy() {
    rm -rf "$copy"
    cp -R "$pristine" "$copy"
}

log=$work/log
# run_test KIND: runs the test of that kind in the copy; sets $status
# (pass, fail, broken) and $failed (the failing tests).
run_test() {
    local kind=$1 build test
    case $kind in
    fuzz)
        build=(cargo test --features "$feature" --test fuzz_spec_render --no-run)
        test=(cargo test --features "$feature" --test fuzz_spec_render)
        ;;
    unreadable)
        build=(cargo test --features "$feature" --lib --no-run)
        test=(cargo test --features "$feature" --lib spec::tests::files::unreadable_file -- --exact)
        ;;
    *)
        echo "unknown test kind $kind" >&2
        exit 2
        ;;
    esac
    failed=
    if ! (cd "$copy" && nice "${build[@]}") >"$log" 2>&1; then
        status=broken
        return
    fi
    if (cd "$copy" && timeout "$test_timeout" "${test[@]}") >"$log" 2>&1; then
        status=pass
        # A filter that matches no test passes too.
        if ! grep -Eq '^test result: ok\. [1-9][0-9]* passed' "$log"; then
            status=broken
        fi
    else
        status=fail
        failed=$(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log" | awk '!seen[$0]++' | paste -sd, - | sed 's/,/, /g')
        if grep -q '^error\[\|could not compile' "$log"; then
            status=broken
        fi
    fi
}

dry=${MUTATION_DRY_RUN:-}
[ -n "$dry" ] || echo "baseline (no mutation):"
for kind in fuzz unreadable; do
    [ -z "$dry" ] || break
    fresh_copy
    run_test "$kind"
    if [ "$status" != pass ]; then
        echo "  $kind: the unmutated tests do not pass ($status); fix that first:" >&2
        tail -40 "$log" >&2
        exit 2
    fi
    echo "  $kind: pass"
done
echo

missed=0
total=0
# mutate NAME KIND FILE SED-SCRIPT [FILE SED-SCRIPT]...
mutate() {
    local name=$1 kind=$2
    shift 2
    case $name in *"$filter"*) ;; *) return ;; esac
    total=$((total + 1))
    # Back to pristine (the previous mutant, and any regressions it saved).
    fresh_copy
    while [ $# -gt 0 ]; do
        local file=$1 script=$2
        shift 2
        sed -i -e "$script" "$copy/$file"
        if cmp -s "$copy/$file" "$pristine/$file"; then
            printf '%-9s %s (%s: the pattern no longer matches)\n' "NOT APPLIED" "$name" "$file"
            missed=$((missed + 1))
            return
        fi
    done
    if [ -n "$dry" ]; then
        echo "=== $name"
        (cd "$work" && diff -ru pristine repo | grep '^[-+][^-+]') || true
        return
    fi
    run_test "$kind"
    case $status in
    fail) printf '%-9s %s\n          (failed: %s)\n' caught "$name" "$failed" ;;
    pass)
        printf '%-9s %s\n' MISSED "$name"
        missed=$((missed + 1))
        ;;
    broken)
        printf '%-9s %s (does not build or runs no test:)\n' BROKEN "$name"
        grep -m5 '^error' "$log" | sed 's/^/          /'
        missed=$((missed + 1))
        ;;
    esac
}

values=src/spec/values.rs
parse=src/spec/parse.rs
esc=src/render/escape.rs
spec=src/spec/mod.rs

# ---- validation: the control/invisible character check on spec values
mutate "validation: check_unit_safe accepts everything" fuzz \
    $values '/^pub fn check_unit_safe(value: &str) -> Result<(), String> {$/a\    return Ok(());'
mutate "validation: check_unit_safe lets control characters (newline, CR, NUL, ...) through" fuzz \
    $values 's/^\( *let bad = \)c\.is_control()$/\1false/'
mutate "validation: check_unit_safe lets invisible formatting (bidi, zero-width) through" fuzz \
    $values "/^pub fn check_unit_safe/,/^}/s/^\( *\)|| matches!(c, '.*);\$/\1;/"
mutate "validation: single string values (Walker::string) unchecked" fuzz \
    $parse 's/if let Err(e) = values::check_unit_safe(s) {/if let Err(e) = Ok::<(), String>(()) {/'
mutate "validation: array elements (Walker::strings) unchecked" fuzz \
    $parse 's/Some(s) => match values::check_unit_safe(s) {/Some(s) => match Ok::<(), String>(()) {/'
mutate "validation: table values (Walker::string_map: env, labels) unchecked" fuzz \
    $parse 's/Some(text) => match values::check_unit_safe(&text) {/Some(text) => match Ok::<(), String>(()) {/'
mutate "validation + escape: both control-character guards (check_unit_safe, check_chars) off" fuzz \
    $values '/^pub fn check_unit_safe(value: &str) -> Result<(), String> {$/a\    return Ok(());' \
    $esc '/^pub fn check_chars(v: &str) -> Result<(), ValueError> {$/a\    return Ok(());'

# ---- rendering: src/render/escape.rs
mutate "escape: check_chars accepts everything" fuzz \
    $esc '/^pub fn check_chars(v: &str) -> Result<(), ValueError> {$/a\    return Ok(());'
mutate "escape: check_chars lets control characters through" fuzz \
    $esc 's/^        c\.is_control()$/        false/'
mutate "escape: check_raw allows an empty value" fuzz \
    $esc '/^fn check_raw/,/^}/s/if v\.is_empty() {/if false {/'
mutate "escape: check_raw allows leading/trailing whitespace" fuzz \
    $esc '/^fn check_raw/,/^}/s/if v\.starts_with(char::is_whitespace) || v\.ends_with(char::is_whitespace) {/if false {/'
mutate "escape: check_raw allows a trailing backslash" fuzz \
    $esc "/^fn check_raw/,/^}/s/if v\.ends_with('\\\\\\\\') {/if false {/"
mutate "escape: double() leaves % single" fuzz \
    $esc "/^fn double/,/^}/s/'%' => out\.push_str(\"%%\"),/'%' => out.push('%'),/"
mutate "escape: double() leaves \$ single" fuzz \
    $esc "/^fn double/,/^}/s/'\\\$' if dollar => out\.push_str(\"\\\$\\\$\"),/'\$' if dollar => out.push('\$'),/"
mutate "escape: value() allows a quote at either end" fuzz \
    $esc "/^pub fn value/,/^}/s/if v\.starts_with('\"') || v\.ends_with('\"') {/if false {/"
mutate "escape: value() allows a lone ;" fuzz \
    $esc '/^pub fn value/,/^}/s/if v == ";" {/if false {/'
mutate "escape: setting() leaves % single" fuzz \
    $esc '/^pub fn setting/,/^}/s/double(v, false, &mut out);/out.push_str(v);/'
mutate "escape: setting() without check_raw" fuzz \
    $esc '/^pub fn setting/,/^}/s/check_raw(v)?;/check_chars(v)?;/'
mutate "escape: plain() without check_raw" fuzz \
    $esc '/^pub fn plain/,/^}/s/check_raw(v)?;/check_chars(v)?;/'
mutate "escape: word() without check_chars" fuzz \
    $esc '/^pub fn word/,/^}/s/check_chars(v)?;//'
mutate "escape: word() allows an empty word" fuzz \
    $esc '/^pub fn word/,/^}/s/if v\.is_empty() {/if false {/'
mutate "escape: word() allows a lone ;" fuzz \
    $esc '/^pub fn word/,/^}/s/if v == ";" {/if false {/'
mutate "escape: word() leaves \\ unescaped" fuzz \
    $esc "/^pub fn word/,/^}/{/^ *'\\\\\\\\' => /d}"
mutate "escape: word() leaves \" unescaped" fuzz \
    $esc "/^pub fn word/,/^}/{/^ *'\"' => /d}"
mutate "escape: word() leaves % single" fuzz \
    $esc "/^pub fn word/,/^}/{/^ *'%' => /d}"
mutate "escape: word() leaves \$ single" fuzz \
    $esc "/^pub fn word/,/^}/{/^ *'\\\$' => /d}"
mutate "escape: word() without the surrounding quotes" fuzz \
    $esc "/^pub fn word/,/^}/{/^    out\.push('\"');\$/d}"
mutate "escape: words() without the separating space" fuzz \
    $esc "/^pub fn words/,/^}/s/out\.push(' ');//"
mutate "escape: json_argv() without check_chars on each word" fuzz \
    $esc '/^pub fn json_argv/,/^}/s/check_chars(w\.as_ref())?;/let _ = w;/'
mutate "escape: json_argv() written without value() (no doubling, no checks)" fuzz \
    $esc '/^pub fn json_argv/,/^}/s/^    value(&json)$/    Ok(json)/'
mutate "escape: comment() without check_chars" fuzz \
    $esc '/^pub fn comment/,/^}/s/check_chars(v)?;//'

# ---- reading spec files: an unreadable file is an error, not skipped
mutate "spec files: an unreadable file is skipped" unreadable \
    $spec 's/^            Err(e) => errors\.push(e),$/            Err(_) => {}/'
mutate "spec files: an unreadable file reads as empty" unreadable \
    $spec 's/let bytes = fs::read(path)\.map_err(/let bytes = fs::read(path).or_else(|_| Ok::<_, std::io::Error>(Vec::new())).map_err(/'

echo
if [ "$total" -eq 0 ]; then
    echo "no mutation matches ${filter@Q}" >&2
    exit 2
fi
if [ -n "$dry" ]; then
    echo "$total mutations (dry run: nothing built or tested)"
    exit 0
fi
echo "$((total - missed)) of $total mutations caught"
[ "$missed" -eq 0 ]

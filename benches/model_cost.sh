#!/usr/bin/env bash
# Issue 12's bar: load+validate+render per service grows by no more than 20%
# over the model before the key registry. Builds benches/pipeline.rs at the
# old commit (default ecdf86e, the last before the registry) in a temporary
# worktree, and at the working tree, both in release mode; generates the
# specs with the OLD binary (so both parse them); then, on the host (no
# systemd), measures both ways:
#
# * instructions (callgrind, if valgrind is installed): each call of
#   `spec::load_dir*` and `render::render` dumped on its own, the median of
#   the calls after the first (the first also parses the templates);
#   deterministic, so a shared machine does not move it;
# * wall time: BENCH_ROUNDS alternating rounds (old, new, old, new...) of
#   `pipeline lib` with BENCH_ONLY=lib.load_dir. and lib.render.; the ratio
#   of the medians of each round's median.
#
#   bash benches/model_cost.sh [OLD_COMMIT]
#   BENCH_ROUNDS=7 BENCH_SIZES="100 1000" bash benches/model_cost.sh
#
# Prints a Markdown table (benches/RESULTS.md, "Issue 12").
set -euo pipefail
cd "$(dirname "$0")/.."
OLD_COMMIT=${1:-ecdf86e}
ROUNDS=${BENCH_ROUNDS:-5}
SIZES=${BENCH_SIZES:-100 1000}
T=${CARGO_TARGET_DIR:-target}
say() { printf '[model_cost %s] %s\n' "$(date +%T)" "$*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-agent-model-cost.XXXXXX")
cleanup() {
    git worktree remove --force "$WORK/old" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

pipeline_bin() { # DIR TARGET: builds pipeline there, prints its path
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo build --release --locked --bench pipeline \
        --message-format=json-render-diagnostics) |
        grep -o '"executable":"[^"]*pipeline-[^"]*"' | sed 's/.*:"//; s/"$//' | tail -1
}
say "building the old ($OLD_COMMIT) and the new pipeline bench (release)"
git worktree add -q --detach "$WORK/old" "$OLD_COMMIT"
OLD=$(pipeline_bin "$WORK/old" "$(realpath "$T")/model-cost-old")
NEW=$(pipeline_bin . "$(realpath "$T")")
[ -x "$OLD" ] && [ -x "$NEW" ] || { echo "build failed" >&2; exit 1; }

mkdir -p "$WORK/empty"
printf '[host]\nmemory = "1T"\ncpus = 1000\n[agent]\npodman_version = "5.4.2"\n' >"$WORK/agent.toml"
for n in $SIZES; do "$OLD" gen "$n" "$WORK/specs$n" >/dev/null; done
lib() { # BIN N WHAT
    BENCH_ONLY="lib.$3." "$1" lib "$WORK/specs$2" "$WORK/empty" "$WORK/same" "$WORK/agent.toml" 2>&1
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# Instructions per call, the median of the calls after the first.
instr() { # BIN N WHAT SYMBOL
    command -v valgrind >/dev/null || { echo "-"; return; }
    local d=$WORK/cg.$RANDOM
    mkdir -p "$d"
    BENCH_ONLY="lib.$3." valgrind --tool=callgrind --callgrind-out-file="$d/cg" \
        --toggle-collect="$4" --dump-after="$4" \
        "$1" lib "$WORK/specs$2" "$WORK/empty" "$WORK/same" "$WORK/agent.toml" >/dev/null 2>&1
    for f in "$d"/cg.*; do awk '/^summary:/ { print $2 }' "$f"; done |
        awk '$1 > 0' | tail -n +2 | median
    rm -rf "$d"
}

say "instructions (callgrind) at 100 services"
declare -A I
for v in old new; do
    b=$OLD; [ $v = new ] && b=$NEW
    I[$v.load]=$(instr "$b" 100 load_dir 'deploy_agent::spec::load_dir_trusting')
    I[$v.render]=$(instr "$b" 100 render 'deploy_agent::render::render')
done

say "wall time: $ROUNDS alternating rounds"
declare -A W
for r in $(seq "$ROUNDS"); do
    for n in $SIZES; do
        for what in load_dir render; do
            for v in old new; do
                b=$OLD; [ $v = new ] && b=$NEW
                x=$(lib "$b" "$n" "$what" | awk -F'\t' -v k="lib.$what.$n" '$1 == "RESULT" && $2 == k { print $3 }')
                W[$v.$n.$what]+="$x "
                say "round $r: $v $what $n services: $x ms (load $(cut -d' ' -f1 /proc/loadavg))"
            done
        done
    done
done
med() { tr ' ' '\n' <<<"${W[$1]}" | awk 'NF' | median; }
low() { tr ' ' '\n' <<<"${W[$1]}" | awk 'NF' | sort -g | head -1; }

echo "Old = \`$OLD_COMMIT\`, new = \`$(git rev-parse --short HEAD)\`$(git diff --quiet || echo ' (with uncommitted changes)'); $(nproc) CPUs; $(date -u +%Y-%m-%d)."
echo
echo "| | old | new | new / old |"
echo "|---|---|---|---|"
if [ "${I[old.load]}" != - ]; then
    lo=${I[old.load]} ln=${I[new.load]} ro=${I[old.render]} rn=${I[new.render]}
    awk -v lo="$lo" -v ln="$ln" -v ro="$ro" -v rn="$rn" 'BEGIN {
        printf "| instructions per load + validate, 100 services | %.1f M | %.1f M | %.2f |\n", lo / 1e6, ln / 1e6, ln / lo
        printf "| instructions per render, 100 services | %.1f M | %.1f M | %.2f |\n", ro / 1e6, rn / 1e6, rn / ro
        printf "| **instructions, load + validate + render, 100 services** | %.1f M | %.1f M | **%.2f** |\n", (lo + ro) / 1e6, (ln + rn) / 1e6, (ln + rn) / (lo + ro) }'
fi
for n in $SIZES; do
    lo=$(med old.$n.load_dir) ln=$(med new.$n.load_dir) ro=$(med old.$n.render) rn=$(med new.$n.render)
    awk -v n="$n" -v lo="$lo" -v ln="$ln" -v ro="$ro" -v rn="$rn" 'BEGIN {
        printf "| wall ms, load + validate, %d services | %.2f | %.2f | %.2f |\n", n, lo, ln, ln / lo
        printf "| wall ms, render, %d services | %.2f | %.2f | %.2f |\n", n, ro, rn, rn / ro
        printf "| **wall, load + validate + render per service, %d services** | %.1f us | %.1f us | **%.2f** |\n", n, (lo + ro) * 1000 / n, (ln + rn) * 1000 / n, (ln + rn) / (lo + ro) }'
    lo=$(low old.$n.load_dir) ln=$(low new.$n.load_dir) ro=$(low old.$n.render) rn=$(low new.$n.render)
    awk -v n="$n" -v lo="$lo" -v ln="$ln" -v ro="$ro" -v rn="$rn" 'BEGIN {
        printf "| wall, fastest round of each, per service, %d services | %.1f us | %.1f us | %.2f |\n", n, (lo + ro) * 1000 / n, (ln + rn) * 1000 / n, (ln + rn) / (lo + ro) }'
done
echo
echo "Wall times: the median over $ROUNDS alternating rounds of each run's median; \"fastest round\": the lowest of those medians, the least disturbed by other load (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))."

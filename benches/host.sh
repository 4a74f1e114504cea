#!/usr/bin/env bash
# Benchmarks of issue 15 (cost proportional to the change) that need no
# systemd: run on any host with Podman's Quadlet generator, as any user,
# without the test environment. Each figure comes with its baseline measured
# in the same run. Writes target/bench/host.env (raw) and target/bench/HOST.md
# (the tables for benches/RESULTS.md, section 5).
#
#   bash benches/host.sh                      # 10, 100 and 1,000 services
#   BENCH_SIZES="10 100" bash benches/host.sh
#
# Measured (benches/pipeline.rs `lib`, in process, and `exec`, whole commands):
# * per-probe bookkeeping of the daemon (Supervisor::on_result + the history
#   only when the verdict changes) and the debounced health.json rewrite;
# * history: files and bytes one generation adds when one service changed,
#   against the full copy the layout before wrote (written the same way);
# * one changed service among N: the agent's own work in an apply (all but
#   systemd's), against the same steps done the way before;
# * `deploy-agent plan` with nothing to change (answered from the plan
#   stamp, and in full) and with every file new, against `quadlet -dryrun`
#   on the same files.
# * the idle daemon's health supervision, whole (the daemon's own loop
#   arms, real HTTP probes to one local server on the generated ports, the
#   bookkeeping), its CPU over BENCH_IDLE_SECS (default 30) at 100 and
#   1,000 services, against the bookkeeping as before (`pipeline idle`).
# The daemon's idle CPU with real containers and the first apply against
# `systemctl start` need a real user manager: benches/scenarios.sh idle|many
# (see benches/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${CARGO_TARGET_DIR:-target}/bench
mkdir -p "$OUT"
RES=$OUT/host.env
: >"$RES"
say() { printf '[host.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
results() {
    local line
    while IFS= read -r line; do
        printf '%s\n' "$line" >&2
        case $line in
        RESULT*) printf '%s\n' "$line" | awk -F'\t' '{
            printf "%s.median=%s\n%s.min=%s\n%s.max=%s\n%s.runs=%s\n", $2, $3, $2, $4, $2, $5, $2, $6 }' >>"$RES" ;;
        VALUE*) printf '%s\n' "$line" | awk -F'\t' '{ printf "%s=%s\n", $2, $3 }' >>"$RES" ;;
        esac
    done
}

say "building (release): deploy-agent and the bench binary"
pipe=$(cargo build --release --locked --bin deploy-agent --bench pipeline \
    --message-format=json-render-diagnostics |
    grep -o '"executable":"[^"]*pipeline-[^"]*"' | sed 's/.*:"//; s/"$//' | tail -1)
BIN=${CARGO_TARGET_DIR:-target}/release/deploy-agent
[ -x "$pipe" ] && [ -x "$BIN" ] || { echo "build failed" >&2; exit 1; }
Q=
for p in "${QUADLET:-}" /usr/libexec/podman/quadlet /usr/lib/podman/quadlet; do
    [ -n "$p" ] && [ -x "$p" ] && { Q=$p; break; }
done
[ -n "$Q" ] || { echo "Podman's Quadlet generator is not installed" >&2; exit 1; }
# The agent renders for the system manager as root, for the user's otherwise;
# the generator is run the same way. No bus: plan says so and goes on.
USER_FLAG=(-user)
[ "$(id -u)" = 0 ] && USER_FLAG=()
export DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent

put machine "$(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
put load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
put commit "$(git rev-parse --short HEAD)"
put podman "$(podman --version 2>/dev/null || echo none)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-agent-bench.XXXXXX")
SERVE=
trap 'rm -rf "$WORK"; [ -z "$SERVE" ] || kill "$SERVE" 2>/dev/null' EXIT
started=$(date +%s)
for n in ${BENCH_SIZES:-10 100 1000}; do
    say "$n services"
    d=$WORK/pipe$n
    mkdir -p "$d/state" "$d/empty"
    printf '[host]\nmemory = "1T"\ncpus = 1000\n' >"$d/agent.toml"
    "$pipe" gen "$n" "$d/specs"
    "$pipe" lib "$d/specs" "$d/empty" "$d/same" "$d/agent.toml" | results
    C=(--config "$d/agent.toml" --specs "$d/specs" --state-dir "$d/state")
    # The up-to-date output of the CLI is what the CLI renders: a
    # health-gated unit names the rendering binary in ExecStartPost=, so
    # the bench binary's rendering ($d/same) differs from deploy-agent's.
    "$BIN" render "${C[@]}" --out "$d/cli-same" >/dev/null
    # Settled, as on a host between changes: a plan remembers its answer
    # only for files untouched for 2 s (src/reconcile/stamp.rs).
    sleep 2.1
    "$BIN" plan "${C[@]}" --output-dir "$d/cli-same" 2>/dev/null | grep -q '^No changes' ||
        { echo "plan finds changes in the up-to-date output: the row would be wrong" >&2; exit 1; }
    [ -f "$d/state/plan-stamp.json" ] || { echo "plan did not remember its answer" >&2; exit 1; }
    # The full plan of the same files: a state directory whose stamp can be
    # neither read nor written (a directory in its place).
    F=(--config "$d/agent.toml" --specs "$d/specs" --state-dir "$d/state-full")
    mkdir -p "$d/state-full/plan-stamp.json"
    # Alternating, so all see the same load.
    for round in 1 2; do
        QUADLET_UNIT_DIRS="$d/cli-same" "$pipe" exec "quadlet.$n.r$round" -- "$Q" -dryrun "${USER_FLAG[@]}" | results
        "$pipe" exec "cli.plan_same.$n.r$round" -- "$BIN" plan "${C[@]}" --output-dir "$d/cli-same" | results
        "$pipe" exec "cli.plan_full.$n.r$round" -- "$BIN" plan "${F[@]}" --output-dir "$d/cli-same" | results
        "$pipe" exec "cli.plan_new.$n.r$round" -- "$BIN" plan "${C[@]}" --output-dir "$d/empty" | results
    done
    # The idle daemon's supervision, whole (probes included), against one
    # process answering HTTP on the generated containers' ports.
    if [ "$n" -ge 100 ]; then
        "$pipe" serve 20000 "$n" >"$d/serve.log" 2>&1 &
        SERVE=$!
        for _ in $(seq 100); do grep -q ready "$d/serve.log" && break; sleep 0.1; done
        grep -q ready "$d/serve.log" || { cat "$d/serve.log" >&2; exit 1; }
        "$pipe" idle "$d/specs" "${BENCH_IDLE_SECS:-30}" | results
        kill "$SERVE"; wait "$SERVE" 2>/dev/null || true
        SERVE=
    fi
    rm -rf "$d"
done
put load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
put sizes "${BENCH_SIZES:-10 100 1000}"
put idle_secs "${BENCH_IDLE_SECS:-30}"
put seconds "$(($(date +%s) - started))"
say "raw values: $RES"
bash benches/host_report.sh "$RES" >"$OUT/HOST.md"
say "tables: $OUT/HOST.md"

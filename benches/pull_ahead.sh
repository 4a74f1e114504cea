#!/usr/bin/env bash
# Downtime of an image update with and without pulling ahead (issue: safe
# updates), against a real local registry (Debian's docker-registry, the
# Distribution registry). Run AS THE TEST USER in the test environment:
#
#   bash tests/env/testenv user bash benches/pull_ahead.sh [MB]
#
# Three kinds of restart of one busybox httpd container, REPS times each,
# alternating between two images that differ by a layer of MB (default 200)
# MiB of random data, the target image removed locally before each update:
#   restart    the image is already here (an env change): the floor;
#   no-ahead   agent.toml pull_ahead = false: the unit's start pulls;
#   ahead      the default: the agent pulls, then restarts.
# Downtime = first response from the new version - last from the old one,
# from a poller asking every 5 ms. Run as root (`bash benches/pull_ahead.sh`),
# it runs itself as the test user, then replaces the "pull-ahead" section of
# benches/RESULTS.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BENCH_AGENT:-$REPO/target/release/deploy-agent}
MB=${1:-200}
REPS=${BENCH_REPS:-5}
WORK=${BENCH_WORK:-$HOME/bench}/pull
QD=$HOME/.config/containers/systemd/bench-pull
REG_PORT=18490
WEB_PORT=18491
REG=127.0.0.1:$REG_PORT
DROPIN=$HOME/.config/containers/registries.conf.d/90-deploy-agent-bench.conf
say() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
SECTION=${BENCH_SECTION:-${BENCH_WORK:-$HOME/bench}/pull-ahead.md}

# As root, outside: run as the test user in the environment, then put the
# section into benches/RESULTS.md (which the test user cannot write).
if [ "$(id -u)" = 0 ] && [ -z "${BENCH_INSIDE:-}" ]; then
    TESTENV_PASS_ENV="BENCH_REPS BENCH_SECTION BENCH_INSIDE BENCH_AGENT" BENCH_INSIDE=1 \
        BENCH_SECTION=/home/${TESTENV_USER:-agent}/bench/pull-ahead.md \
        bash "$REPO/tests/env/testenv" user bash "$REPO/benches/pull_ahead.sh" "$@"
    python3 - "$REPO/benches/RESULTS.md" "/home/${TESTENV_USER:-agent}/bench/pull-ahead.md" <<'PY'
import re, sys
path, section = sys.argv[1], open(sys.argv[2]).read().strip()
text = open(path).read()
pat = re.compile(r"<!-- pull-ahead:begin -->.*?<!-- pull-ahead:end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
    say "wrote the pull-ahead section of benches/RESULTS.md"
    exit 0
fi

agent() {
    "$BIN" "$@" --config "$WORK/agent.toml" --specs "$WORK/specs" \
        --output-dir "$QD" --state-dir "$WORK/state"
}

cleanup() {
    set +e
    if [ -d "$WORK/specs" ]; then
        rm -f "$WORK/specs"/*.toml
        agent apply --allow-empty >/dev/null 2>&1
    fi
    [ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null
    rm -f "$DROPIN"
    podman rmi -f "$REG/bench-pull:v1" "$REG/bench-pull:v2" >/dev/null 2>&1
}
trap cleanup EXIT

start_registry() {
    rm -rf "$WORK" "$QD"
    mkdir -p "$WORK/specs" "$WORK/registry" "$(dirname "$DROPIN")"
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/registry } }
http: { addr: $REG }
EOF
    docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    REG_PID=$!
    printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$DROPIN"
    for _ in $(seq 100); do
        curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$WORK/registry.log" >&2
    exit 1
}

# An image serving "vN" on 8080, with MB MiB of random data, pushed to the registry.
build_push() {
    local v=$1 root=$WORK/root-$1
    mkdir -p "$root/bin" "$root/www"
    cp /bin/busybox "$root/bin/busybox"
    for a in sh httpd; do ln -sf busybox "$root/bin/$a"; done
    echo "v$v" >"$root/www/index.html"
    head -c "$((MB * 1024 * 1024))" /dev/urandom >"$root/payload"
    tar -C "$root" -cf "$WORK/root-$v.tar" .
    podman import --change 'CMD ["/bin/httpd","-f","-p","8080","-h","/www"]' \
        "$WORK/root-$v.tar" "$REG/bench-pull:v$v" >/dev/null
    podman push -q "$REG/bench-pull:v$v"
    rm -rf "$root" "$WORK/root-$v.tar"
}

spec() { # IMAGE_VERSION ENV_VALUE
    cat >"$WORK/specs/web.toml" <<EOF
[container.bench-pull]
image = "$REG/bench-pull:v$1"
pull = "missing"
ports = ["127.0.0.1:$WEB_PORT:8080"]
env = { GEN = "$2" }
EOF
}

# Applies with the poller running; prints the downtime in ms: from the last
# answer before the outage to the first after it, which must be NEW_BODY.
measure() { # NEW_BODY
    local log=$WORK/poll.log
    python3 - "$WEB_PORT" "$log" <<'PY' &
import sys, time, urllib.request
port, log = sys.argv[1], sys.argv[2]
with open(log, "w") as f:
    while True:
        t = time.monotonic()
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read().decode().strip()
        except Exception:
            body = "-"
        f.write(f"{t:.6f} {body}\n"); f.flush()
        time.sleep(0.005)
PY
    local poller=$!
    sleep 0.3
    agent apply >"$WORK/apply.log" 2>&1 || { cat "$WORK/apply.log" >&2; kill $poller; exit 1; }
    for _ in $(seq 300); do
        [ "$(tail -n 1 "$log" | awk '{ print $2 }')" = "$1" ] && break
        sleep 0.1
    done
    sleep 0.2
    kill $poller
    awk -v new="$1" '{ t[NR] = $1; b[NR] = $2 } $2 == "-" { if (!i) i = NR; j = NR }
        END { if (!i || i == 1 || j == NR || b[j + 1] != new) exit 1
              printf "%.0f\n", (t[j + 1] - t[i - 1]) * 1000 }' "$log"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

main() {
    [ -x "$BIN" ] || { say "no $BIN: cargo build --release first"; exit 1; }
    start_registry
    say "building and pushing two images with ${MB} MiB layers"
    build_push 1
    build_push 2
    local v=1 n=0
    spec 1 0
    printf '[agent]\npull_ahead = true\n' >"$WORK/agent.toml"
    agent apply >/dev/null
    declare -A runs=()
    local t0 pull_s
    t0=$(date +%s.%N)
    podman rmi -f "$REG/bench-pull:v2" >/dev/null
    podman pull -q "$REG/bench-pull:v2" >/dev/null
    pull_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    say "one pull of the ${MB} MiB image takes ${pull_s}s"
    for _ in $(seq "$REPS"); do
        for mode in restart no-ahead ahead; do
            n=$((n + 1))
            local ahead=true next=$v
            [ "$mode" = no-ahead ] && ahead=false
            [ "$mode" = restart ] || next=$((3 - v))
            printf '[agent]\npull_ahead = %s\n' "$ahead" >"$WORK/agent.toml"
            [ "$mode" = restart ] || podman rmi -f "$REG/bench-pull:v$next" >/dev/null
            spec "$next" "$n"
            local ms
            ms=$(measure "v$next") || { say "no measurement for $mode"; exit 1; }
            runs[$mode]+="$ms "
            say "$mode v$v -> v$next: ${ms} ms"
            v=$next
        done
    done
    local r na a
    # shellcheck disable=SC2086
    r=$(median ${runs[restart]}); na=$(median ${runs[no-ahead]}); a=$(median ${runs[ahead]})
    write_results "$r" "$na" "$a" "$pull_s" "${runs[restart]}" "${runs[no-ahead]}" "${runs[ahead]}"
}

write_results() {
    local section
    section=$(cat <<EOF
<!-- pull-ahead:begin -->
## Image updates: pulling ahead

\`BENCH_REPS=$REPS bash benches/pull_ahead.sh $MB\` (as root; it runs itself as the test user) ($(date -u +%Y-%m-%d), Podman $(podman --version | awk '{ print $3 }'), $(nproc) cores): one busybox httpd container, updated between two images that differ by a ${MB} MiB layer of random data, pushed to a local registry (Debian's \`docker-registry\`, HTTP API v2 on 127.0.0.1); the new image is removed locally before each update. One \`podman pull\` of it takes ${4} s. Downtime is the time from the last response of the old container to the first of the new one, seen by a poller asking every 5 ms; median of $REPS runs of each kind, in the same run:

| restart | downtime (ms, median) | runs (ms) | ratio to a bare restart |
|---|---|---|---|
| bare restart, image already here (env change) | $1 | $5 | 1.00 |
| image update, \`pull_ahead = false\` (the unit's start pulls) | $2 | $6 | $(awk -v a="$2" -v b="$1" 'BEGIN { printf "%.2f", a / b }') |
| image update, pulled ahead (default) | $3 | $7 | $(awk -v a="$3" -v b="$1" 'BEGIN { printf "%.2f", a / b }') |

Pulling ahead cuts the downtime of an image update by $(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", a / b }')× (no-ahead / ahead).
<!-- pull-ahead:end -->
EOF
)
    mkdir -p "$(dirname "$SECTION")"
    printf '%s\n' "$section" >"$SECTION"
    printf '%s\n' "$section"
}

main

#!/usr/bin/env bash
# Tables of benches/host.sh from its raw values (host.env): markdown on stdout.
#   bash benches/host_report.sh target/bench/host.env
set -euo pipefail
ENV=${1:?usage: host_report.sh HOST_ENV}
get() { awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$ENV"; }
num() { local v; v=$(get "$1"); echo "${v:-nan}"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
t() { # KEY: median (min-max, runs)
    printf '%s (%s-%s, %s runs)' "$(num "$1.median")" "$(num "$1.min")" "$(num "$1.max")" "$(num "$1.runs")"
}
sizes=$(get sizes)
sizes=${sizes:-10 100 1000}

cat <<MD
| | |
|---|---|
| machine | $(get machine) |
| load average before / after | $(get load_before) / $(get load_after) |
| Podman | $(get podman) |
| deploy-agent | commit $(get commit), \`cargo build --release\` |
| whole run | $(get seconds) s |

Times: wall-clock ms, median (min-max, runs).

### 5.1 Per-probe bookkeeping (the daemon, every service healthy)

| services | **per result now** | per result as before (same run) | ratio | health.json rewrite (at most once per 5 s) | **idle bookkeeping CPU, 1 probe per service per 10 s** | as before |
|---|---|---|---|---|---|---|
MD
for n in $sizes; do
    now=$(num "lib.probe_bookkeeping.$n.median")
    old=$(num "lib.probe_bookkeeping_as_before.$n.median")
    fl=$(num "lib.health_flush.$n.median")
    printf '| %s | **%s** | %s | %s | %s | **%s %%** | %s %% |\n' "$n" \
        "$(t "lib.probe_bookkeeping.$n")" "$(t "lib.probe_bookkeeping_as_before.$n")" \
        "$(calc '%.3f' "$now / $old")" "$(t "lib.health_flush.$n")" \
        "$(calc '%.4f' "($now * $n / 10 + $fl / 5) / 10")" "$(calc '%.2f' "$old * $n / 100")"
done

cat <<MD

### 5.2 History: one generation when one service changed

Files and bytes the generation adds to \`STATE/generations\` (\`History::record\`,
20 kept), against the full copy of every file per generation that the layout
before wrote (written the same way, same edits, same run).

| services | first generation: files, bytes | **one change: files, bytes** | full copy, one change: files, bytes | **record, one change (ms)** | full copy record (ms) | on disk, 20 generations: files, bytes | full copy, 20 generations |
|---|---|---|---|---|---|---|---|
MD
for n in $sizes; do
    printf '| %s | %s, %s | **%s, %s** | %s, %s | **%s** | %s | %s, %s | %s, %s |\n' "$n" \
        "$(num "lib.history_first.files.$n")" "$(num "lib.history_first.bytes.$n")" \
        "$(num "lib.history_one_change.files.$n")" "$(num "lib.history_one_change.bytes.$n")" \
        "$(num "lib.full_copy_one_change.files.$n")" "$(num "lib.full_copy_one_change.bytes.$n")" \
        "$(t "lib.history_record_one_change.$n")" "$(t "lib.full_copy_record_one_change.$n")" \
        "$(num "lib.history_on_disk_20.files.$n")" "$(num "lib.history_on_disk_20.bytes.$n")" \
        "$(num "lib.full_copy_on_disk_20.files.$n")" "$(num "lib.full_copy_on_disk_20.bytes.$n")"
done

cat <<MD

### 5.3 One changed service among N: the agent's own time

Everything an apply of one edited spec does besides systemd's part (the
daemon's cached load, render, plan, the generator dry run of what the change
touches, writing the file, the history record pending then finished, the input
hashes), against the same steps the way before (every spec parsed, the dry run
over every file, the full-copy history), in process, same run.

| services | **agent now** | as before | ratio |
|---|---|---|---|
MD
for n in $sizes; do
    now=$(num "lib.one_change_agent.$n.median")
    old=$(num "lib.one_change_as_before.$n.median")
    printf '| %s | **%s** | %s | %s |\n' "$n" "$(t "lib.one_change_agent.$n")" \
        "$(t "lib.one_change_as_before.$n")" "$(calc '%.2f' "$now / $old")"
done

cat <<MD

### 5.4 \`plan\` (CLI, Podman version detected and cached) vs \`quadlet -dryrun\` on the same files

Two alternating rounds each (medians, ms); the ratio is of the summed
medians. "Nothing to change" is answered from the plan stamp a plan that
found nothing to change left in the state directory (\`src/reconcile/stamp.rs\`);
"in full" is the same plan with no stamp to read (parse, render, compare).

| services | **plan, nothing to change** | plan, nothing to change, in full | **plan, every file new** (with its own dry run) | quadlet -dryrun | **ratio nothing / quadlet** | ratio in full / quadlet | **ratio new / quadlet** |
|---|---|---|---|---|---|---|---|
MD
for n in $sizes; do
    s1=$(num "cli.plan_same.$n.r1.median"); s2=$(num "cli.plan_same.$n.r2.median")
    f1=$(num "cli.plan_full.$n.r1.median"); f2=$(num "cli.plan_full.$n.r2.median")
    w1=$(num "cli.plan_new.$n.r1.median"); w2=$(num "cli.plan_new.$n.r2.median")
    q1=$(num "quadlet.$n.r1.median"); q2=$(num "quadlet.$n.r2.median")
    printf '| %s | **%s / %s** | %s / %s | **%s / %s** | %s / %s | **%s** | %s | **%s** |\n' "$n" \
        "$s1" "$s2" "$f1" "$f2" "$w1" "$w2" "$q1" "$q2" \
        "$(calc '%.2f' "($s1 + $s2) / ($q1 + $q2)")" "$(calc '%.2f' "($f1 + $f2) / ($q1 + $q2)")" \
        "$(calc '%.2f' "($w1 + $w2) / ($q1 + $q2)")"
done

cat <<MD

### 5.5 The idle daemon's health supervision, whole, without systemd

\`pipeline idle\`: the daemon's own supervisor loop arms (tick the due
machines, which spawn the probes; feed each result back; the history only
when the verdict changes) with real HTTP probes (interval 10 s) to one
process (\`pipeline serve\`) answering \`200 OK\` and closing the
connection on each generated container's port, as busybox httpd does. CPU of
the whole process (every thread, schedstat) over $(get "idle_secs") s after every
unit turned healthy; "as before" writes health.json and the history on every
result.

| services | probe results | **CPU, now** | CPU, as before | ratio |
|---|---|---|---|---|
MD
for n in $sizes; do
    [ "$n" -ge 100 ] || continue
    now=$(num "idle.now.cpu_pct_x100.$n"); before=$(num "idle.as_before.cpu_pct_x100.$n")
    printf '| %s | %s | **%s %%** (%s ms) | %s %% (%s ms) | %s |\n' "$n" "$(num "idle.now.results.$n")" \
        "$(calc '%.2f' "$now / 100")" "$(calc '%.0f' "$(num "idle.now.cpu_us.$n") / 1000")" \
        "$(calc '%.2f' "$before / 100")" "$(calc '%.0f' "$(num "idle.as_before.cpu_us.$n") / 1000")" \
        "$(calc '%.2f' "$now / $before")"
done

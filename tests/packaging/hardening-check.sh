#!/usr/bin/env bash
# Checks the units' sandboxing against real podman, inside a running
# tests/env/testenv environment (TESTENV_DIR and TESTENV_USER select which
# one; it must be up).
#
# User unit (units/deploy-agent.service): rootless podman must still set up
# its user namespace (newuidmap) in a transient user unit that carries the
# unit's own hardening settings; and each option the unit's comment rules out
# must still break it, so that the comment stays true.
#
# System unit (units/deploy-agent-system.service): the rootful podman
# commands the agent runs (ps, exec, healthcheck run, inspect, stats, image
# exists, secret ls, quadlet -dryrun) must work under the unit's sandbox
# settings, its output and state directories must be writable, and the rest
# of /etc must not be.
#
# Prints one line per check and "N passed, N failed"; exits 1 on a failure,
# and when the probes gave fewer results than there are checks.
# Takes about 20 s. Leaves nothing behind (a container and an image made for
# the check are removed again).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
testenv=$repo/tests/env/testenv
[ -x "$testenv" ] || { echo "hardening-check: $testenv is missing" >&2; exit 1; }
"$testenv" status >/dev/null || { echo "hardening-check: the test environment is not up (tests/env/testenv up)" >&2; exit 1; }

# The settings of a unit's [Service] section that shape the sandbox, as
# systemd-run -p arguments (ExecStartPre= cannot be given to a transient unit).
sandbox_props() {
	sed -n '/^\[Service\]/,/^\[/p' "$1" |
		grep -E '^(Protect|Private|ReadWritePaths|ReadOnlyPaths|Configuration|State|KeyringMode|NoNewPrivileges|Restrict|SystemCall|Capability|UMask|LockPersonality|MemoryDeny)[A-Za-z]*=' |
		sed "s/.*/-p '&'/" | tr '\n' ' '
}
user_props=$(sandbox_props "$repo/units/deploy-agent.service")
system_props=$(sandbox_props "$repo/units/deploy-agent-system.service")

pass=0 fail=0
result() { # result ok|FAIL WHAT DETAIL
	if [ "$1" = ok ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
	printf '%-4s %-62s %s\n' "$1" "$2" "$3"
}

# ---------------------------------------------------------------- user unit
# Each line printed by the probe: "<settings>|<uid_map lines>|<error>".
user_probe=$(cat <<'EOF'
probe() {
	# A podman state of its own (runtime dir, storage, config): no pause
	# process and no running container whose user namespace podman could
	# join, so it must run newuidmap. (Not `podman system migrate`: that
	# stops the user's containers, and their restart races the probe.)
	state=$(mktemp -d "$XDG_RUNTIME_DIR/hardening-check.XXXXXX")
	err=$(mktemp)
	lines=$(systemd-run --user --wait --pipe --collect -E PODMAN_IGNORE_CGROUPSV1_WARNING=1 \
		-E XDG_RUNTIME_DIR="$state" -E XDG_DATA_HOME="$state/data" -E XDG_CONFIG_HOME="$state/config" "$@" \
		podman unshare cat /proc/self/uid_map 2>"$err" | wc -l)
	msg=$(grep -o 'newuidmap: [^"\\]*\|read-only file system\|status=[0-9]*/[A-Z]*' "$err" | head -n1)
	[ -s "$state/libpod/tmp/pause.pid" ] && kill "$(cat "$state/libpod/tmp/pause.pid")" 2>/dev/null
	rm -rf "$state" "$err"
	printf '%s|%s|%s\n' "$*" "$lines" "$msg"
}
eval "probe $1"
shift
for p in "$@"; do probe -p "$p"; done
EOF
)
ruled_out=(NoNewPrivileges=yes SystemCallArchitectures=native RestrictSUIDSGID=yes LockPersonality=yes
	PrivateUsers=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=read-only CapabilityBoundingSet=)
# The unit's own settings must leave podman its subordinate range (a uid_map
# of two lines); each ruled-out option must take it away.
first=1
while IFS='|' read -r props lines msg; do
	if [ $first = 1 ]; then
		first=0
		if [ "$lines" -ge 2 ]; then
			result ok "user unit: rootless podman under ${props:-no settings}" "uid_map has the subordinate range"
		else
			result FAIL "user unit: rootless podman under ${props:-no settings}" "${msg:-no uid_map}"
		fi
	elif [ "$lines" -ge 2 ]; then
		result FAIL "user unit comment: $props should break rootless podman" "it did not"
	else
		result ok "user unit comment: $props breaks rootless podman" "$msg"
	fi
done < <("$testenv" user bash -c "$user_probe" probe "$user_props" "${ruled_out[@]}" 2>&1)

# ---------------------------------------------------------------- system unit
system_probe=$(cat <<'EOF'
set -u
props=$1
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
work=$(mktemp -d /var/tmp/hardening-check.XXXXXX)
image=localhost/hardening-check:latest
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/"
(cd "$work/rootfs/bin" && for a in $(./busybox --list); do [ "$a" = busybox ] || ln -s busybox "$a"; done)
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
podman import -q --change 'ENV PATH=/bin' "$work/rootfs.tar" "$image" >/dev/null
podman run -d --name hardening-check --network none --health-cmd true --health-interval 0 "$image" sleep 600 >/dev/null
podman healthcheck run hardening-check >/dev/null 2>&1 || true
# StateDirectory=/ConfigurationDirectory= create these on the (shared) host.
made=""
for d in /etc/containers/systemd/deploy-agent /var/lib/deploy-agent; do [ -d "$d" ] || made="$made $d"; done
run() {
	out=$(eval "systemd-run --quiet --wait --pipe --collect -E PODMAN_IGNORE_CGROUPSV1_WARNING=1 $props sh -c \"\$1\"" 2>&1)
	rc=$?
	printf '%s|%s|%s\n' "$1" "$rc" "$(printf '%s' "$out" | tr -s ' \n' ' ' | cut -c1-100)"
}
run 'podman ps --format {{.Names}}'
run 'podman exec hardening-check id -u'
run 'podman healthcheck run hardening-check'
run 'podman inspect -f {{.State.Health.Status}} hardening-check'
run 'podman stats --no-stream --format {{.Name}} hardening-check'
run "podman image exists $image"
run 'podman secret ls --noheading'
run '/usr/libexec/podman/quadlet -dryrun >/dev/null'
run 'touch /etc/containers/systemd/deploy-agent/.hardening-check && rm /etc/containers/systemd/deploy-agent/.hardening-check'
run 'touch /var/lib/deploy-agent/.hardening-check && rm /var/lib/deploy-agent/.hardening-check'
run '! touch /etc/.hardening-check 2>/dev/null'
run '! touch /usr/bin/.hardening-check 2>/dev/null'
podman rm -f -t 0 hardening-check >/dev/null
podman rmi -f "$image" >/dev/null
rm -rf "$work"
for d in $made; do rmdir "$d" 2>/dev/null || true; done
EOF
)
while IFS='|' read -r cmd rc out; do
	if [ "$rc" = 0 ]; then result ok "system unit: $cmd" "$out"; else result FAIL "system unit: $cmd" "exit $rc: $out"; fi
done < <("$testenv" root bash -c "$system_probe" probe "$system_props" 2>&1)

# Every probe line is one check: fewer results than probes (a probe that
# printed nothing, or died half-way) is a failure, never a pass with zero checks.
expected=$((1 + ${#ruled_out[@]} + $(grep -cE "^run ['\"]" <<<"$system_probe")))
if [ $((pass + fail)) -ne "$expected" ]; then
	result FAIL "probes" "$((pass + fail)) results for $expected checks: a probe printed too little"
fi
echo "hardening-check: $pass passed, $fail failed"
[ "$fail" = 0 ]

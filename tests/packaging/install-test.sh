#!/usr/bin/env bash
# Installs the .deb on a booted systemd (tests/env/testenv: a PID + mount +
# UTS namespace with its own /run, an unprivileged user with a user manager,
# rootless podman) and checks what an operator gets:
#
#  1. install: the files where they belong, /etc/deploy-agent/agent.toml a
#     conffile, the tmpfiles.d directories, nothing enabled or started, the
#     installed units clean under systemd-analyze verify (system and --user),
#     the man pages found by man;
#  2. the packaged binary runs (`deploy-agent --version`; if it does not, the
#     test stops there as failed); the agent as the user unit (systemctl
#     --user start deploy-agent) with the packaged example spec (its port
#     moved to $PORT): validate, the unit active, the container's service
#     active and answering over HTTP; and the system agent for real: the
#     packaged system unit under its sandbox, as root, on the same example
#     (moved to $SYSTEM_PORT) with rootful Podman and the system manager;
#  3. upgrade: agent.toml edited, then a newer build installed with plain
#     `dpkg -i` and no terminal (no --force-conf*: a conffile prompt would
#     fail the test): the edit is kept, no .dpkg-* files, the running user
#     and system agents were restarted, the container was not, and a second
#     user ($TESTENV_USER2, a running user manager, never enabled or started
#     the agent) still has no agent running;
#  4. remove (agents stopped, containers left running, conffile kept) and
#     purge (conffile, /var/lib/deploy-agent and the user units' global
#     enablement state gone).
#
# The namespace shares the host's file system except /run and /tmp, so dpkg
# installs onto the HOST and the test purges the package again at the end (a
# disposable CI machine is assumed). It refuses to run if deploy-agent is
# already installed. A Docker-style /usr/sbin/policy-rc.d on the host is
# overridden inside the namespace only (see below).
#
#   tests/packaging/install-test.sh [--keep-env]
#
# Uses the packages of tests/packaging/build.sh (target/packaging/out/,
# built if missing) and builds the "newer" one itself (version
# VERSION+upgradetest1, through a changelog entry made in a copy). Runs its
# own testenv instance (TESTENV_DIR=/var/tmp/deploy-agent-pkgtest,
# TESTENV_USER=pkgtest unless set), so a developer's environment is left
# alone; it is taken down again unless --keep-env or it was up before.
# PORT is the host port the example publishes on 127.0.0.1 (default: a free
# one the kernel picks; the namespace shares the host's network, and other
# tests publish ports there too).
# shellcheck disable=SC2016 # single-quoted $ in sh -c is meant for that shell
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export TESTENV_DIR=${TESTENV_DIR:-/var/tmp/deploy-agent-pkgtest}
export TESTENV_USER=${TESTENV_USER:-pkgtest}
# A second user with a running user manager who never enables the agent.
TESTENV_USER2=${TESTENV_USER2:-pkgtest2}
testenv=$repo/tests/env/testenv
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
SYSTEM_PORT=${SYSTEM_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
keep_env=""
[ "${1:-}" = --keep-env ] && keep_env=1

say() { printf 'install-test: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (dpkg, namespaces)"
[ -x "$testenv" ] || die "$testenv is missing"

pass=0 failed=0
ok() { pass=$((pass + 1)); printf 'install-test: ok   %s\n' "$*" >&2; }
bad() { failed=$((failed + 1)); printf 'install-test: FAIL %s\n' "$*" >&2; }
# check WHAT CMD...: CMD's exit status decides.
check() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
t0=$(date +%s)
step_t=$t0
timings=()
phase() {
	local now
	now=$(date +%s)
	[ -z "${phase_name:-}" ] || timings+=("$(printf '%-30s %4ss' "$phase_name" $((now - step_t)))")
	phase_name=$1 step_t=$now
	[ "$1" = end ] || say "== $1"
}

R() { "$testenv" root "$@"; }   # as root in the namespace
U() { "$testenv" user "$@"; }   # as the test user in the namespace

# ---------------------------------------------------------------- packages
phase "packages"
version=$("$here/check-version.sh")
out=$repo/target/packaging/out
deb1=$(find "$out" -maxdepth 1 -name "deploy-agent_${version}_*.deb" | head -n1)
if [ -z "$deb1" ]; then
	"$here/build.sh" --only deb
	deb1=$(find "$out" -maxdepth 1 -name "deploy-agent_${version}_*.deb" | head -n1)
fi
v2=$version+upgradetest1
"$here/build.sh" --only deb --nocheck --deb-version "$v2" --out "$out/upgrade" >/dev/null 2>"$out/upgrade-build.log" ||
	{ tail -n 20 "$out/upgrade-build.log" >&2; die "building the upgrade package failed"; }
deb2=$(find "$out/upgrade" -maxdepth 1 -name "deploy-agent_${v2}_*.deb" | head -n1)
say "packages: $(basename "$deb1"), $(basename "$deb2")"

if dpkg-query -W -f='${Status}' deploy-agent 2>/dev/null | grep installed >/dev/null; then
	die "deploy-agent is installed on this host already; this test installs and purges it: remove it first"
fi

# ---------------------------------------------------------------- environment
phase "test environment"
was_up=""
"$testenv" status >/dev/null 2>&1 && was_up=1
"$testenv" install >/dev/null
"$testenv" up >/dev/null
home=$(getent passwd "$TESTENV_USER" | cut -d: -f6)

cleanup() {
	set +e
	say "cleanup"
	[ -z "$policy" ] || { R umount /usr/sbin/policy-rc.d; rm -f "$policy"; }
	R sh -c 'systemctl stop deploy-agent-system.service web.service web_net-network.service; rm -rf /run/systemd/system/deploy-agent-system.service.d /run/install-test;
		rm -f /etc/containers/systemd/deploy-agent/web.container /etc/containers/systemd/deploy-agent/web_net.network;
		systemctl daemon-reload; podman network rm -f web_net' >/dev/null 2>&1
	[ -n "$had_outdir" ] || rmdir /etc/containers/systemd/deploy-agent 2>/dev/null
	U sh -c 'systemctl --user stop deploy-agent.service web.service web_net-network.service;
		rm -rf ~/.config/systemd/user/deploy-agent.service.d ~/.config/containers/systemd/deploy-agent ~/.local/state/deploy-agent ~/specs;
		systemctl --user daemon-reload; podman network rm -f web_net' >/dev/null 2>&1
	if dpkg-query -W -f='${Status}' deploy-agent 2>/dev/null | grep installed >/dev/null; then
		R dpkg --purge deploy-agent >/dev/null 2>&1
	fi
	if [ -n "$made_user2" ]; then
		R loginctl disable-linger "$TESTENV_USER2" >/dev/null 2>&1
		R systemctl stop "user@$uid2.service" >/dev/null 2>&1
		userdel -r "$TESTENV_USER2" >/dev/null 2>&1
	fi
	if [ -z "$keep_env" ] && [ -z "$was_up" ]; then "$testenv" down --purge >/dev/null 2>&1; fi
}
policy=""
made_user2="" uid2=""
had_outdir=""
[ ! -d /etc/containers/systemd/deploy-agent ] || had_outdir=1
trap cleanup EXIT

# A Docker-style /usr/sbin/policy-rc.d (exit 101, as on this project's
# machine image) tells deb-systemd-invoke to leave every service alone, so
# the maintainer scripts' restarts and stops would not run. Inside the
# namespace (its own mount namespace) an allow-all policy is mounted over
# it, as a host booted with systemd has none; the host's file stays as it is.
if [ -e /usr/sbin/policy-rc.d ]; then
	policy=$(mktemp /var/tmp/install-test-policy-rc.d.XXXXXX)
	printf '#!/bin/sh\nexit 0\n' >"$policy"
	chmod 755 "$policy"
	R mount --bind "$policy" /usr/sbin/policy-rc.d
	say "policy-rc.d: allow-all mounted over the host's inside the namespace"
fi

# The second user: lingering, so that a user manager runs for it, as for a
# user logged in when the package is upgraded.
if ! getent passwd "$TESTENV_USER2" >/dev/null; then
	useradd --create-home --shell /bin/bash --user-group "$TESTENV_USER2" || die "useradd $TESTENV_USER2 failed"
	made_user2=1
fi
uid2=$(id -u "$TESTENV_USER2")
R loginctl enable-linger "$TESTENV_USER2" || die "loginctl enable-linger $TESTENV_USER2 failed"
for _ in $(seq 1 60); do R systemctl is-active -q "user@$uid2.service" && break; sleep 1; done
R systemctl is-active -q "user@$uid2.service" || die "user@$uid2.service ($TESTENV_USER2) did not start"
# U2 CMD...: systemctl --user for the second user, through its manager.
U2() { R systemctl --user --machine="$uid2@" "$@"; }

# dpkg -i in the namespace, without a terminal: a conffile prompt would read
# EOF and fail. Retries while another dpkg/apt holds the lock.
dpkg_i() {
	local log
	for _ in $(seq 1 30); do
		log=$(R dpkg -i "$1" </dev/null 2>&1) && { printf '%s\n' "$log"; return 0; }
		case $log in *"lock"*) sleep 2 ;; *) printf '%s\n' "$log" >&2; return 1 ;; esac
	done
	printf '%s\n' "$log" >&2
	return 1
}

# ---------------------------------------------------------------- 1. install
phase "install"
if log=$(dpkg_i "$deb1"); then ok "dpkg -i $(basename "$deb1")"; else bad "dpkg -i $(basename "$deb1")"; exit 1; fi
for f in /usr/bin/deploy-agent /usr/lib/systemd/user/deploy-agent.service \
	/usr/lib/systemd/system/deploy-agent-system.service /usr/lib/tmpfiles.d/deploy-agent.conf \
	/etc/deploy-agent/agent.toml /usr/share/man/man1/deploy-agent.1.gz /usr/share/man/man1/deploy-agent-run.1.gz \
	/usr/share/bash-completion/completions/deploy-agent /usr/share/zsh/vendor-completions/_deploy-agent \
	/usr/share/fish/vendor_completions.d/deploy-agent.fish /usr/share/doc/deploy-agent/examples/web.toml \
	/usr/share/doc/deploy-agent/README.specs; do
	check "installed: $f" test -s "$f"
done
check "conffile: /etc/deploy-agent/agent.toml" sh -c "dpkg-query -W -f='\${Conffiles}' deploy-agent | grep -q '^ /etc/deploy-agent/agent.toml '"
check "/etc/deploy-agent/specs: 755 root, empty (no example installed there)" \
	sh -c '[ "$(stat -c %a:%U /etc/deploy-agent/specs)" = 755:root ] && [ -z "$(ls -A /etc/deploy-agent/specs)" ]'
check "/var/lib/deploy-agent: 700 root (tmpfiles.d)" sh -c '[ "$(stat -c %a:%U /var/lib/deploy-agent)" = 700:root ]'
check "system unit: disabled and inactive" sh -c "[ \"\$($testenv root systemctl is-enabled deploy-agent-system.service)\" = disabled ] && ! $testenv root systemctl is-active -q deploy-agent-system.service"
check "user unit: disabled and inactive" sh -c "[ \"\$($testenv user systemctl --user is-enabled deploy-agent.service)\" = disabled ] && ! $testenv user systemctl --user is-active -q deploy-agent.service"
if v=$(R systemd-analyze verify /usr/lib/systemd/system/deploy-agent-system.service 2>&1) && [ -z "$v" ]; then
	ok "systemd-analyze verify deploy-agent-system.service (as installed, man pages included)"
else bad "systemd-analyze verify deploy-agent-system.service: $v"; fi
if v=$(U systemd-analyze verify --user /usr/lib/systemd/user/deploy-agent.service 2>&1) && [ -z "$v" ]; then
	ok "systemd-analyze verify --user deploy-agent.service (as installed, man pages included)"
else bad "systemd-analyze verify --user deploy-agent.service: $v"; fi
check "man -w deploy-agent-rollback" man -w deploy-agent-rollback

if ver=$(deploy-agent --version 2>&1) && [ "${ver#deploy-agent }" = "$version" ]; then
	ok "deploy-agent --version: $ver"
else
	bad "the packaged binary does not run: deploy-agent --version said '${ver:-}'"
	exit 1
fi
check "second user ($TESTENV_USER2): agent disabled and inactive" sh -c "! $testenv root systemctl --user --machine=$uid2@ is-active -q deploy-agent.service"

# ---------------------------------------------------------------- 2. agent
phase "user unit"
# The packaged example, on a test port, in a specs directory of the user's
# own (a drop-in points the unit at it; /etc/deploy-agent/specs is the
# host's and stays empty).
U sh -euc '
	mkdir -p ~/specs ~/.config/systemd/user/deploy-agent.service.d
	sed -e "s/127.0.0.1:8080:8080/127.0.0.1:$1:8080/" -e "s|http://127.0.0.1:8080/|http://127.0.0.1:$1/|" \
		/usr/share/doc/deploy-agent/examples/web.toml >~/specs/web.toml
	printf "[Service]\nEnvironment=DEPLOY_AGENT_SPECS=%%h/specs\n" \
		>~/.config/systemd/user/deploy-agent.service.d/50-install-test.conf
	systemctl --user daemon-reload' _ "$PORT"
check "deploy-agent validate (example spec)" U deploy-agent validate --specs "$home/specs"
if U timeout 300 systemctl --user start deploy-agent.service; then ok "systemctl --user start deploy-agent"; else bad "systemctl --user start deploy-agent"; fi
check "deploy-agent.service active" U systemctl --user is-active -q deploy-agent.service
check "web.service active (rendered from the example)" U systemctl --user is-active -q web.service
check "http://127.0.0.1:$PORT/health answers ok" sh -c "curl -fsS --max-time 5 http://127.0.0.1:$PORT/health | grep -qx ok"
check "deploy-agent status" U deploy-agent status --specs "$home/specs"
agent_pid=$(U systemctl --user show -P MainPID deploy-agent.service)
web_inv=$(U systemctl --user show -P InvocationID web.service)
U systemctl --user --no-pager status deploy-agent.service web.service >"$out/install-test-status.txt" 2>&1 || true

# The system agent, for real: the packaged unit under its sandbox runs
# `deploy-agent run` as root on the packaged example (on its own port, from a
# specs directory in the namespace's /run: /etc/deploy-agent/specs is the
# host's), with rootful Podman and the system manager.
phase "system agent (rootful Podman)"
U podman save -o "$home/install-test-busybox.tar" localhost/busybox:latest >/dev/null 2>&1
check "busybox image in root's storage" R sh -c "podman load -i '$home/install-test-busybox.tar' >/dev/null 2>&1 && podman image exists localhost/busybox:latest"
rm -f "$home/install-test-busybox.tar"
R sh -euc '
	mkdir -p /run/install-test/specs
	sed -e "s/127.0.0.1:8080:8080/127.0.0.1:$1:8080/" -e "s|http://127.0.0.1:8080/|http://127.0.0.1:$1/|" \
		/usr/share/doc/deploy-agent/examples/web.toml >/run/install-test/specs/web.toml
	d=/run/systemd/system/deploy-agent-system.service.d; mkdir -p "$d"
	printf "[Service]\nEnvironment=DEPLOY_AGENT_SPECS=/run/install-test/specs\n" >"$d/50-install-test.conf"
	systemctl daemon-reload' _ "$SYSTEM_PORT"
check "deploy-agent --system validate (example spec)" R deploy-agent --system validate --specs /run/install-test/specs
if R timeout 300 systemctl start deploy-agent-system.service; then ok "systemctl start deploy-agent-system (real agent, under its sandbox)"; else bad "systemctl start deploy-agent-system"; fi
system_pid=$(R systemctl show -P MainPID deploy-agent-system.service)
check "system agent: WATCHDOG_USEC=30000000" \
	R sh -c "tr '\\0' '\\n' </proc/$system_pid/environ | grep -qx WATCHDOG_USEC=30000000"
check "system unit: /etc/containers/systemd/deploy-agent made (ConfigurationDirectory=)" test -d /etc/containers/systemd/deploy-agent
check "system unit: /var/lib/deploy-agent 700 (StateDirectory=)" sh -c '[ "$(stat -c %a /var/lib/deploy-agent)" = 700 ]'
check "system web.service active (rendered by the system agent into /etc/containers/systemd/deploy-agent)" \
	sh -c "test -e /etc/containers/systemd/deploy-agent/web.container && $testenv root systemctl is-active -q web.service"
check "rootful container answers on http://127.0.0.1:$SYSTEM_PORT/health" \
	sh -c "curl -fsS --max-time 5 http://127.0.0.1:$SYSTEM_PORT/health | grep -qx ok"
check "deploy-agent --system status: all well" R deploy-agent --system status
check "system agent's journal: generation 1 applied" \
	sh -c "$testenv root journalctl -u deploy-agent-system.service -o cat --no-pager | grep -q 'generation 1 applied'"
R systemctl --no-pager status deploy-agent-system.service web.service >"$out/install-test-system-status.txt" 2>&1 || true

# ---------------------------------------------------------------- 3. upgrade
phase "upgrade"
R sh -c 'sed -i "s/^# history = 20$/history = 7/" /etc/deploy-agent/agent.toml && echo "# edited by install-test" >>/etc/deploy-agent/agent.toml'
check "agent.toml edited" grep -qx 'history = 7' /etc/deploy-agent/agent.toml
if log=$(dpkg_i "$deb2"); then ok "dpkg -i $(basename "$deb2") (no terminal, no --force-conf*)"; else bad "dpkg -i $(basename "$deb2")"; fi
check "version now $v2" sh -c "[ \"\$(dpkg-query -W -f='\${Version}' deploy-agent)\" = '$v2' ]"
check "no conffile prompt" sh -c "! printf '%s' \"\$1\" | grep -q 'Configuration file'" _ "$log"
check "agent.toml edit kept" sh -c 'grep -qx "history = 7" /etc/deploy-agent/agent.toml && grep -qx "# edited by install-test" /etc/deploy-agent/agent.toml'
check "no agent.toml.dpkg-* files" sh -c '! ls /etc/deploy-agent/agent.toml.dpkg-* 2>/dev/null'
if [ -n "$agent_pid" ] && [ "$agent_pid" != 0 ]; then
	new_pid=$(U systemctl --user show -P MainPID deploy-agent.service)
	check "running user agent restarted by postinst (MainPID $agent_pid -> $new_pid)" \
		sh -c "[ '$new_pid' != 0 ] && [ '$new_pid' != '$agent_pid' ] && $testenv user systemctl --user is-active -q deploy-agent.service"
else
	bad "no running user agent to check the restart on upgrade with"
fi
new_pid=$(R systemctl show -P MainPID deploy-agent-system.service)
check "running system agent restarted by postinst (MainPID $system_pid -> $new_pid)" \
	sh -c "[ '$new_pid' != 0 ] && [ '$new_pid' != '$system_pid' ]"
check "web.service not restarted by the agent's restart" \
	sh -c "[ \"\$($testenv user systemctl --user show -P InvocationID web.service)\" = '$web_inv' ]"
check "second user ($TESTENV_USER2), who never started the agent: still no agent running" \
	sh -c "! $testenv root systemctl --user --machine=$uid2@ is-active -q deploy-agent.service &&
		[ \"\$($testenv root systemctl --user --machine=$uid2@ show -P InactiveExitTimestampMonotonic deploy-agent.service)\" = 0 ]"

# ---------------------------------------------------------------- 4. remove, purge
phase "remove, purge"
check "dpkg -r deploy-agent" R dpkg -r deploy-agent
check "binary removed" test ! -e /usr/bin/deploy-agent
check "agent.toml kept on remove (conffile)" test -e /etc/deploy-agent/agent.toml
check "user agent stopped by prerm" sh -c "! $testenv user systemctl --user is-active -q deploy-agent.service"
check "system agent stopped by prerm" sh -c "! $testenv root systemctl is-active -q deploy-agent-system.service"
check "web.service still running (containers are not the package's)" U systemctl --user is-active -q web.service
check "system web.service still running too" R systemctl is-active -q web.service
check "dpkg --purge deploy-agent" R dpkg --purge deploy-agent
check "agent.toml removed on purge" test ! -e /etc/deploy-agent/agent.toml
check "/var/lib/deploy-agent removed on purge" test ! -e /var/lib/deploy-agent
check "no enablement state left on purge (deb-systemd-helper)" \
	sh -c '! ls /var/lib/systemd/deb-systemd-helper-enabled/deploy-agent* /var/lib/systemd/deb-systemd-user-helper-enabled/deploy-agent* 2>/dev/null | grep -q .' 

phase end
printf '  %s\n' "${timings[@]}" >&2
say "total $(($(date +%s) - t0))s"
echo "install-test: $pass passed, $failed failed"
[ "$failed" = 0 ]

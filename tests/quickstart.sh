#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine (as root): brings up a real systemd
# user manager with rootless Podman (tests/env/testenv), builds deploy-agent,
# and runs it — `deploy-agent run`, as a Type=notify user service of the
# unprivileged user "agent" — on the example specs in packaging/specs/.
# It leaves the agent running and prints how to look at it and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
T="$REPO/tests/env/testenv"
UNIT=deploy-agent-quickstart

echo "== 1/5 install Podman 5 (Debian trixie), runc, systemd pieces"
bash "$T" install
echo "== 2/5 boot the real systemd + user manager test environment"
bash "$T" up
echo "== 3/5 build deploy-agent (release)"
cargo build --release --locked
BIN="$REPO/target/release/deploy-agent"

HOME_DIR=$(getent passwd "${TESTENV_USER:-agent}" | cut -d: -f6)
WS="$HOME_DIR/quickstart"
echo "== 4/5 example specs -> $WS/specs"
bash "$T" user sh -c "mkdir -p '$WS/specs' && : > '$WS/agent.toml'"
for f in packaging/specs/*.toml; do
    bash "$T" user sh -c "cat > '$WS/specs/$(basename "$f")'" < "$f"
done
ARGS=(--config "$WS/agent.toml" --specs "$WS/specs" --state-dir "$WS/state")
bash "$T" user "$BIN" validate "${ARGS[@]}"
bash "$T" user "$BIN" plan "${ARGS[@]}"

echo "== 5/5 deploy-agent run (as the user service $UNIT)"
bash "$T" user systemctl --user stop "$UNIT" >/dev/null 2>&1 || true
bash "$T" user systemctl --user reset-failed "$UNIT" >/dev/null 2>&1 || true
bash "$T" user systemd-run --user --unit "$UNIT" --service-type=notify \
    -p WatchdogSec=30s --setenv=PODMAN_IGNORE_CGROUPSV1_WARNING=1 \
    "$BIN" run "${ARGS[@]}"
bash "$T" user systemctl --user status "$UNIT" --no-pager -n 0 || true
for _ in $(seq 1 30); do
    if bash "$T" user curl -fsS --max-time 2 http://127.0.0.1:8080/health >/dev/null 2>&1; then break; fi
    sleep 1
done
echo "-- curl http://127.0.0.1:8080/health:"
bash "$T" user curl -fsS --max-time 2 http://127.0.0.1:8080/health
sleep 12 # one health-check interval
echo "-- deploy-agent status:"
bash "$T" user "$BIN" status "${ARGS[@]}"
echo "-- journal:"
bash "$T" user journalctl --user -u "$UNIT" --no-pager -n 15
cat <<EOT

deploy-agent is running as the user service $UNIT of user "${TESTENV_USER:-agent}".
Edit a spec and watch it apply:
  bash tests/env/testenv user sh -c 'sed -i s/UTC/Europe\\\\/Paris/ $WS/specs/web.toml'
  bash tests/env/testenv user journalctl --user -u $UNIT -f
Stop it (the containers keep running) and tear the environment down:
  bash tests/env/testenv user systemctl --user stop $UNIT
  bash tests/env/testenv down
EOT

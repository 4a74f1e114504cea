#!/usr/bin/env bash
# The package version is said in three places; they must agree:
# Cargo.toml (version), debian/changelog (top entry, upstream part: a "+..."
# or "~..." suffix such as a test-time bump is ignored) and rpm/deploy-agent.spec
# (Version:). Prints the version; exits 1 if they differ.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo_v=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
deb_v=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog)
deb_upstream=${deb_v%%[+~]*}
rpm_v=$(sed -n 's/^Version: *\([^ ]*\) *$/\1/p' rpm/deploy-agent.spec | head -n1)

if [ -z "$cargo_v" ] || [ "$cargo_v" != "$deb_upstream" ] || [ "$cargo_v" != "$rpm_v" ]; then
	echo "version mismatch: Cargo.toml '$cargo_v', debian/changelog '$deb_v', rpm/deploy-agent.spec '$rpm_v'" >&2
	exit 1
fi
echo "$cargo_v"

#!/usr/bin/env bash
# Builds deploy-agent's release .deb and .rpm from a clean copy of the
# sources, offline from vendored crates, and checks them: lintian --pedantic
# and rpmlint (any error or warning not overridden with a reason fails),
# systemd-analyze verify on the packaged units, the rpm's systemd
# scriptlets, the newest glibc symbol the packaged binaries need, the
# license files against Cargo.lock, and the package sizes.
#
#   tests/packaging/build.sh [--head] [--only deb|rpm] [--nocheck] [--native]
#                            [--deb-version VERSION] [--out DIR]
#
#   --head         package the last commit (git archive HEAD); default: the
#                  work tree, tracked and untracked files minus ignored ones
#   --only X       build only the deb or only the rpm
#   --nocheck      skip the unit tests the package builds run
#   --native       link against this machine's glibc instead of glibc 2.28's
#                  symbols (a developer build: not installable everywhere, and
#                  the glibc check is skipped)
#   --deb-version  give the .deb this version through a changelog entry added
#                  in the copy (for upgrade tests; the repository is untouched)
#   --out DIR      where the packages and reports go
#                  (default: target/packaging/out)
#
# The tools come from `tests/env/testenv install` (debhelper, lintian, rpm,
# rpmlint from trixie; zig and cargo-zigbuild in /opt/deploy-agent-build-tools).
# Crates are fetched once (`cargo vendor`, the only step that needs the
# network); as root, both package builds then run in a network namespace of
# their own, which proves they need none. CARGO_TARGET_DIR defaults to the
# repository's target/, so the dependencies compile once for the deb, the
# rpm and the developers; the copy is always built at the same path, so a
# second run reuses the first one's build. The rpm is built on Debian with
# `rpmbuild --nodeps`: its BuildRequires are rpm packages that a Debian host
# does not have in its rpm database.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$repo/target/packaging

from=worktree only="" nocheck="" native="" deb_version="" out=$work/out
while [ $# -gt 0 ]; do
	case $1 in
	--head) from="head" ;;
	--only) only=$2; shift ;;
	--nocheck) nocheck=1 ;;
	--native) native=1 ;;
	--deb-version) deb_version=$2; shift ;;
	--out) out=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case $only in "" | deb | rpm) ;; *) echo "build.sh: --only deb|rpm" >&2; exit 2 ;; esac
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

say() { printf 'build.sh: %s\n' "$*" >&2; }
t_start=$(date +%s)
step_t=$t_start
timings=()
step() {
	local now
	now=$(date +%s)
	timings+=("$(printf '%-28s %4ss' "$1" $((now - step_t)))")
	step_t=$now
}

# ---------------------------------------------------------------- tools
tools_dir=${TESTENV_TOOLS_DIR:-/opt/deploy-agent-build-tools}
[ -n "$native" ] || PATH=$tools_dir/bin:$PATH
missing=()
need=(dpkg-parsechangelog systemd-analyze objdump python3 cargo)
want deb && need+=(dh dpkg-buildpackage lintian)
want rpm && need+=(rpmbuild rpmlint rpm2cpio cpio)
[ -n "$native" ] || need+=(cargo-zigbuild python-zig)
for t in "${need[@]}"; do
	command -v "$t" >/dev/null || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "missing: ${missing[*]}; run (as root) bash tests/env/testenv install"
	exit 1
fi
# The newest glibc the packaged binary may need: the portable build targets
# 2.28's symbols (README.md, supported distributions); a --native build at
# least RHEL 9's 2.34.
max_glibc=2.28
[ -z "$native" ] || max_glibc=2.34
# Offline package builds: in a network namespace of their own when root.
offline=()
[ "$(id -u)" != 0 ] || offline=(unshare --net --)
version=$("$here/check-version.sh")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
# dpkg-buildpackage would set SOURCE_DATE_EPOCH from the changelog entry, rpm
# leaves it unset, and build scripts (cc) rebuild when it changes: one value
# for every build, the date of the release's changelog entry (a test-time
# entry made by --deb-version does not change it).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Timestamp)}
# For the test-time changelog entry and the rpm's Packager.
maintainer=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Maintainer)
step "tools, version check"

# ---------------------------------------------------------------- sources
# One tarball, unpacked at a fixed path: the deb is built there, and the rpm
# too (rpmbuild --build-in-place), so cargo sees the same package and the
# second build is a no-op.
mkdir -p "$work" "$out"
exec 9>"$work/.lock"
flock 9
name=deploy-agent-$version
tarball=$work/$name.tar.gz
cd "$repo"
if [ "$from" = head ]; then
	git archive --format=tar.gz --prefix="$name/" -o "$tarball" HEAD
else
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - --transform "s,^,$name/," -czf "$tarball"
fi
src=$work/build/$name
rm -rf "$work/build"
mkdir -p "$work/build"
tar -xzf "$tarball" -C "$work/build"
step "source tree ($from)"

# The crates, fetched once: vendor/ in the tree the deb builds from, and the
# same as a tarball, the rpm's Source1.
(cd "$src" && cargo vendor --locked --quiet vendor >/dev/null) ||
	{ say "cargo vendor failed"; exit 1; }
tar -C "$src" -cf - vendor | xz -T0 -1 >"$work/$name-vendor.tar.xz"
step "cargo vendor ($(find "$src/vendor" -mindepth 1 -maxdepth 1 -type d | wc -l) crates)"

# ---------------------------------------------------------------- deb
deb=""
if want deb; then
	cd "$src"
	if [ -n "$deb_version" ]; then
		# A changelog entry made at build time, as dch would write it.
		{
			printf 'deploy-agent (%s) unstable; urgency=medium\n\n' "$deb_version"
			printf '  * Test build %s.\n\n' "$deb_version"
			printf ' -- %s  %s\n\n' "$maintainer" "$(date -R)"
			cat debian/changelog
		} >debian/changelog.new
		mv debian/changelog.new debian/changelog
	fi
	opts=(-us -uc -b)
	# Debian's cargo/rustc are build dependencies unless the toolchain comes
	# from rustup (debian/control, profile pkg.deploy-agent.rustup).
	profiles=()
	[ "$(command -v cargo)" = /usr/bin/cargo ] || profiles+=(pkg.deploy-agent.rustup)
	[ -n "$native" ] || profiles+=(pkg.deploy-agent.portable)
	[ ${#profiles[@]} = 0 ] || opts+=("--build-profiles=$(IFS=,; echo "${profiles[*]}")")
	dbo=${DEB_BUILD_OPTIONS:-}
	[ -z "$nocheck" ] || dbo="nocheck $dbo"
	say "dpkg-buildpackage ${opts[*]}"
	DEB_BUILD_OPTIONS=$dbo "${offline[@]}" dpkg-buildpackage "${opts[@]}" >"$work/dpkg-buildpackage.log" 2>&1 ||
		{ tail -n 40 "$work/dpkg-buildpackage.log" >&2; say "deb build failed (log: $work/dpkg-buildpackage.log)"; exit 1; }
	deb_v=$(dpkg-parsechangelog -S Version)
	deb=$(ls "$work/build/deploy-agent_${deb_v}_"*.deb)
	mv "$deb" "$out/"
	deb=$out/$(basename "$deb")
	step "deb build"
fi

# ---------------------------------------------------------------- rpm
rpm=""
if want rpm; then
	cd "$src"
	rpmopts=(--nodeps --build-in-place
		--define "_topdir $work/rpmbuild" --define "_sourcedir $work"
		--define "_rpmdir $work/rpmbuild/RPMS"
		--define "packager $maintainer")
	[ -z "$nocheck" ] || rpmopts+=(--nocheck)
	[ -n "$native" ] || rpmopts+=(--with portable)
	say "rpmbuild -bb ${rpmopts[*]:0:2}"
	rm -rf "$work/rpmbuild"
	# Debian's hardening flags for the C code that crates build (ring), as
	# Fedora's %set_build_flags gives Fedora's; identical to what dh exports
	# for the deb, so cargo reuses the deb's build here.
	(
		eval "$(dpkg-buildflags --export=sh)"
		"${offline[@]}" rpmbuild -bb "${rpmopts[@]}" rpm/deploy-agent.spec
	) >"$work/rpmbuild.log" 2>&1 ||
		{ tail -n 40 "$work/rpmbuild.log" >&2; say "rpm build failed (log: $work/rpmbuild.log)"; exit 1; }
	rpm=$(find "$work/rpmbuild/RPMS" -name "deploy-agent-$version-*.rpm" | head -n1)
	mv "$rpm" "$out/"
	rpm=$out/$(basename "$rpm")
	step "rpm build"
fi

# ---------------------------------------------------------------- checks
# check_glibc BINARY LABEL: the newest GLIBC_ symbol version BINARY needs is
# at most $max_glibc.
check_glibc() {
	local newest
	newest=$(objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n1)
	if [ -n "$newest" ] && dpkg --compare-versions "$newest" le "$max_glibc"; then
		say "glibc: $2 needs GLIBC_$newest at most (limit $max_glibc): ok"
	else
		say "glibc: $2 needs GLIBC_${newest:-?}, newer than $max_glibc: it would not run everywhere README.md says"
		return 1
	fi
}

# check_stripped BINARY LABEL: no symbol table, no debug sections.
check_stripped() {
	if objdump -h "$1" | grep -Eq ' \.(symtab|debug_[a-z]+) '; then
		say "strip: $2 still has a symbol table or debug sections"
		return 1
	fi
	say "strip: $2 is stripped: ok"
}

# check_rpm_scripts RPM: the scriptlets systemd's macros.systemd gives
# (built here without systemd-rpm-macros, they come from the spec's
# fallbacks, which must match).
check_rpm_scripts() {
	local scripts want missing=0 helper=/usr/lib/systemd/systemd-update-helper
	scripts=$(rpm -qp --scripts "$1")
	printf '%s\n' "$scripts" >"$out/rpm-scripts.txt"
	for want in "postinstall scriptlet" "$helper install-system-units deploy-agent-system.service" \
		"$helper install-user-units deploy-agent.service" \
		"systemd-tmpfiles --create /usr/lib/tmpfiles.d/deploy-agent.conf" \
		"preuninstall scriptlet" "$helper remove-system-units deploy-agent-system.service" \
		"$helper remove-user-units deploy-agent.service" \
		"postuninstall scriptlet" "$helper mark-restart-system-units deploy-agent-system.service" \
		"$helper mark-restart-user-units deploy-agent.service"; do
		grep -qF -- "$want" <<<"$scripts" || { say "rpm scriptlets: missing '$want'"; missing=1; }
	done
	[ $missing = 0 ] && say "rpm scriptlets: systemd post/preun/postun for both units, tmpfiles: ok"
	return $missing
}

# check_rpm_metadata RPM: what a distribution's packager would check first.
check_rpm_metadata() {
	local bad=0 url
	rpm -qp --requires "$1" | grep -x 'podman >= 5:4.9' >/dev/null || { say "rpm: no 'Requires: podman >= 5:4.9' (with Fedora's epoch)"; bad=1; }
	rpm -qp --requires "$1" | grep '^systemd$' >/dev/null || { say "rpm: no 'Requires: systemd'"; bad=1; }
	url=$(rpm -qp --qf '%{URL}' "$1")
	[ -n "$url" ] && [ "$url" != "(none)" ] || { say "rpm: no URL:"; bad=1; }
	rpm -qpl "$1" | grep -x /usr/share/licenses/deploy-agent/LICENSE.dependencies >/dev/null || { say "rpm: LICENSE.dependencies not shipped"; bad=1; }
	ls "$work/rpmbuild/RPMS/"*/deploy-agent-debuginfo-*.rpm >/dev/null 2>&1 || { say "rpm: no -debuginfo package"; bad=1; }
	[ $bad = 0 ] && say "rpm metadata: Requires podman >= 5:4.9, URL, licenses, -debuginfo: ok"
	return $bad
}

# check_links ROOT: no documentation the package ships points outside it
# (a relative ../ path, as README.md once did to the repository's shared/).
check_links() {
	local hits
	hits=$(find "$1/usr/share/doc" "$1/usr/share/man" -type f -exec zgrep -l -e '\.\./' -e 'shared/spec-format' {} + 2>/dev/null || true)
	if [ -n "$hits" ]; then
		say "shipped documentation points outside the package: ${hits//$1/}"
		return 1
	fi
	say "links: no shipped document points outside the package: ok"
}

# check_licenses: debian/copyright and the spec's License: match the crates
# Cargo.lock links in.
check_licenses() {
	local spdx
	python3 "$repo/packaging/licenses.py" --vendor "$src/vendor" check || { say "debian/copyright is out of date: python3 packaging/licenses.py debian-copyright >debian/copyright"; return 1; }
	spdx=$(python3 "$repo/packaging/licenses.py" --vendor "$src/vendor" spdx)
	if ! grep -qxF "License:        $spdx" "$repo/rpm/deploy-agent.spec"; then
		say "rpm/deploy-agent.spec License: is not '$spdx' (packaging/licenses.py spdx)"
		return 1
	fi
	say "licenses: debian/copyright and the spec's License: match Cargo.lock: ok"
}

status=0
if [ -n "$deb" ]; then
	say "lintian --pedantic $(basename "$deb")"
	lintian -I --pedantic --fail-on error,warning,pedantic "$deb" >"$out/lintian.txt" 2>&1 || status=1
	sed 's/^/  /' "$out/lintian.txt" >&2
	say "lintian: $(grep -c '^E:' "$out/lintian.txt" || true) errors, $(grep -c '^W:' "$out/lintian.txt" || true) warnings, $(grep -c '^P:' "$out/lintian.txt" || true) pedantic, $(grep -c '^I:' "$out/lintian.txt" || true) info (overrides: debian/deploy-agent.lintian-overrides)"

	# The packaged units as the system and a user manager read them, with
	# ExecStart= pointing at the packaged binary (the units are not
	# installed here; install-test.sh verifies them unchanged once they are).
	root=$work/deb-root
	rm -rf "$root" && mkdir -p "$root/units" && dpkg-deb -x "$deb" "$root"
	for u in system/deploy-agent-system.service user/deploy-agent.service; do
		sed "s|/usr/bin/deploy-agent|$root/usr/bin/deploy-agent|" "$root/usr/lib/systemd/$u" >"$root/units/${u#*/}"
	done
	rt=$(mktemp -d)
	if ! systemd-analyze verify --man=no "$root/units/deploy-agent-system.service" >"$out/verify.txt" 2>&1 ||
		! XDG_RUNTIME_DIR=$rt systemd-analyze verify --man=no --user "$root/units/deploy-agent.service" >>"$out/verify.txt" 2>&1 ||
		[ -s "$out/verify.txt" ]; then
		say "systemd-analyze verify:"; sed 's/^/  /' "$out/verify.txt" >&2; status=1
	else
		say "systemd-analyze verify (system and --user): clean"
	fi
	rm -rf "$rt"
fi
if [ -n "$rpm" ]; then
	say "rpmlint $(basename "$rpm")"
	rpmlint -c "$repo/rpm/rpmlint.toml" -r "$repo/rpm/deploy-agent.rpmlintrc" "$rpm" >"$out/rpmlint.txt" 2>&1 || status=1
	sed 's/^/  /' "$out/rpmlint.txt" >&2
	# rpmlint exits 0 on warnings; a warning without a filter (and its
	# reason in rpm/deploy-agent.rpmlintrc) fails here too.
	grep -Eq ' [0-9]+ errors, 0 warnings' "$out/rpmlint.txt" || { say "rpmlint: errors or warnings"; status=1; }
	check_rpm_scripts "$rpm" || status=1
	check_rpm_metadata "$rpm" || status=1
	rpm_root=$work/rpm-root
	rm -rf "$rpm_root" && mkdir -p "$rpm_root"
	(cd "$rpm_root" && rpm2cpio "$rpm" | cpio -idm --quiet)
fi
if [ -n "$native" ]; then
	say "glibc check skipped (--native)"
else
	[ -z "$deb" ] || check_glibc "$root/usr/bin/deploy-agent" "the .deb's binary" || status=1
	[ -z "$rpm" ] || check_glibc "$rpm_root/usr/bin/deploy-agent" "the .rpm's binary" || status=1
fi
[ -z "$deb" ] || check_stripped "$root/usr/bin/deploy-agent" "the .deb's binary" || status=1
[ -z "$deb" ] || check_links "$root" || status=1
if [ -n "$deb" ] && ! dpkg-deb -f "$deb" Depends | grep 'podman (>= 4.9)' >/dev/null; then
	say "deb: Depends lacks 'podman (>= 4.9)'"; status=1
fi
[ -z "$rpm" ] || check_stripped "$rpm_root/usr/bin/deploy-agent" "the .rpm's binary" || status=1
check_licenses || status=1
step "lintian, rpmlint, verify"

{
	[ -z "$deb" ] || printf '%-44s %9s bytes, Installed-Size %s KiB\n' "$(basename "$deb")" "$(stat -c %s "$deb")" "$(dpkg-deb -f "$deb" Installed-Size)"
	[ -z "$rpm" ] || printf '%-44s %9s bytes, installed %s bytes\n' "$(basename "$rpm")" "$(stat -c %s "$rpm")" "$(rpm -qp --qf '%{SIZE}' "$rpm" 2>/dev/null)"
} | tee "$out/sizes.txt" >&2
timings+=("$(printf '%-28s %4ss' total $(($(date +%s) - t_start)))")
printf '  %s\n' "${timings[@]}" >&2
[ $status = 0 ] || say "FAILED (see above)"
exit $status

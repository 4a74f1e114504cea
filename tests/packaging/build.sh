#!/usr/bin/env bash
# Builds deploy-agent's .deb and .rpm from a clean copy of the sources and
# checks them: lintian and rpmlint (fails on errors, shows warnings),
# systemd-analyze verify on the packaged units, and the package sizes.
#
#   tests/packaging/build.sh [--head] [--only deb|rpm] [--nocheck]
#                            [--deb-version VERSION] [--out DIR]
#
#   --head         package the last commit (git archive HEAD); default: the
#                  work tree, tracked and untracked files minus ignored ones
#   --only X       build only the deb or only the rpm
#   --nocheck      skip the unit tests the package builds run
#   --deb-version  give the .deb this version through a changelog entry added
#                  in the copy (for upgrade tests; the repository is untouched)
#   --out DIR      where the packages and reports go
#                  (default: target/packaging/out)
#
# Needs root only to install missing tools (debhelper, lintian, rpm, rpmlint)
# with apt-get. CARGO_TARGET_DIR defaults to the repository's target/, so the
# dependencies compile once for the deb, the rpm and the developers; the copy
# is always built at the same path, so a second run reuses the first one's
# build. The rpm is built on Debian with `rpmbuild --nodeps`: its
# BuildRequires (cargo, rust, systemd-rpm-macros) are rpm packages that a
# Debian host does not have in its rpm database.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$repo/target/packaging

from=worktree only="" nocheck="" deb_version="" out=$work/out
while [ $# -gt 0 ]; do
	case $1 in
	--head) from="head" ;;
	--only) only=$2; shift ;;
	--nocheck) nocheck=1 ;;
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
missing=()
for t in dpkg-parsechangelog:dpkg-dev systemd-analyze:systemd; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
want deb && for t in dh:debhelper lintian:lintian; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
want rpm && for t in rpmbuild:rpm rpmlint:rpmlint; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	[ "$(id -u)" = 0 ] || { say "run as root, or install: ${missing[*]}"; exit 1; }
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# tests/env/testenv takes rpm (with python3-rpm 4.20) from trixie; bookworm's
# rpmlint 2.4 cannot read packages through those bindings ("'rpm.hdr' object
# has no attribute 'dsFromHeader'"), trixie's 2.7 can.
if want rpm && dpkg --compare-versions "$(dpkg-query -W -f='${Version}' python3-rpm 2>/dev/null || echo 0)" ge 4.20 &&
	dpkg --compare-versions "$(dpkg-query -W -f='${Version}' rpmlint)" lt 2.7; then
	say "installing rpmlint from trixie, to match python3-rpm"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t trixie rpmlint >/dev/null
fi
command -v cargo >/dev/null || { say "cargo is not on PATH"; exit 1; }

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
	[ "$(command -v cargo)" = /usr/bin/cargo ] || opts+=(--build-profiles=pkg.deploy-agent.rustup)
	dbo=${DEB_BUILD_OPTIONS:-}
	[ -z "$nocheck" ] || dbo="nocheck $dbo"
	say "dpkg-buildpackage ${opts[*]}"
	DEB_BUILD_OPTIONS=$dbo dpkg-buildpackage "${opts[@]}" >"$work/dpkg-buildpackage.log" 2>&1 ||
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
	say "rpmbuild -bb ${rpmopts[*]:0:2}"
	rm -rf "$work/rpmbuild"
	# Debian's hardening flags for the C code that crates build (ring), as
	# Fedora's %set_build_flags gives Fedora's; identical to what dh exports
	# for the deb, so cargo reuses the deb's build here.
	(
		eval "$(dpkg-buildflags --export=sh)"
		rpmbuild -bb "${rpmopts[@]}" rpm/deploy-agent.spec
	) >"$work/rpmbuild.log" 2>&1 ||
		{ tail -n 40 "$work/rpmbuild.log" >&2; say "rpm build failed (log: $work/rpmbuild.log)"; exit 1; }
	rpm=$(find "$work/rpmbuild/RPMS" -name "deploy-agent-$version-*.rpm" | head -n1)
	mv "$rpm" "$out/"
	rpm=$out/$(basename "$rpm")
	step "rpm build"
fi

# ---------------------------------------------------------------- checks
status=0
if [ -n "$deb" ]; then
	say "lintian $(basename "$deb")"
	lintian -I --fail-on error "$deb" >"$out/lintian.txt" 2>&1 || status=1
	sed 's/^/  /' "$out/lintian.txt" >&2
	say "lintian: $(grep -c '^E:' "$out/lintian.txt" || true) errors, $(grep -c '^W:' "$out/lintian.txt" || true) warnings, $(grep -c '^I:' "$out/lintian.txt" || true) info"

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
fi
step "lintian, rpmlint, verify"

{
	[ -z "$deb" ] || printf '%-44s %9s bytes, Installed-Size %s KiB\n' "$(basename "$deb")" "$(stat -c %s "$deb")" "$(dpkg-deb -f "$deb" Installed-Size)"
	[ -z "$rpm" ] || printf '%-44s %9s bytes, installed %s bytes\n' "$(basename "$rpm")" "$(stat -c %s "$rpm")" "$(rpm -qp --qf '%{SIZE}' "$rpm" 2>/dev/null)"
} | tee "$out/sizes.txt" >&2
timings+=("$(printf '%-28s %4ss' total $(($(date +%s) - t_start)))")
printf '  %s\n' "${timings[@]}" >&2
[ $status = 0 ] || say "FAILED (see above)"
exit $status

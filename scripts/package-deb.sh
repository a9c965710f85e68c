#!/usr/bin/env bash
# Builds the tb-agent Debian package for this machine's architecture.
#
#   scripts/package-deb.sh [--out DIR] [--no-build] [--lintian]
#
#   --out DIR    where the .deb goes (default .build/deb); its path is the last line printed on stdout
#   --no-build   package the release binary already in .build-release (fails when there is none)
#   --lintian    run lintian on the result (installs the Debian package lintian when missing)
#   VERSION_SUFFIX=+1 scripts/package-deb.sh    appends to the version (`tb-agent --version`), e.g. for an upgrade test
#
# The package holds the release binary (static Swift standard library, stripped), the systemd unit, the udev rule for
# the status LED, a sysusers.d entry (user tb-agent in group gpio), the board profiles, and a default
# /etc/tb-agent/config.toml (a dpkg conffile: upgrades keep the administrator's edits). The default configuration is
# board/deb/config.toml, a commented file that check-config refuses until the server host, the provision device key
# and the provision secret are filled in; so the freshly installed service is enabled but not started. (`tb-agent
# setup` cannot provide it: it writes a finished file from answers, and the package cannot know them.)
# Depends is computed from the binary's NEEDED libraries: each is mapped to its Debian package with `dpkg -S`, and
# versioned with dpkg-shlibdeps when dpkg-dev is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"

out="$root/.build/deb"
build=true
run_lintian=false
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --no-build) build=false; shift ;;
        --lintian) run_lintian=true; shift ;;
        -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package-deb.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

log() { printf '== %s\n' "$*" >&2; }

# troff for the manual page: `tb-agent --help`, then `tb-agent help SUBCOMMAND` for every subcommand it lists.
manual_page() {
    local bin=$1 version=$2 date=$3
    local escape='s/\\/\\e/g; s/^[.'"'"']/\\\&&/'
    printf '.TH TB-AGENT 1 "%s" "tb-agent %s" "User Commands"\n' "$(date -u -d "$date" +%Y-%m-%d)" "$version"
    printf '.SH NAME\ntb-agent \\- ThingsBoard device agent for Linux single-board computers\n'
    printf '.SH SYNOPSIS\n.B tb-agent\n.I subcommand\n.RI [ options ]\n'
    printf '.SH DESCRIPTION\n.nf\n'
    "$bin" --help | sed "$escape"
    printf '.fi\n'
    printf '.SH SUBCOMMANDS\n'
    local sub
    for sub in $("$bin" --help | awk '/^SUBCOMMANDS:/ { on = 1; next } on && /^  [a-z]/ { print $1 }'); do
        printf '.SS %s\n.nf\n' "$sub"
        "$bin" help "$sub" | sed "$escape"
        printf '.fi\n'
    done
    printf '.SH FILES\n.TP\n/etc/tb-agent/config.toml\nthe configuration (mode 0640, group tb-agent)\n'
    printf '.TP\n/var/lib/tb-agent\nissued credentials and the telemetry spool\n'
    printf '.TP\n/usr/share/tb-agent/boards\nboard profiles\n'
    printf '.TP\n/usr/share/doc/tb-agent/examples\nexample configurations, one per board\n'
    printf '.SH SEE ALSO\n.BR systemctl (1),\n.BR journalctl (1)\n'
}
die() { printf 'package-deb.sh: %s\n' "$*" >&2; exit 1; }

for tool in dpkg-deb dpkg strip objdump; do
    command -v "$tool" >/dev/null || die "'$tool' is missing; install dpkg and binutils"
done

scratch=.build-release
binary=$scratch/release/tb-agent
if $build; then
    log "building tb-agent (release, static Swift standard library) in $scratch"
    mkdir -p "$scratch"
    # -z now with relro: a read-only GOT after start-up (Debian's "bindnow" hardening).
    if ! swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product tb-agent \
        -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now > "$scratch/package-build.log" 2>&1; then
        grep -vE '^\[[0-9]+/[0-9]+\] ' "$scratch/package-build.log" >&2
        die "the release build failed (log: $scratch/package-build.log)"
    fi
fi
[ -x "$binary" ] || die "$binary is missing; run without --no-build"

# The first line is the version; the second names the libgpiod API the binary was built for.
version_output=$("$binary" --version) || die "$binary --version failed"
upstream_version=${version_output%%$'\n'*}
version="${upstream_version}${VERSION_SUFFIX:-}"
arch=$(dpkg --print-architecture)
package=tb-agent
deb="$out/${package}_${version}_${arch}.deb"

stage=$(mktemp -d "${TMPDIR:-/tmp}/tb-agent-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/$package
log "staging $package $version ($arch) in $pkg"

install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/lib/udev/rules.d" \
    "$pkg/usr/lib/sysusers.d" "$pkg/etc/tb-agent" "$pkg/usr/share/tb-agent/boards" \
    "$pkg/usr/share/doc/$package/examples" "$pkg/usr/share/doc/$package/simulated"

# The binary, stripped as dh_strip does it (the Swift metadata sections are kept: they are not notes or comments).
install -m 0755 "$binary" "$pkg/usr/bin/tb-agent"
strip --remove-section=.comment --remove-section=.note "$pkg/usr/bin/tb-agent"
"$pkg/usr/bin/tb-agent" --version >/dev/null || die "the stripped binary does not run"

install -m 0644 board/tb-agent.service "$pkg/lib/systemd/system/tb-agent.service"
install -m 0644 board/99-tb-agent-leds.rules "$pkg/lib/udev/rules.d/99-tb-agent-leds.rules"
install -m 0644 board/deb/sysusers.conf "$pkg/usr/lib/sysusers.d/tb-agent.conf"
# 0640: it may hold the provision secret. dpkg-deb --root-owner-group makes it root:root; postinst gives it the
# group tb-agent (the user does not exist when dpkg unpacks).
install -m 0640 board/deb/config.toml "$pkg/etc/tb-agent/config.toml"
install -m 0644 board/*.toml "$pkg/usr/share/tb-agent/boards/"

doc=$pkg/usr/share/doc/$package
install -m 0644 README.md "$doc/README.md"
install -m 0644 board/deb/copyright "$doc/copyright"
install -m 0644 board/examples/* "$doc/examples/"
# The simulated board's system root, which examples/simulated.toml refers to as ../simulated/sysroot.
cp -R board/simulated/sysroot "$doc/simulated/sysroot"
find "$doc/simulated" -type d -exec chmod 0755 {} + && find "$doc/simulated" -type f -exec chmod 0644 {} +
# A native package's changelog (Debian policy 12.7).
date_rfc2822=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
# Set DEB_MAINTAINER="Name <address>" for a package that is published.
maintainer="${DEB_MAINTAINER:-tb-agent maintainers <tb-agent@example.org>}"
{
    echo "$package ($version) unstable; urgency=medium"
    echo
    echo "  * Built from $(git describe --always --dirty 2>/dev/null || echo 'a source tree') by scripts/package-deb.sh."
    echo
    echo " -- $maintainer  $date_rfc2822"
} | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# A manual page made from the command's own help, so that it never disagrees with the binary.
install -d -m 0755 "$pkg/usr/share/man/man1" "$pkg/usr/share/lintian/overrides"
manual_page "$pkg/usr/bin/tb-agent" "$upstream_version" "$date_rfc2822" | gzip -9n > "$pkg/usr/share/man/man1/tb-agent.1.gz"
chmod 0644 "$pkg/usr/share/man/man1/tb-agent.1.gz"
install -m 0644 board/deb/lintian-overrides "$pkg/usr/share/lintian/overrides/$package"

for script in postinst prerm postrm; do
    install -m 0755 "board/deb/$script" "$pkg/DEBIAN/$script"
done
echo /etc/tb-agent/config.toml > "$pkg/DEBIAN/conffiles"

# Depends: the package of every NEEDED library (dpkg -S), versioned by dpkg-shlibdeps when it is installed.
needed=$(objdump -p "$pkg/usr/bin/tb-agent" | awk '$1 == "NEEDED" { print $2 }')
[ -n "$needed" ] || die "objdump found no NEEDED libraries in the binary"
# The library cache is read once, whole: `ldconfig -p | awk '... exit'` failed at random under pipefail (awk
# exits at the first match, ldconfig's next write gets SIGPIPE, and set -e ended the script without a word).
libraries=$(ldconfig -p)
packages=()
for lib in $needed; do
    path=$(awk -v lib="$lib" '$1 == lib && $NF ~ /^\// && path == "" { path = $NF } END { print path }' <<< "$libraries")
    [ -n "$path" ] || die "cannot find $lib on this machine (ldconfig -p); install the package that provides it"
    # With merged /usr a library is found under /lib or /usr/lib, and its package names one of the two.
    owner=""
    for candidate in "$path" "/usr${path#/usr}" "${path#/usr}" "$(readlink -f "$path")"; do
        # The first line (as `head -1` would give, without a pipe that SIGPIPE can break).
        owner=$(dpkg -S "$candidate" 2>/dev/null) && owner=${owner%%$'\n'*} && break
    done
    [ -n "$owner" ] || die "no Debian package owns $path ($lib)"
    owner=${owner%%:*}
    log "  $lib -> $path -> $owner"
    packages+=("$owner")
done
depends=$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd, | sed 's/,/, /g')
if command -v dpkg-shlibdeps >/dev/null; then
    # dpkg-shlibdeps reads debian/control from the current folder: give it a minimal one.
    mkdir -p "$stage/src/debian"
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" > "$stage/src/debian/control"
    if versioned=$(cd "$stage/src" && dpkg-shlibdeps -O "$pkg/usr/bin/tb-agent" 2>/dev/null); then
        versioned=${versioned#shlibs:Depends=}
        [ -n "$versioned" ] && depends=$versioned
    else
        log "dpkg-shlibdeps failed; Depends stays unversioned"
    fi
fi
# adduser: postinst falls back to it where systemd-sysusers is missing; deluser for purge.
depends="$depends, adduser"
log "Depends: $depends"

installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Section: net
Priority: optional
Description: ThingsBoard device agent for Linux single-board computers
 tb-agent connects GPIO-attached sensors of a Raspberry Pi class board to a
 ThingsBoard server over MQTT. On first start it derives the device name
 from the hardware, provisions itself with the server, keeps the issued
 credentials on flash across power cuts and publishes telemetry.
 .
 The service runs as the user tb-agent (group gpio). It starts once
 /etc/tb-agent/config.toml passes "tb-agent check-config".
EOF
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"

log "building $deb"
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2

if $run_lintian; then
    if ! command -v lintian >/dev/null; then
        # shellcheck source=scripts/lib/deps.sh
        . "$root/scripts/lib/deps.sh"
        ensure_apt_packages lintian
    fi
    log "lintian"
    # Overrides with reasons: board/deb/lintian-overrides (shipped in the package, where lintian reads them).
    lintian --info --display-info --tag-display-limit 0 --fail-on error,warning "$deb" >&2 \
        || die "lintian reported errors or warnings (above); fix them or add an override with its reason"
fi

echo "$deb"

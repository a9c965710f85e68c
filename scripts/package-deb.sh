#!/usr/bin/env bash
# Builds tb-agent Debian packages: one for this machine's architecture, and arm64 ones for Raspberry Pi OS from the
# aarch64 binary that scripts/cross-build.sh makes on an x86_64 machine.
#
#   scripts/package-deb.sh [--arch LIST] [--out DIR] [--no-build] [--lintian]
#
#   --arch LIST  the packages to make, comma-separated (or --arch given again), in this order:
#                  native          this machine's architecture (`amd64` says the same on an amd64 machine), built
#                                  with the Swift on PATH or in /opt/swift: tb-agent_VERSION_ARCH.deb
#                  arm64-trixie    Raspberry Pi OS trixie / Debian 13 (libgpiod v2): tb-agent_VERSION+deb13_arm64.deb
#                  arm64-bookworm  Raspberry Pi OS bookworm / Debian 12 (libgpiod v1): tb-agent_VERSION+deb12_arm64.deb
#                  all             the three
#                default: native,arm64-trixie on x86_64 (what scripts/package-test.sh tests), native elsewhere
#   --out DIR    where the .debs go (default .build/deb); the last lines printed on stdout are their paths, one a line
#   --no-build   package the release binaries already built (.build-release, .build-aarch64-TARGET)
#   --lintian    run lintian on each result (installs the Debian package lintian when missing)
#   VERSION_SUFFIX=+1 scripts/package-deb.sh    appends to the versions (`tb-agent --version`), e.g. for an upgrade test
#   TB_DEB_COMPRESSION=none|gzip|xz             dpkg-deb's compressor (default xz, about 40 s of CPU per package:
#                                               the test's upgrade packages are made with none)
#
# Building an arm64 package runs scripts/cross-build.sh (root; its first run sets up ~8 GB in .build-cross/);
# TB_CROSS_CACHE is passed on. Packaging an arm64 binary runs it under qemu-user (`--version`, the manual page).
#
# Each package holds the release binary (static Swift standard library, stripped), the systemd unit, the udev rule
# for the status LED, a sysusers.d entry (user tb-agent in group gpio), the board profiles, and a default
# /etc/tb-agent/config.toml (a dpkg conffile: upgrades keep the administrator's edits). The default configuration is
# board/deb/config.toml, a commented file that check-config refuses until the server host, the provision device key
# and the provision secret are filled in; so the freshly installed service is enabled but not started. (`tb-agent
# setup` cannot provide it: it writes a finished file from answers, and the package cannot know them.)
# Depends is computed from the binary's NEEDED libraries: each is mapped to the Debian package that ships it (this
# machine's dpkg database, or for arm64 the one cross-build.sh keeps in the target's sysroot), and versioned with
# dpkg-shlibdeps from those packages' symbols and shlibs files.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"

out="$root/.build/deb"
build=true
run_lintian=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) IFS=, read -ra more <<< "${2:?--arch needs a list}"; targets+=("${more[@]}"); shift 2 ;;
        --arch=*) IFS=, read -ra more <<< "${1#--arch=}"; targets+=("${more[@]}"); shift ;;
        --out) out=$2; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --no-build) build=false; shift ;;
        --lintian) run_lintian=true; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "package-deb.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
native_arch=$(dpkg --print-architecture)
if [ ${#targets[@]} -eq 0 ]; then
    targets=(native)
    [ "$(uname -m)" = x86_64 ] && targets+=(arm64-trixie)
fi
# Normalised, in a fixed order, each once.
wanted=" "
for t in "${targets[@]}"; do
    case "$t" in
        native | "$native_arch") wanted+="native " ;;
        arm64-trixie | arm64-bookworm) wanted+="$t " ;;
        all) wanted+="native arm64-trixie arm64-bookworm " ;;
        *) echo "package-deb.sh: --arch takes native, $native_arch, arm64-trixie, arm64-bookworm or all, not '$t'" >&2; exit 64 ;;
    esac
done
targets=()
for t in native arm64-trixie arm64-bookworm; do
    case "$wanted" in *" $t "*) targets+=("$t") ;; esac
done
compression=${TB_DEB_COMPRESSION:-xz}
case "$compression" in xz | gzip | none) ;; *) echo "package-deb.sh: TB_DEB_COMPRESSION is xz, gzip or none" >&2; exit 64 ;; esac
mkdir -p "$out"
out=$(cd "$out" && pwd)

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'package-deb.sh: %s\n' "$*" >&2; exit 1; }

# Runs the binary being packaged: directly, or for an arm64 package under qemu-user with the target's sysroot as
# its root for libraries (no binfmt_misc needed).
qemu_root=""
run_bin() {
    if [ -n "$qemu_root" ]; then qemu-aarch64-static -L "$qemu_root" "$@"; else "$@"; fi
}

# troff for the manual page: `tb-agent --help`, then `tb-agent help SUBCOMMAND` for every subcommand it lists.
manual_page() {
    local bin=$1 version=$2 date=$3
    local escape='s/\\/\\e/g; s/^[.'"'"']/\\\&&/'
    local help
    help=$(run_bin "$bin" --help)
    printf '.TH TB-AGENT 1 "%s" "tb-agent %s" "User Commands"\n' "$(date -u -d "$date" +%Y-%m-%d)" "$version"
    printf '.SH NAME\ntb-agent \\- ThingsBoard device agent for Linux single-board computers\n'
    printf '.SH SYNOPSIS\n.B tb-agent\n.I subcommand\n.RI [ options ]\n'
    printf '.SH DESCRIPTION\n.nf\n'
    sed "$escape" <<< "$help"
    printf '.fi\n'
    printf '.SH SUBCOMMANDS\n'
    local sub
    # shellcheck disable=SC2013 # subcommand names are single words
    for sub in $(awk '/^SUBCOMMANDS:/ { on = 1; next } on && /^  [a-z]/ { print $1 }' <<< "$help"); do
        printf '.SS %s\n.nf\n' "$sub"
        run_bin "$bin" help "$sub" | sed "$escape"
        printf '.fi\n'
    done
    printf '.SH FILES\n.TP\n/etc/tb-agent/config.toml\nthe configuration (mode 0640, group tb-agent)\n'
    printf '.TP\n/var/lib/tb-agent\nissued credentials and the telemetry spool\n'
    printf '.TP\n/usr/share/tb-agent/boards\nboard profiles\n'
    printf '.TP\n/usr/share/doc/tb-agent/examples\nexample configurations, one per board\n'
    printf '.SH SEE ALSO\n.BR systemctl (1),\n.BR journalctl (1)\n'
}

for tool in dpkg-deb dpkg strip objdump; do
    command -v "$tool" >/dev/null || die "'$tool' is missing; install dpkg and binutils"
done
case " ${targets[*]} " in
    *" arm64-"*)
        # qemu-user for the binary, binutils that know aarch64 (strip), dpkg-shlibdeps for the versioned Depends.
        ensure_apt_packages qemu-user-static binutils-aarch64-linux-gnu dpkg-dev ;;
esac

# The first line of `tb-agent --version` is the version; the second names the libgpiod API it was built for.
read_version() {
    local output
    output=$(run_bin "$1" --version) || die "$1 --version failed"
    output=${output%%$'\n'*}
    [[ $output =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "$1 --version printed '$output' on its first line, not a version"
    echo "$output"
}

# The package that ships PATH (absolute, in the root the admin folder describes): with merged /usr a library is
# found under /lib or /usr/lib, and its package names one of the two.
owner_of() {
    local path=$1 realpath=$2 admin=$3 candidate owner
    for candidate in "$path" "/usr${path#/usr}" "${path#/usr}" "$realpath"; do
        # The first line, as `head -1` would give it, without a pipe that SIGPIPE can break under pipefail.
        if owner=$(dpkg-query --admindir="$admin" -S "$candidate" 2>/dev/null); then
            owner=${owner%%$'\n'*}
            echo "${owner%%: *}"   # "libc6:arm64: /usr/lib/…/libc.so.6" names libc6:arm64
            return 0
        fi
    done
    return 1
}

# make_package TARGET: builds (unless --no-build), stages and packs one .deb; prints its path.
make_package() {
    local target=$1 binary arch version_tag="" unit_dir=/lib/systemd/system udev_dir=/lib/udev/rules.d
    local sysroot="" admin=/var/lib/dpkg strip_tool=strip
    qemu_root=""
    case "$target" in
        native)
            local scratch=.build-release
            binary=$scratch/release/tb-agent
            arch=$native_arch
            if $build; then
                ensure_swift
                log "building tb-agent (release, static Swift standard library) in $scratch"
                mkdir -p "$scratch"
                # -z now with relro: a read-only GOT after start-up (Debian's "bindnow" hardening).
                if ! swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product tb-agent \
                    -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now > "$scratch/package-build.log" 2>&1; then
                    grep -vE '^\[[0-9]+/[0-9]+\] ' "$scratch/package-build.log" >&2
                    die "the release build failed (log: $scratch/package-build.log)"
                fi
            fi
            ;;
        arm64-*)
            local suite=${target#arm64-} env
            arch=arm64
            case "$suite" in
                trixie) version_tag=+deb13
                    # Trixie's packages ship nothing in the aliased /lib (merged /usr, DEP 17).
                    unit_dir=/usr/lib/systemd/system; udev_dir=/usr/lib/udev/rules.d ;;
                bookworm) version_tag=+deb12 ;;
            esac
            [ "$(uname -m)" = x86_64 ] || die "$target: arm64 packages are cross-built on x86_64; on the board use --arch native"
            if $build; then
                log "building tb-agent for $target with scripts/cross-build.sh --target $suite"
                scripts/cross-build.sh --target "$suite" >&2 || die "scripts/cross-build.sh --target $suite failed"
            fi
            env=$(scripts/cross-build.sh --target "$suite" --env) || die "scripts/cross-build.sh --env failed"
            local TB_CROSS_SYSROOT="" TB_CROSS_BINARY=""
            eval "$env"
            sysroot=$TB_CROSS_SYSROOT
            binary=$TB_CROSS_BINARY
            admin=$sysroot/var/lib/dpkg
            [ -f "$admin/info/format" ] || die "$sysroot has no package database; run scripts/cross-build.sh --target $suite (it records one)"
            qemu_root=$sysroot
            strip_tool=aarch64-linux-gnu-strip
            ;;
    esac
    [ -x "$binary" ] || die "$binary is missing; run without --no-build"

    local upstream_version version package=tb-agent deb
    upstream_version=$(read_version "$binary")
    version="${upstream_version}${version_tag}${VERSION_SUFFIX:-}"
    deb="$out/${package}_${version}_${arch}.deb"

    local stage pkg
    stage=$(mktemp -d "${TMPDIR:-/tmp}/tb-agent-deb.XXXXXX")
    stages+=("$stage")
    pkg=$stage/$package
    log "staging $package $version ($arch, $target) in $pkg"

    install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg$unit_dir" "$pkg$udev_dir" \
        "$pkg/usr/lib/sysusers.d" "$pkg/etc/tb-agent" "$pkg/usr/share/tb-agent/boards" \
        "$pkg/usr/share/doc/$package/examples" "$pkg/usr/share/doc/$package/simulated"

    # The binary, stripped as dh_strip does it (the Swift metadata sections are kept: they are not notes or comments).
    install -m 0755 "$binary" "$pkg/usr/bin/tb-agent"
    "$strip_tool" --remove-section=.comment --remove-section=.note "$pkg/usr/bin/tb-agent"
    run_bin "$pkg/usr/bin/tb-agent" --version >/dev/null || die "the stripped binary does not run"

    install -m 0644 board/tb-agent.service "$pkg$unit_dir/tb-agent.service"
    # Firmware updates: the path unit watches for the agent's ticket and starts the root step (apply-update).
    install -m 0644 board/tb-agent-update.path "$pkg$unit_dir/tb-agent-update.path"
    install -m 0644 board/tb-agent-update.service "$pkg$unit_dir/tb-agent-update.service"
    install -m 0644 board/99-tb-agent-leds.rules "$pkg$udev_dir/99-tb-agent-leds.rules"
    install -m 0644 board/deb/sysusers.conf "$pkg/usr/lib/sysusers.d/tb-agent.conf"
    # 0640: it may hold the provision secret. dpkg-deb --root-owner-group makes it root:root; postinst gives it the
    # group tb-agent (the user does not exist when dpkg unpacks).
    install -m 0640 board/deb/config.toml "$pkg/etc/tb-agent/config.toml"
    # The same text as shipped, for the administrator to compare with, and for apply-update: rebuilding the installed
    # package as the version to roll back to, it packs this as the conffile, so that dpkg keeps the edited one.
    install -m 0644 board/deb/config.toml "$pkg/usr/share/tb-agent/config.toml"
    install -m 0644 board/*.toml "$pkg/usr/share/tb-agent/boards/"

    local doc=$pkg/usr/share/doc/$package
    install -m 0644 README.md "$doc/README.md"
    install -m 0644 board/deb/copyright "$doc/copyright"
    install -m 0644 board/examples/* "$doc/examples/"
    # The simulated board's system root, which examples/simulated.toml refers to as ../simulated/sysroot.
    cp -R board/simulated/sysroot "$doc/simulated/sysroot"
    find "$doc/simulated" -type d -exec chmod 0755 {} + && find "$doc/simulated" -type f -exec chmod 0644 {} +
    # A native package's changelog (Debian policy 12.7).
    local date_rfc2822 maintainer
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
    # The overrides name the unit's path, which differs where it lives in /usr/lib.
    sed "s|\[lib/systemd/system/|[${unit_dir#/}/|" board/deb/lintian-overrides > "$pkg/usr/share/lintian/overrides/$package"
    chmod 0644 "$pkg/usr/share/lintian/overrides/$package"

    local script
    for script in postinst prerm postrm; do
        install -m 0755 "board/deb/$script" "$pkg/DEBIAN/$script"
    done
    echo /etc/tb-agent/config.toml > "$pkg/DEBIAN/conffiles"

    # Depends: the package of every NEEDED library, found here (ldconfig) or in the target's sysroot, then named by
    # the matching package database.
    local needed lib path realpath owner libraries="" packages=() owners=()
    needed=$(objdump -p "$pkg/usr/bin/tb-agent" | awk '$1 == "NEEDED" { print $2 }')
    [ -n "$needed" ] || die "objdump found no NEEDED libraries in the binary"
    # Read once, whole: `ldconfig -p | awk '... exit'` failed at random under pipefail (awk left at the first match,
    # ldconfig's next write got SIGPIPE, and set -e ended the script without a word).
    if [ -z "$sysroot" ]; then libraries=$(ldconfig -p); fi
    for lib in $needed; do
        if [ -z "$sysroot" ]; then
            path=$(awk -v lib="$lib" '$1 == lib && $NF ~ /^\// && path == "" { path = $NF } END { print path }' <<< "$libraries")
            [ -n "$path" ] || die "cannot find $lib on this machine (ldconfig -p); install the package that provides it"
            realpath=$(readlink -f "$path")
        else
            path=""
            local dir
            for dir in /usr/lib/aarch64-linux-gnu /lib/aarch64-linux-gnu /usr/lib /lib; do
                if [ -e "$sysroot$dir/$lib" ]; then path=$dir/$lib; break; fi
            done
            [ -n "$path" ] || die "cannot find $lib in $sysroot; add the package that provides it to cross-build.sh's sysroot"
            realpath=$(readlink -f "$sysroot$path")
            realpath=${realpath#"$sysroot"}
        fi
        owner=$(owner_of "$path" "$realpath" "$admin") || die "no Debian package owns $path ($lib) in $admin"
        log "  $lib -> $path -> $owner"
        owners+=("$owner")
        packages+=("${owner%%:*}")
    done
    local depends versioned
    depends=$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd, | sed 's/,/, /g')
    # dpkg-shlibdeps reads debian/control from the current folder: give it a minimal one.
    mkdir -p "$stage/src/debian"
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" > "$stage/src/debian/control"
    local shlibdeps=(dpkg-shlibdeps -O)
    if [ -n "$sysroot" ]; then
        # The target's libraries are not this machine's: dpkg-shlibdeps looks for them in the sysroot (-S) and,
        # finding them in no package installed here, reads the symbols and shlibs of "a package being built"
        # (debian/*/DEBIAN/), which are here those of the packages that ship them in the target.
        local lib_pkg=$stage/src/debian/target-libraries/DEBIAN kind file
        mkdir -p "$lib_pkg"
        for kind in symbols shlibs; do
            : > "$lib_pkg/$kind"
            for owner in $(printf '%s\n' "${owners[@]}" | sort -u); do
                file=$(dpkg-query --admindir="$admin" --control-path "$owner" "$kind" 2>/dev/null) || true
                if [ -n "$file" ]; then cat "$file" >> "$lib_pkg/$kind"; fi
            done
        done
        shlibdeps=(env DEB_HOST_ARCH="$arch" dpkg-shlibdeps -O "-S$sysroot")
    fi
    if command -v dpkg-shlibdeps >/dev/null; then
        if versioned=$(cd "$stage/src" && "${shlibdeps[@]}" "$pkg/usr/bin/tb-agent" 2> "$stage/shlibdeps.log"); then
            versioned=${versioned#shlibs:Depends=}
            [ -n "$versioned" ] && depends=$versioned
        elif [ -n "$sysroot" ]; then
            cat "$stage/shlibdeps.log" >&2
            die "dpkg-shlibdeps failed for the $target binary"
        else
            log "dpkg-shlibdeps failed; Depends stays unversioned"
        fi
    fi
    # adduser: postinst falls back to it where systemd-sysusers is missing; deluser for purge.
    depends="$depends, adduser"
    log "Depends: $depends"

    local installed_size
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
    dpkg-deb --root-owner-group "-Z$compression" --build "$pkg" "$deb" >&2

    if $run_lintian; then
        log "lintian $(basename "$deb")"
        # Overrides with reasons: board/deb/lintian-overrides (shipped in the package, where lintian reads them).
        lintian --info --display-info --tag-display-limit 0 --fail-on error,warning "$deb" >&2 \
            || die "lintian reported errors or warnings (above); fix them or add an override with its reason"
    fi
    rm -rf "$stage"
    made+=("$deb")
}

stages=()
made=()
trap 'rm -rf ${stages[@]+"${stages[@]}"}' EXIT
if $run_lintian; then ensure_apt_packages lintian; fi
for target in "${targets[@]}"; do
    make_package "$target"
done
printf '%s\n' "${made[@]}"

#!/usr/bin/env bash
# Builds tb-agent for aarch64 Raspberry Pi OS from this x86_64 Debian machine, with nothing but Debian's archive:
# the compiler is the `swiftlang` that Debian sid serves (run in a sid chroot, since it needs sid's glibc), the
# aarch64 Swift runtime is sid's `swiftlang:arm64` of the very same version, and the C libraries come from an
# arm64 sysroot of the target release, unpacked without emulation. What was measured, and the traps, are in
# scripts/cross-build.md.
#
#   scripts/cross-build.sh                      set up (once; cached in .build-cross/) and build the release
#                                               tb-agent for trixie (libgpiod v2): .build-aarch64-trixie/release/tb-agent
#   scripts/cross-build.sh --target bookworm    the same against bookworm's C libraries (libgpiod v1, glibc 2.36)
#   scripts/cross-build.sh --tests              also build the Swift test bundle (debug) for aarch64
#   scripts/cross-build.sh --setup-only         only the toolchain, runtime, sysroot and SDK
#   scripts/cross-build.sh --env                print shell assignments other scripts source (sysroot, runtime, binary)
#   scripts/cross-build.sh --refresh            forget the cached toolchain: set up again from today's sid
#
# The toolchain follows sid: a new swiftlang there means a new set-up here (the compiler and the aarch64 runtime
# must be the same build). Needs root (debootstrap, chroot, a private mount namespace) and ~5 GB of disk.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
cache="${TB_CROSS_CACHE:-$root/.build-cross}"   # worktrees may share one set-up
target=trixie
build_tests=false
setup_only=false
print_env=false
refresh=false
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target=${2:?--target needs trixie or bookworm}; shift ;;
        --tests) build_tests=true ;;
        --setup-only) setup_only=true ;;
        --env) print_env=true ;;
        --refresh) refresh=true ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "cross-build: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
    shift
done
case "$target" in
    trixie) gcc_major=14 ;;
    bookworm) gcc_major=12 ;;
    *) echo "cross-build: --target must be trixie or bookworm, not '$target'" >&2; exit 64 ;;
esac

started=$(date +%s)
log() { printf '== cross-build: %s (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }
die() { printf 'cross-build: FAILED: %s\n' "$*" >&2; exit 1; }

chroot_dir="$cache/sid"
runtime="$cache/runtime-arm64"
sysroot="$cache/sysroot-$target-arm64"
sdks="$cache/sdks"
sdk_name="tb-aarch64-$target"
scratch="$root/.build-aarch64-$target"
binary="$scratch/release/tb-agent"

if $print_env; then
    cat <<EOF
TB_CROSS_SYSROOT='$sysroot'
TB_CROSS_RUNTIME='$runtime'
TB_CROSS_CHROOT='$chroot_dir'
TB_CROSS_SCRATCH='$scratch'
TB_CROSS_BINARY='$binary'
EOF
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mount): run it with sudo"
[ "$(uname -m)" = x86_64 ] || die "this script cross-compiles from x86_64; on an arm64 board build natively (README)"

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_apt_packages debootstrap qemu-user-static binfmt-support binutils file

# The Debian mirror this machine's apt already uses (scripts/lib/deps.sh; the same archive serves bookworm, trixie
# and sid).
mirror=$(debian_mirror) || true
[ -n "$mirror" ] || die "cannot tell which Debian mirror apt uses (apt-cache policy shows no main suite of this release); set TB_DEBIAN_MIRROR"

# Runs a command inside the sid chroot, in a private mount namespace: /proc, /dev, this repository (at the same
# path), the cache when it lies outside the repository (TB_CROSS_CACHE shared by worktrees: the SDK bundle names
# the sysroot by its path) and the local Swift package mirror are mounted there for the command's lifetime only,
# so nothing stays mounted when it ends, whatever way it ends.
in_chroot() {
    local packages_mirror="" shared_cache=""
    [ -d /opt/swift-packages ] && packages_mirror=/opt/swift-packages
    case "$cache/" in "$root/"*) ;; *) shared_cache=$cache; mkdir -p "$chroot_dir$cache" ;; esac
    mkdir -p "$chroot_dir$root" "$chroot_dir/opt/swift-packages"
    unshare --mount --propagation private -- /bin/sh -c '
        set -e
        c=$1; r=$2; m=$3; k=$4; shift 4
        mount -t proc proc "$c/proc"
        mount --rbind /dev "$c/dev"
        mount --bind "$r" "$c$r"
        [ -z "$k" ] || mount --bind "$k" "$c$k"
        [ -n "$m" ] && mount --bind "$m" "$c/opt/swift-packages"
        exec chroot "$c" /usr/bin/env -i HOME=/root PATH=/usr/libexec/swift/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 "$@"
    ' sh "$chroot_dir" "$root" "$packages_mirror" "$shared_cache" "$@"
}

# 1. The build chroot: sid with its swiftlang.
if $refresh; then rm -rf "$chroot_dir/.tb-ready" "$runtime" "$cache"/sysroot-*-arm64 "$sdks"; fi
if [ ! -f "$chroot_dir/.tb-ready" ]; then
    # Never rm -rf a folder something is mounted under (a bind of the repository would be deleted with it).
    if findmnt -rn -o TARGET | grep -q "^$chroot_dir/"; then die "something is still mounted under $chroot_dir"; fi
    rm -rf "$chroot_dir"
    log "debootstrap sid (the build chroot) from $mirror"
    debootstrap --variant=minbase sid "$chroot_dir" "$mirror" > "$cache.debootstrap-sid.log" 2>&1 \
        || { tail -20 "$cache.debootstrap-sid.log" >&2; die "debootstrap sid failed (log: $cache.debootstrap-sid.log)"; }
    mv "$cache.debootstrap-sid.log" "$chroot_dir/debootstrap.log"
    # sid's Release files expire within days; a machine whose mirror lags must still use them.
    echo 'Acquire::Check-Valid-Until "false";' > "$chroot_dir/etc/apt/apt.conf.d/99tb-agent"
    cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
    printf '[url "/opt/swift-packages/"]\n\tinsteadOf = https://github.com/\n' > "$chroot_dir/etc/gitconfig"
    log "installing swiftlang in the chroot"
    in_chroot /bin/sh -c 'dpkg --add-architecture arm64 && apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            swiftlang libc6-dev git pkg-config ca-certificates' > "$chroot_dir/install.log" 2>&1 \
        || { tail -20 "$chroot_dir/install.log" >&2; die "installing swiftlang in the sid chroot failed"; }
    touch "$chroot_dir/.tb-ready"
fi
swift_version=$(in_chroot dpkg-query -W -f='${Version}' swiftlang) || die "swiftlang is not installed in $chroot_dir"
log "compiler: Debian sid swiftlang $swift_version"

# 2. The aarch64 Swift runtime of exactly that version (modules, static libraries, shared libraries, clang's
#    resource folder), unpacked without installing.
if [ "$(cat "$runtime/.version" 2>/dev/null)" != "$swift_version" ]; then
    log "downloading the arm64 Swift runtime $swift_version"
    rm -rf "$runtime" "$cache/debs-runtime"
    mkdir -p "$cache/debs-runtime" "$runtime"
    in_chroot /bin/sh -c "cd '$cache/debs-runtime' && apt-get download -q swiftlang:arm64='$swift_version' libswiftlang:arm64='$swift_version'" \
        > "$cache/debs-runtime/download.log" 2>&1 \
        || { cat "$cache/debs-runtime/download.log" >&2; die "cannot download swiftlang:arm64=$swift_version (has sid moved on mid-way? run again)"; }
    for deb in "$cache"/debs-runtime/*.deb; do
        # Everything but the arm64 compiler's own libraries, its documentation and man pages.
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$runtime" --wildcards --exclude='./usr/share/*' \
            --exclude='./usr/libexec/swift/share/*' --exclude='./usr/libexec/swift/libexec/*' \
            --exclude='./usr/libexec/swift/lib/lib*' --exclude='./usr/libexec/swift/bin/*'
    done
    rm -rf "$cache/debs-runtime"
    echo "$swift_version" > "$runtime/.version"
fi

# 3. The target's sysroot: the C libraries tb-agent links (libmosquitto, libgpiod, OpenSSL, glibc, libstdc++),
#    unpacked from the target release's arm64 packages; no emulation needed.
sysroot_packages="libc6-dev,libgcc-$gcc_major-dev,libstdc++-$gcc_major-dev,libmosquitto-dev,libgpiod-dev,libssl-dev,linux-libc-dev"
# What dpkg would know of the sysroot had it installed the packages: their status, file lists and shared library
# metadata (shlibs, symbols), from which scripts/package-deb.sh computes an arm64 package's Depends.
record_package_database() {   # SYSROOT DEB...
    local s=$1 deb name control f
    shift
    local db=$s/var/lib/dpkg
    control=$(mktemp -d)
    mkdir -p "$db/info"
    : > "$db/status.tb-new"
    for deb in "$@"; do
        name=$(dpkg-deb -f "$deb" Package)
        # dpkg names the files of a Multi-Arch: same package with its architecture.
        if [ "$(dpkg-deb -f "$deb" Multi-Arch)" = same ]; then name="$name:$(dpkg-deb -f "$deb" Architecture)"; fi
        { dpkg-deb -f "$deb" | sed '/^Package:/a Status: install ok installed'; echo; } >> "$db/status.tb-new"
        dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' > "$db/info/$name.list"
        rm -rf "$control" && dpkg-deb -e "$deb" "$control"
        for f in shlibs symbols; do
            if [ -f "$control/$f" ]; then cp "$control/$f" "$db/info/$name.$f"; fi
        done
    done
    mv "$db/status.tb-new" "$db/status"
    echo 1 > "$db/info/format"   # the multiarch layout: files named package:arch
    rm -rf "$control"
    touch "$db/.tb-recorded"
}
if [ "$(cat "$sysroot/.version" 2>/dev/null)" != "$swift_version" ]; then
    log "making the $target arm64 sysroot"
    rm -rf "$sysroot"
    debootstrap --arch=arm64 --foreign --variant=minbase --include="$sysroot_packages" \
        "$target" "$sysroot" "$mirror" > "$cache/debootstrap-$target.log" 2>&1 \
        || { tail -20 "$cache/debootstrap-$target.log" >&2; die "debootstrap --foreign $target arm64 failed"; }
    for deb in "$sysroot"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
    record_package_database "$sysroot" "$sysroot"/var/cache/apt/archives/*.deb
    # No device nodes: under qemu-user (QEMU_LD_PREFIX) a program opening /dev/ptmx must get the machine's own.
    rm -rf "$sysroot"/var/cache/apt/archives/*.deb "$sysroot/debootstrap" "${sysroot:?}/dev"
    # Absolute symlinks (libm.so -> /lib/aarch64-linux-gnu/libm.so.6) would resolve into this machine's own
    # libraries: make every one relative to the sysroot.
    find "$sysroot" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
        dest=$(readlink "$link")
        rel=$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$dest")
        ln -sfn "$rel" "$link"
    done
    mkdir -p "$sysroot/usr/lib"
    cp -a "$runtime/usr/libexec/swift/lib/swift" "$runtime/usr/libexec/swift/lib/swift_static" \
        "$runtime/usr/libexec/swift/lib/clang" "$sysroot/usr/lib/"
    if [ "$target" = bookworm ]; then
        # The static Swift runtime built on sid calls glibc 2.38 symbols that bookworm's 2.36 lacks:
        # six one-line wrappers onto the older names, linked into the binary.
        mkdir -p "$sysroot/usr/lib/tb-glibc-compat"
        cp "$root/scripts/lib/glibc-compat.c" "$sysroot/usr/lib/tb-glibc-compat/"
    fi
    echo "$swift_version" > "$sysroot/.version"
fi
if [ ! -f "$sysroot/var/lib/dpkg/.tb-recorded" ]; then
    # A sysroot made before its package database was kept: download the same packages again (nothing unpacked).
    log "recording the package database of the $target arm64 sysroot"
    debs="$cache/debs-$target-$$"
    rm -rf "$debs"
    debootstrap --arch=arm64 --download-only --variant=minbase --include="$sysroot_packages" \
        "$target" "$debs" "$mirror" > "$cache/debootstrap-$target-database.log" 2>&1 \
        || { tail -20 "$cache/debootstrap-$target-database.log" >&2; die "debootstrap --download-only $target arm64 failed"; }
    record_package_database "$sysroot" "$debs"/var/cache/apt/archives/*.deb
    rm -rf "$debs"
fi

# 4. A Swift SDK bundle (SE-0387) naming that sysroot and runtime; the linker is lld from the same toolchain.
if [ "$(cat "$sdks/$sdk_name.artifactbundle/.version" 2>/dev/null)" != "$swift_version" ]; then
    log "writing the Swift SDK bundle $sdk_name"
    bundle="$sdks/$sdk_name.artifactbundle"
    rm -rf "$bundle"
    mkdir -p "$bundle/$sdk_name"
    cat > "$bundle/info.json" <<EOF
{
  "schemaVersion": "1.0",
  "artifacts": {
    "$sdk_name": {
      "type": "swiftSDK",
      "version": "$swift_version",
      "variants": [ { "path": "$sdk_name", "supportedTriples": ["x86_64-unknown-linux-gnu", "x86_64-pc-linux-gnu"] } ]
    }
  }
}
EOF
    cat > "$bundle/$sdk_name/swift-sdk.json" <<EOF
{
  "schemaVersion": "4.0",
  "targetTriples": {
    "aarch64-unknown-linux-gnu": {
      "sdkRootPath": "$sysroot",
      "swiftResourcesPath": "$sysroot/usr/lib/swift",
      "swiftStaticResourcesPath": "$sysroot/usr/lib/swift_static",
      "toolsetPaths": ["toolset.json"]
    }
  }
}
EOF
    cat > "$bundle/$sdk_name/toolset.json" <<EOF
{
  "schemaVersion": "1.0",
  "rootPath": "/usr/libexec/swift/bin",
  "swiftCompiler": { "extraCLIOptions": ["-use-ld=lld"] },
  "linker": { "path": "ld.lld" }
}
EOF
    echo "$swift_version" > "$bundle/.version"
fi
$setup_only && { log "set up: $(du -sh "$cache" | cut -f1) in $cache"; exit 0; }

# 5. The build, in the chroot, against the sysroot's pkg-config files only.
cross_swift_build() {
    local extra=()
    if [ "$target" = bookworm ]; then
        extra+=(-Xlinker "$sysroot/usr/lib/tb-glibc-compat/glibc-compat.o")
    fi
    in_chroot /usr/bin/env \
        PKG_CONFIG_LIBDIR="$sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:$sysroot/usr/share/pkgconfig" \
        PKG_CONFIG_SYSROOT_DIR="$sysroot" \
        /bin/sh -c 'cd "$1" && sdks=$2 && sdk=$3 && shift 3 && exec swift build --swift-sdks-path "$sdks" --swift-sdk "$sdk" "$@"' \
        sh "$root" "$sdks" "$sdk_name" --scratch-path "$scratch" "$@" ${extra[@]+"${extra[@]}"}
}
compat="$sysroot/usr/lib/tb-glibc-compat"
if [ "$target" = bookworm ] && { ! cmp -s "$root/scripts/lib/glibc-compat.c" "$compat/glibc-compat.c" || [ ! -f "$compat/glibc-compat.o" ]; }; then
    mkdir -p "$compat"
    cp "$root/scripts/lib/glibc-compat.c" "$sysroot/usr/lib/tb-glibc-compat/glibc-compat.c"
    in_chroot clang --target=aarch64-linux-gnu --sysroot="$sysroot" -O2 -fPIC -c \
        "$sysroot/usr/lib/tb-glibc-compat/glibc-compat.c" -o "$sysroot/usr/lib/tb-glibc-compat/glibc-compat.o" \
        || die "compiling the glibc compatibility wrappers failed"
fi

log "building tb-agent for aarch64 ($target, release, static Swift runtime)"
mkdir -p "$scratch"
if ! cross_swift_build -c release --static-swift-stdlib --product tb-agent \
        -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now > "$scratch/release-build.log" 2>&1; then
    grep -vE '^\[[0-9]+/[0-9]+\] ' "$scratch/release-build.log" | tail -60 >&2
    die "the aarch64 release build failed (log: $scratch/release-build.log)"
fi
file "$binary" | grep -q 'ARM aarch64' || die "$binary is not an aarch64 executable: $(file -b "$binary")"
log "built $binary ($(stat -c %s "$binary") bytes; $(file -b "$binary" | cut -d, -f1-2))"

if $build_tests; then
    log "building the Swift tests for aarch64 (debug)"
    # Debian's swiftlang lacks the Testing/Foundation cross-import overlay library.
    if ! cross_swift_build --build-tests -Xswiftc -Xfrontend -Xswiftc -disable-cross-import-overlays \
            > "$scratch/tests-build.log" 2>&1; then
        grep -vE '^\[[0-9]+/[0-9]+\] ' "$scratch/tests-build.log" | tail -60 >&2
        die "the aarch64 test build failed (log: $scratch/tests-build.log)"
    fi
    log "built $scratch/debug/tb-agentPackageTests.xctest"
fi

#!/usr/bin/env bash
# Compile-checks the libgpiod v2 half of AgentGPIO (Sources/AgentGPIO/LibGPIODv2.swift) on this x86_64 bookworm
# machine, whose own libgpiod is v1: fetches trixie's amd64 libgpiod-dev and libgpiod3 from the Debian mirror with a
# private apt configuration (the system's apt sources and state are not touched), unpacks them into
# .build-gpiod2/sysroot, and builds tb-agent against them with pkg-config pointed there. The binary then runs on
# this machine (LD_LIBRARY_PATH into the sysroot) to show which libgpiod it was built for.
#
#   scripts/gpiod2-check.sh            fetch (first time: trixie's package index, 20 MB in .build-gpiod2/apt, then
#                                      160 KB of .debs; about 30 s), build tb-agent (debug; about 3 min cold on 2
#                                      shared cores), run it
#   scripts/gpiod2-check.sh --module   only compile the AgentGPIO module (no link): about 1 min cold, seconds warm;
#                                      what scripts/test.sh runs
#   scripts/gpiod2-check.sh --vm       build the release binary against v2 and run scripts/vm-test.sh's checks with it
#                                      (the x86_64 kernel and gpio-sim; expects the v2 API and the kernel's debounce)
#
# Everything lives under .build-gpiod2/ (git-ignored): apt/ (private lists and cache), debs/, sysroot/, build/
# (the scratch path, so the machine's v1 build in .build is never rebuilt by this one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
base="$root/.build-gpiod2"
sysroot="$base/sysroot"
# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
mirror=$(debian_mirror) || { echo "gpiod2-check: cannot tell which Debian mirror apt uses; set TB_DEBIAN_MIRROR" >&2; exit 1; }
suite=${TB_GPIOD2_SUITE:-trixie}
module_only=false
vm=false
case "${1:-}" in
    --module) module_only=true ;;
    --vm) vm=true ;;
    "") ;;
    *) echo "usage: scripts/gpiod2-check.sh [--module | --vm]" >&2; exit 64 ;;
esac
started=$(date +%s)

log() { printf '== gpiod2-check: %s (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }
die() { printf 'gpiod2-check: FAILED: %s\n' "$*" >&2; exit 1; }

# 1. trixie's libgpiod-dev and libgpiod3 (amd64), through apt with private lists, cache and sources.
fetch_debs() {
    local a="$base/apt"
    mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/etc/sources.list.d" "$a/etc/preferences.d" "$base/debs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$a/etc/sources.list"
    local opts=(
        -o "Dir::Etc::SourceList=$a/etc/sources.list" -o "Dir::Etc::SourceParts=$a/etc/sources.list.d"
        -o "Dir::Etc::PreferencesParts=$a/etc/preferences.d" -o "Dir::State::Lists=$a/lists"
        -o "Dir::Cache=$a/cache" -o "Dir::Cache::Archives=$a/cache/archives"
        # The machine's clock may be past the suite's Release validity; private lists need no lock.
        -o "Acquire::Check-Valid-Until=false" -o "Acquire::Languages=none" -o "Debug::NoLocking=1"
        -o "APT::Sandbox::User=root" -o "APT::Architecture=amd64"
    )
    log "reading the $suite package index from $mirror"
    apt-get "${opts[@]}" -qq update >&2 || die "apt-get update of $suite failed"
    (cd "$base/debs" && rm -f ./*.deb && apt-get "${opts[@]}" -qq download libgpiod-dev libgpiod3 >&2) \
        || die "downloading libgpiod-dev and libgpiod3 from $suite failed"
}

if [ ! -f "$sysroot/.unpacked" ]; then
    fetch_debs
    rm -rf "$sysroot"
    mkdir -p "$sysroot"
    for deb in "$base"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
    # Absolute symlinks would point into this machine's own /usr: make them relative to the sysroot.
    find "$sysroot" -type l -lname '/*' | while read -r link; do
        target=$(readlink "$link")
        ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link"
    done
    touch "$sysroot/.unpacked"
fi
pcdir="$sysroot/usr/lib/x86_64-linux-gnu/pkgconfig"
[ -f "$pcdir/libgpiod.pc" ] || die "no libgpiod.pc in $pcdir"
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$sysroot"
version=$(pkg-config --modversion libgpiod)
case "$version" in 2.*) ;; *) die "the sysroot's libgpiod is $version, not 2.x" ;; esac
log "libgpiod $version in $sysroot"

if $vm; then
    # The release binary as vm-test.sh builds it, in its own scratch path, then the real-kernel checks with it.
    release="$base/release"
    mkdir -p "$release"
    log "swift build -c release --static-swift-stdlib --product tb-agent against libgpiod $version"
    if ! swift build -c release --static-swift-stdlib --scratch-path "$release" --product tb-agent > "$release/build.log" 2>&1; then
        grep -vE '^\[[0-9]+/[0-9]+\] ' "$release/build.log" >&2
        die "the release build against libgpiod $version failed (log: $release/build.log)"
    fi
    VMTEST_AGENT="$release/release/tb-agent" VMTEST_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu" VMTEST_GPIOD_API=2 \
        exec scripts/vm-test.sh
fi

# 2. The build, in its own scratch path. Package.swift picks the v2 API from pkg-config's answer (2.2.1); SwiftPM
#    keys its manifest cache on the environment, so the machine's own v1 builds are not affected.
scratch="$base/build"
mkdir -p "$scratch"
if $module_only; then
    what=(--target AgentGPIO)
else
    what=(--product tb-agent)
fi
log "swift build ${what[*]} against libgpiod $version"
if ! swift build --scratch-path "$scratch" "${what[@]}" > "$scratch/build.log" 2>&1; then
    grep -vE '^\[[0-9]+/[0-9]+\] ' "$scratch/build.log" >&2
    die "the build against libgpiod $version failed (log: $scratch/build.log)"
fi
$module_only && { log "AgentGPIO compiles against libgpiod $version"; exit 0; }

# 3. The binary links against libgpiod.so.3 and runs here (trixie's libgpiod needs no newer glibc than bookworm's).
agent="$scratch/debug/tb-agent"
needed=$(readelf -d "$agent" | sed -n 's/.*NEEDED.*\[\(libgpiod[^]]*\)\].*/\1/p')
[ "$needed" = "libgpiod.so.3" ] || die "tb-agent needs '$needed', not libgpiod.so.3"
out=$(LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu" "$agent" --version) || die "tb-agent --version failed: $out"
[ "$(sed -n 2p <<< "$out")" = "libgpiod $version (v2 API)" ] || die "tb-agent --version says '$out'"
# The v2 chip scan runs (this machine has no GPIO chip: the answer says so and points to the simulated board).
set +e
out=$(LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu" "$agent" gpio read GPIO17 --backend libgpiod 2>&1)
status=$?
set -e
if ls /dev/gpiochip* >/dev/null 2>&1; then
    log "this machine has GPIO chips: tb-agent gpio read GPIO17 said (exit $status): $out"
elif [ $status -ne 69 ] || ! grep -q "this machine has no GPIO chips" <<< "$out"; then
    die "tb-agent gpio read GPIO17 (v2, no chips) exited $status: $out"
fi
log "tb-agent builds, links (libgpiod.so.3) and runs against libgpiod $version: $(tr '\n' ' ' <<< "$out" | cut -c1-80)…"

#!/usr/bin/env bash
# The real-kernel GPIO test on an arm64 kernel: boots Debian sid's arm64 kernel under qemu-system-aarch64 (TCG)
# with a small initramfs holding arm64 busybox, the aarch64 release `tb-agent` built against trixie's libgpiod v2
# (scripts/cross-build.sh) with the shared libraries it needs from the trixie arm64 sysroot, and the kernel's own
# configfs and gpio-sim modules. The simulated chip is a Raspberry Pi 5's (scripts/lib/vm-pi5.conf): label
# `pinctrl-rp1`, 54 lines named as Raspberry Pi OS names them (`ID_SDA`, `ID_SCL`, `GPIO2`…`GPIO27`, …); on qemu's
# virt machine it is not gpiochip0 (the PL061 is), so lookups by name and by label are what is tested.
# The checks are the x86_64 test's (scripts/lib/vm-init.sh, run as /init), so libgpiod v2 is proven on a real
# kernel as v1 is by scripts/vm-test.sh. (Sid's kernel is built without CONFIG_GPIO_CDEV_V1: libgpiod v1 could
# not run on it anyway.)
#
#   scripts/vm-test-arm64.sh           everything (installs qemu-system-arm if missing; downloads are cached in
#                                      .build/vm-arm64/; builds the aarch64 agent with scripts/cross-build.sh)
#   scripts/vm-test-arm64.sh --agent F the same with an aarch64 tb-agent built already (no cross build)
#   scripts/vm-test.sh --arch arm64    runs this script
#
# Sid's kernel package and busybox-static come from the Debian mirror this machine's apt uses, through a private
# apt state (.build/vm-arm64/apt) that never touches the machine's own apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
cache="$root/.build/vm-arm64"
mkdir -p "$cache/debs"
started=$(date +%s)
prebuilt_agent=""
while [ $# -gt 0 ]; do
    case "$1" in
        --agent) prebuilt_agent=${2:?--agent needs the path of an aarch64 tb-agent}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "vm-test-arm64: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
    shift
done

log() { printf '== vm-test-arm64: %s (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }
die() { printf 'vm-test-arm64: FAILED: %s\n' "$*" >&2; exit 1; }

# The checks vm-init.sh runs (its `# CHECKS:` line); every one must report PASS.
expected_checks=$(sed -n 's/^# CHECKS: //p' "$root/scripts/lib/vm-init.sh")
[ -n "$expected_checks" ] || die "scripts/lib/vm-init.sh has no '# CHECKS:' line"
# What vm-init.sh is told (its VMTEST_* parameters): the chip is a Raspberry Pi 5's RP1 (label and line names from
# scripts/lib/vm-pi5.conf), and the agent must report the libgpiod v2 API. The modules follow from the kernel
# (step 4).
# shellcheck source=scripts/lib/vm-pi5.conf
. "$root/scripts/lib/vm-pi5.conf"
export VMTEST_CHIP_LABEL VMTEST_LINE_NAMES VMTEST_GPIOD_API=2

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
# shellcheck source=scripts/lib/debian-archive.sh
. "$root/scripts/lib/debian-archive.sh"

# 1. Host tools: qemu for aarch64 (TCG), cpio and xz for the initramfs and modules, aarch64 binutils to read and
#    strip the ELF files.
ensure_apt_packages qemu-system-arm cpio xz-utils binutils-aarch64-linux-gnu debian-archive-keyring
command -v qemu-system-aarch64 >/dev/null || die "qemu-system-aarch64 is not installed (apt-get install qemu-system-arm)"

# 2. A private apt state for sid's arm64 packages. Its lists are refreshed once a day, and whenever a cached
#    package name is gone from the mirror (sid moves).
mirror=$(debian_mirror) || die "cannot tell which Debian mirror apt uses (apt-cache policy shows no bookworm/main); set TB_DEBIAN_MIRROR"
apt_dir="$cache/apt"
private_apt_init "$apt_dir" sid arm64 "$mirror"
refresh_lists() {
    log "updating sid's arm64 package lists from $mirror"
    private_apt "$apt_dir" apt-get update > "$cache/apt-update.log" 2>&1 || { cat "$cache/apt-update.log" >&2; return 1; }
}
if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit)" ]; then
    refresh_lists || [ -n "$(find "$apt_dir/lists" -maxdepth 1 -name '*_Packages*' -print -quit)" ] \
        || die "cannot fetch sid's package lists"
fi

# 3. Which kernel: the one linux-image-arm64 depends on now (e.g. linux-image-7.2.13+deb14-arm64), and the
#    packages holding its image and modules (since 7.x: linux-binary-… and linux-modules-…), with busybox-static:
#    names and versions, resolved again only when the lists change (apt-cache takes a second a call).
resolved="$cache/resolved"
resolve() {
    local image flavour packages
    depends_of() {  # package → the packages it depends on, one a line (alternatives included)
        private_apt "$apt_dir" apt-cache depends "$1" 2>/dev/null | awk '/^ *\|?Depends: / { print $2 }'
    }
    image=$(depends_of linux-image-arm64 | awk '/^linux-image-[0-9]/ && image == "" { image = $1 } END { print image }')
    [ -n "$image" ] || { echo "cannot tell which kernel linux-image-arm64 depends on in sid" >&2; return 1; }
    flavour=${image#linux-image-}    # 7.2.13+deb14-arm64
    packages="$image $(depends_of "$image" | awk -v f="$flavour" '$1 == "linux-binary-" f || $1 == "linux-modules-" f')"
    # One line a package: NAME VERSION (the candidate); then the flavour.
    # shellcheck disable=SC2086
    private_apt "$apt_dir" apt-cache policy $packages busybox-static \
        | awk '/^[^ ]/ { p = $1; sub(/:$/, "", p) } /Candidate:/ && $2 != "(none)" { print p, $2 }' > "$resolved.new"
    [ "$(wc -l < "$resolved.new")" -eq "$(echo "$packages busybox-static" | wc -w)" ] \
        || { echo "sid has no candidate for some of: $packages busybox-static" >&2; return 1; }
    echo "flavour $flavour" >> "$resolved.new"
    mv "$resolved.new" "$resolved"
}
if [ ! -f "$resolved" ] || [ -n "$(find "$apt_dir/lists" -maxdepth 1 -newer "$resolved" -print -quit)" ]; then
    resolve || die "cannot resolve sid's kernel packages"
fi

fetch() {  # package version → path of its .deb in the cache (older versions of it are removed)
    local package=$1 version=$2 file
    file="$cache/debs/${package}_${version/:/%3a}_arm64.deb"
    if [ ! -f "$file" ]; then
        log "downloading $package $version"
        # apt warns that root downloads unsandboxed into a folder _apt cannot write: expected here.
        (cd "$cache/debs" && private_apt "$apt_dir" apt-get download "$package=$version" 2>&1) > "$cache/download.log" || {
            cat "$cache/download.log" >&2
            return 1
        }
        find "$cache/debs" -name "${package}_*.deb" ! -name "$(basename "$file")" -delete
    fi
    [ -f "$file" ] && echo "$file"
}
fetch_all() {  # → kernel_debs (the kernel's packages) and busybox_deb
    kernel_debs=()
    busybox_deb=""
    local package version deb
    while read -r package version; do
        [ "$package" = flavour ] && continue
        deb=$(fetch "$package" "$version") || return 1
        if [ "$package" = busybox-static ]; then busybox_deb=$deb; else kernel_debs+=("$deb"); fi
    done < "$resolved"
}
if ! fetch_all; then
    # sid has moved on since the lists were fetched: the versions named are gone from the mirror.
    { refresh_lists && resolve && fetch_all; } || die "cannot download sid's kernel packages and busybox-static"
fi
flavour=$(awk '$1 == "flavour" { print $2 }' "$resolved")
log "kernel $flavour: $(awk '$1 != "flavour" { printf "%s %s; ", $1, $2 }' "$resolved")"

# 4. Unpack the kernel image, the modules gpio-sim needs (with their dependencies from .modinfo, decompressed
#    here) in load order, and busybox.
k="$cache/$flavour"
if [ ! -f "$k/.unpacked" ]; then
    log "unpacking the kernel and its gpio-sim modules"
    rm -rf "$k"
    # An older kernel's unpacked files (sid has moved on) are not needed any more.
    find "$cache" -mindepth 1 -maxdepth 1 -type d -name '*-arm64' ! -name "$flavour" -exec rm -rf {} +
    mkdir -p "$k/image" "$k/modules" "$k/all"
    # Everything once (a pass over the modules package takes seconds), then only what is used is kept.
    for deb in "${kernel_debs[@]}"; do dpkg-deb -x "$deb" "$k/all"; done
    found=$(find "$k/all" -type f -name 'vmlinu[xz]*' -print -quit)
    [ -n "$found" ] || die "no vmlinuz in ${kernel_debs[*]}"
    mv "$found" "$k/image/"
    find "$k/all" -path '*/kernel/*' -name '*.ko*' > "$k/modules.all"
    : > "$k/modules/load-order"
    add_module() {  # name (as in .modinfo's depends=) → decompresses it and its dependencies, dependencies first
        local name=$1 path dep
        grep -qx "$name" "$k/modules/load-order" && return 0
        path=$(awk -v n="$name" '{ f = $0; sub(/.*\//, "", f); sub(/\.ko(\.(xz|zst|gz))?$/, "", f); gsub(/-/, "_", f);
            if (f == n && found == "") found = $0 } END { print found }' "$k/modules.all")
        [ -n "$path" ] || die "the kernel packages have no module $name"
        case "$path" in
            *.ko.xz) xz -dc "$path" > "$k/modules/$name.ko" ;;
            *.ko.zst) zstd -qdc "$path" > "$k/modules/$name.ko" ;;
            *.ko.gz) gzip -dc "$path" > "$k/modules/$name.ko" ;;
            *.ko) cp "$path" "$k/modules/$name.ko" ;;
            *) die "$path: a module compressed in a way this script does not know" ;;
        esac
        for dep in $(tr '\0' '\n' < "$k/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
            add_module "$dep"
        done
        echo "$name" >> "$k/modules/load-order"
    }
    add_module configfs   # gpio-sim is configured through it (and depends on it)
    add_module gpio_sim
    mkdir -p "$k/busybox"
    dpkg-deb -x "$busybox_deb" "$k/busybox"
    found=$(find "$k/busybox" -type f -path '*bin/busybox' -print -quit)
    [ -n "$found" ] || die "no busybox in $(basename "$busybox_deb")"
    mv "$found" "$k/busybox.bin"
    rm -rf "$k/busybox" "$k/all" "$k/modules.all"
    touch "$k/.unpacked"
fi
vmlinuz=$(find "$k/image" -type f -name 'vmlinu[xz]*' -print -quit)
[ -f "$vmlinuz" ] || die "the kernel packages have no vmlinuz"
log "modules: $(tr '\n' ' ' < "$k/modules/load-order")"

# 5. The agent, as it ships for Raspberry Pi OS trixie: aarch64, release, static Swift runtime, libgpiod v2.
if [ -z "$prebuilt_agent" ]; then
    log "building the aarch64 tb-agent for trixie (scripts/cross-build.sh)"
    "$root/scripts/cross-build.sh" --target trixie >&2 || die "the aarch64 build failed"
fi
eval "$("$root/scripts/cross-build.sh" --target trixie --env)"
agent=${prebuilt_agent:-$TB_CROSS_BINARY}
sysroot=$TB_CROSS_SYSROOT
[ -f "$agent" ] || die "no aarch64 tb-agent at $agent"

# 6. The initramfs: busybox, the agent, the shared libraries it needs (NEEDED entries resolved recursively in the
#    sysroot, copied at the paths the dynamic loader searches), the modules, the chip's description, /init.
log "making the initramfs"
ir="$cache/initramfs"
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,tmp,etc,lib/modules,lib/aarch64-linux-gnu}
cp "$k/busybox.bin" "$ir/bin/busybox"
aarch64-linux-gnu-strip -o "$ir/bin/tb-agent" "$agent"
copy_libraries() {  # ELF file → copies the libraries it needs into $ir/lib/aarch64-linux-gnu, recursively
    local needed lib dir found
    for needed in $(aarch64-linux-gnu-readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ -e "$ir/lib/aarch64-linux-gnu/$needed" ] && continue
        found=""
        for dir in usr/lib/aarch64-linux-gnu lib/aarch64-linux-gnu usr/lib lib; do
            [ -e "$sysroot/$dir/$needed" ] && { found="$sysroot/$dir/$needed"; break; }
        done
        [ -n "$found" ] || die "$(basename "$1") needs $needed, which is not in $sysroot"
        lib="$ir/lib/aarch64-linux-gnu/$needed"
        cp -L "$found" "$lib"
        copy_libraries "$lib"
    done
}
copy_libraries "$ir/bin/tb-agent"
interpreter=$(aarch64-linux-gnu-readelf -l "$agent" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[ -n "$interpreter" ] || die "$agent names no program interpreter"
mkdir -p "$ir$(dirname "$interpreter")"
[ -e "$ir$interpreter" ] || cp -L "$sysroot$interpreter" "$ir$interpreter"
while read -r m; do cp "$k/modules/$m.ko" "$ir/lib/modules/"; done < "$k/modules/load-order"
VMTEST_MODULES=$(tr '\n' ' ' < "$k/modules/load-order")
VMTEST_MODULES=${VMTEST_MODULES% }
for name in VMTEST_CHIP_LABEL VMTEST_LINE_NAMES VMTEST_GPIOD_API VMTEST_MODULES; do
    printf "%s='%s'\n" "$name" "${!name}"
done > "$ir/etc/vm-test.conf"
cp "$root/scripts/lib/vm-init.sh" "$ir/init"
chmod +x "$ir/init"
# Not compressed: under TCG the kernel takes longer to inflate it (about 4 s for 75 MB) than to read it.
(cd "$ir" && find . | cpio -o -H newc --quiet) > "$cache/initrd.cpio"
rm -rf "$ir"   # 74 MB; `cpio -t < initrd.cpio` lists it
log "initramfs: $(du -sh "$cache/initrd.cpio" | cut -f1)"

# 7. Boot: the virt machine with a Cortex-A72, TCG, no network (without -nic none qemu looks for efi-virtio.rom),
#    a host-side timeout against a hang.
timeout_s=600
log "booting $flavour under qemu-system-aarch64 (TCG)"
console="$cache/console.log"
set +e
timeout $timeout_s qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 1 -m 512 -nic none -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$cache/initrd.cpio" -append "console=ttyAMA0 quiet panic=-1" > "$console" 2>&1
qemu_status=$?
set -e
tr -d '\r' < "$console" > "$console.txt"

# 8. Results.
# shellcheck source=scripts/lib/vm-results.sh
. "$root/scripts/lib/vm-results.sh"
# shellcheck disable=SC2086 # one word per check
vm_check_results vm-test-arm64 "$console.txt" "$qemu_status" $timeout_s $expected_checks || die "see $console.txt"
log "all $(echo "$expected_checks" | wc -w) checks passed on $flavour (libgpiod v2, chip $VMTEST_CHIP_LABEL)"

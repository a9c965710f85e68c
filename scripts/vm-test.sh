#!/usr/bin/env bash
# The real-kernel GPIO test: boots Debian's own kernel under qemu (TCG, no KVM needed) with a small initramfs
# holding busybox, the release `tb-agent` (built with --static-swift-stdlib) and the gpio-sim driver built out of
# tree, then checks through the agent's own commands that levels, edges, debounce, the LED pattern and the long
# press work against a real kernel GPIO chip. Recipe: ../shared/reference/real-kernel-gpio.md.
#
#   scripts/vm-test.sh             everything (installs qemu if missing; downloads are cached in .build/vm/)
#   scripts/vm-test.sh --keep      also keep the console log path printed at the end
#   scripts/vm-test.sh --arch arm64   the same checks on Debian sid's arm64 kernel under qemu-system-aarch64, with
#                                  the aarch64 agent built against trixie's libgpiod v2 and a Raspberry Pi 5's
#                                  pinctrl-rp1 chip (scripts/vm-test-arm64.sh; the default is --arch x86_64)
#
# The in-VM checks are in scripts/lib/vm-init.sh; each prints `VMTEST PASS|FAIL NAME DETAIL` on the serial
# console, and this script fails unless every check listed on its `# CHECKS:` line passed. The VMTEST_*
# variables vm-init.sh documents (chip label, line names, the libgpiod API expected…) are passed on to it when
# set here; VMTEST_GPIOD_API defaults to the major version of the libgpiod this machine builds against.
set -euo pipefail
if [ "${1:-}" = --arch ]; then
    case "${2:-}" in
        arm64|aarch64) shift 2; exec "$(dirname "$0")/vm-test-arm64.sh" "$@" ;;
        x86_64|amd64) shift 2 ;;
        *) echo "vm-test: --arch must be x86_64 or arm64, not '${2:-}'" >&2; exit 64 ;;
    esac
fi
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
cache="$root/.build/vm"
mkdir -p "$cache/debs"
started=$(date +%s)

log() { printf '== vm-test: %s (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }
die() { printf 'vm-test: FAILED: %s\n' "$*" >&2; exit 1; }

# The checks vm-init.sh runs (its `# CHECKS:` line); every one must report PASS.
expected_checks=$(sed -n 's/^# CHECKS: //p' "$root/scripts/lib/vm-init.sh")
[ -n "$expected_checks" ] || die "scripts/lib/vm-init.sh has no '# CHECKS:' line"

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"

# 1. Host tools: qemu (TCG), a compiler and make for the modules, the agent's build dependencies.
ensure_apt_packages qemu-system-x86 gcc make libc6-dev $TB_BUILD_PACKAGES
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"

# 2. Which kernel (the one Debian's linux-image-amd64 depends on now), and downloads (about 225 MB the first
#    time), cached by package version: scripts/lib/vm-kernel.sh.
# shellcheck source=scripts/lib/vm-kernel.sh
. "$root/scripts/lib/vm-kernel.sh"
image_deb=$(fetch "linux-image-$flavour-unsigned" || fetch "linux-image-$flavour") || die "cannot download linux-image-$flavour"
source_deb=$(fetch "linux-source-$series") || die "cannot download linux-source-$series"
headers_deb=$(fetch "linux-headers-$flavour") || die "cannot download linux-headers-$flavour"
common_deb=$(fetch "linux-headers-$abi-common") || die "cannot download linux-headers-$abi-common"
kbuild_deb=$(fetch "linux-kbuild-$series") || die "cannot download linux-kbuild-$series"
busybox_deb=$(fetch busybox-static) || die "cannot download busybox-static"

# 4. Unpack what is needed: the kernel, configfs.ko, the headers tree, three source files, busybox.
k="$cache/$flavour"
if [ ! -f "$k/.unpacked" ]; then
    log "unpacking the kernel, headers and sources"
    rm -rf "$k"
    mkdir -p "$k/image" "$k/headers" "$k/source"
    dpkg-deb --fsys-tarfile "$image_deb" | tar -x -C "$k/image" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/fs/configfs/configfs.ko*'
    for deb in "$headers_deb" "$common_deb" "$kbuild_deb"; do dpkg -x "$deb" "$k/headers"; done
    # The headers' Makefile includes the common part by absolute path: point it into this tree.
    sed -i "s|/usr/src/linux-headers-|$k/headers/usr/src/linux-headers-|g" "$k/headers/usr/src/linux-headers-$flavour/Makefile"
    dpkg-deb --fsys-tarfile "$source_deb" | tar -xO "./usr/src/linux-source-$series.tar.xz" \
        | tar -xJ -C "$k/source" "linux-source-$series/drivers/gpio/gpio-sim.c" \
            "linux-source-$series/drivers/gpio/gpiolib.h" "linux-source-$series/kernel/irq/irq_sim.c"
    dpkg-deb --fsys-tarfile "$busybox_deb" | tar -x -C "$k" ./bin/busybox
    touch "$k/.unpacked"
fi
# find stops at the first match itself: `... | head -1` under pipefail fails when the producer writes after head left.
vmlinuz=$(find "$k/image/boot" -name 'vmlinuz-*' -print -quit)
configfs=$(find "$k/image/lib/modules" -name 'configfs.ko*' -print -quit)
[ -f "$vmlinuz" ] && [ -f "$configfs" ] || die "the kernel package has no vmlinuz or configfs.ko"

# 5. gpio-sim.ko and irq-sim.ko, out of tree (Debian builds neither). irq_sim.c calls irq_to_desc(), which
#    modules cannot use: generic_handle_irq() does the same from a module.
m="$k/modules"
if [ ! -f "$m/gpio-sim.ko" ] || [ ! -f "$m/irq-sim.ko" ]; then
    log "building gpio-sim.ko and irq-sim.ko"
    rm -rf "$m"
    mkdir -p "$m"
    src="$k/source/linux-source-$series"
    cp "$src/drivers/gpio/gpio-sim.c" "$src/drivers/gpio/gpiolib.h" "$m/"
    cp "$src/kernel/irq/irq_sim.c" "$m/irq-sim.c"
    grep -q 'handle_simple_irq(irq_to_desc(irqnum));' "$m/irq-sim.c" || die "irq_sim.c changed: the irq_to_desc patch no longer applies"
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$m/irq-sim.c"
    grep -q MODULE_LICENSE "$m/irq-sim.c" || echo 'MODULE_LICENSE("GPL");' >> "$m/irq-sim.c"
    echo 'obj-m := irq-sim.o gpio-sim.o' > "$m/Kbuild"
    make -s -C "$k/headers/usr/src/linux-headers-$flavour" M="$m" modules > "$m/build.log" 2>&1 \
        || { cat "$m/build.log" >&2; die "building the gpio-sim modules failed"; }
fi

# 6. The agent, as it ships: release, Swift runtime linked in. Or VMTEST_AGENT, a release binary built elsewhere
#    (scripts/gpiod2-check.sh --vm: against libgpiod v2), with VMTEST_LIBRARY_PATH where its libraries are that
#    this machine does not have (they go to /usr/lib/x86_64-linux-gnu in the VM).
if [ -n "${VMTEST_AGENT:-}" ]; then
    agent=$VMTEST_AGENT
    [ -x "$agent" ] || die "VMTEST_AGENT=$agent is not an executable"
    log "using $agent"
else
    log "building tb-agent (release, static Swift runtime)"
    if ! swift build -c release --static-swift-stdlib --scratch-path .build-release --product tb-agent > "$cache/swift-build.log" 2>&1; then
        grep -vE '^\[[0-9]+/[0-9]+\] ' "$cache/swift-build.log" >&2
        die "swift build -c release failed"
    fi
    agent="$root/.build-release/release/tb-agent"
fi
libpath=${VMTEST_LIBRARY_PATH:-}

# 7. The initramfs: busybox, the agent and the libraries ldd lists (at the same paths), the modules, /init.
log "making the initramfs"
ir="$cache/initramfs"
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,tmp,etc,lib/modules}
cp "$k/bin/busybox" "$ir/bin/busybox"
cp "$agent" "$ir/bin/tb-agent"
strip "$ir/bin/tb-agent" 2>/dev/null || true
for lib in $(LD_LIBRARY_PATH="$libpath" ldd "$agent" | awk '/=>/ { print $3 } !/=>/ && /^\t\// { print $1 }'); do
    dest=$lib
    if [ -n "$libpath" ] && [ "${lib#"$libpath"/}" != "$lib" ]; then dest=/usr/lib/x86_64-linux-gnu/$(basename "$lib"); fi
    mkdir -p "$ir$(dirname "$dest")"
    cp -L "$lib" "$ir$dest"
done
grep -q 'not found' <<< "$(LD_LIBRARY_PATH="$libpath" ldd "$agent")" && die "ldd $agent: a library is missing"
cp "$configfs" "$ir/lib/modules/configfs.ko"
cp "$m/irq-sim.ko" "$m/gpio-sim.ko" "$ir/lib/modules/"
cp "$root/scripts/lib/vm-init.sh" "$ir/init"
chmod +x "$ir/init"
# vm-init.sh's parameters: the API the binary must report, and whatever VMTEST_* the caller set.
: "${VMTEST_GPIOD_API:=$(pkg-config --modversion libgpiod | cut -d. -f1)}"
export VMTEST_GPIOD_API
for name in $(sed -n 's/^\(VMTEST_[A-Z_]*\)=.*/\1/p' "$root/scripts/lib/vm-init.sh"); do
    if [ -n "${!name:-}" ]; then printf "%s='%s'\n" "$name" "${!name}"; fi
done > "$ir/etc/vm-test.conf"
log "vm-init parameters: $(tr '\n' ' ' < "$ir/etc/vm-test.conf")"
(cd "$ir" && find . | "$k/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$cache/initrd.gz"

# 8. Boot. TCG (KVM hangs on these machines), -cpu max for RDRAND (else the first random read blocks for
#    seconds), no network, a host-side timeout against a hang.
log "booting $flavour under qemu (TCG)"
console="$cache/console.log"
set +e
timeout 240 qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 -nographic -no-reboot -nic none \
    -kernel "$vmlinuz" -initrd "$cache/initrd.gz" -append "console=ttyS0 quiet panic=-1" > "$console" 2>&1
qemu_status=$?
set -e
tr -d '\r' < "$console" > "$console.txt"

# 9. Results.
# shellcheck source=scripts/lib/vm-results.sh
. "$root/scripts/lib/vm-results.sh"
# shellcheck disable=SC2086 # one word per check
vm_check_results vm-test "$console.txt" "$qemu_status" 240 $expected_checks || die "see $console.txt"
log "all $(echo $expected_checks | wc -w) checks passed"

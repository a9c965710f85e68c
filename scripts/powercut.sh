#!/usr/bin/env bash
# Power cuts on a real kernel (issue 14): the release tb-agent runs in a qemu VM (Debian's own kernel, a busybox
# initramfs) with its state directory on a virtual ext4 disk mounted `defaults,noatime` as Raspberry Pi OS mounts
# its root, against tb-sim on this machine's loopback (qemu user networking: the guest reaches 127.0.0.1 through
# 10.0.2.2, and the agent is configured for nothing else; no traffic leaves loopback). qemu is killed with SIGKILL at random moments while the agent provisions,
# spools readings during an outage, replays and trims the spool and saves a pulse counter: the guest's page cache
# is lost, as in a power cut. Each time the image is checked with e2fsck -f -p and read with debugfs, and a fresh
# VM boots on it. Then the stronger form for the credential store: every write recorded with the kernel's
# dm-log-writes target while the agent provisions, replayed here to every flush point. The checks and the figures
# are described in scripts/lib/powercut.py.
#
#   scripts/powercut.sh                 short form (8 cuts and 8 recorded provisionings, about 3 minutes; in
#                                       scripts/test.sh)
#   scripts/powercut.sh --long          release form (200 cuts, 30 recorded provisionings)
#   scripts/powercut.sh --cuts N        N cuts (0: only the dm-log-writes replay)
#   scripts/powercut.sh --rounds N      N provisionings recorded with dm-log-writes and replayed
#   scripts/powercut.sh --seed S        repeat a run's random choices (the seed is printed)
#   scripts/powercut.sh --sync 0s       the spool's sync_interval in the guest (default 1s, the agent's default)
#   POWERCUT_AGENT=PATH scripts/powercut.sh   another tb-agent binary in the VM (default: the release build)
#
# Installs what is missing (qemu, e2fsprogs); downloads (Debian's kernel image and busybox-static, about 70 MB)
# are cached in .build/vm/ as scripts/vm-test.sh does; the console of every boot is in .build/powercut/console.log
# (.build/powercut-long/ for --long, so that a long run and short ones do not share a disk image).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
cache="$root/.build/vm"
work="$root/.build/powercut"
started=$(date +%s)

log() { printf '== powercut: %s (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }
die() { printf 'powercut: FAILED: %s\n' "$*" >&2; exit 1; }

cuts=8
rounds=8
extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --long) cuts=200; rounds=30; work="$root/.build/powercut-long"; shift ;;
        --cuts) cuts=${2:?--cuts needs a number}; shift 2 ;;
        --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
        --seed|--sync) extra+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
        *) die "unknown argument '$1' (scripts/powercut.sh [--long | --cuts N] [--seed S] [--sync 1s])" ;;
    esac
done

mkdir -p "$cache/debs" "$work"
# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"

# 1. Host tools: qemu (TCG: KVM hangs on these machines), e2fsprogs for mkfs, e2fsck and debugfs on the image.
ensure_apt_packages qemu-system-x86 e2fsprogs dmsetup $TB_BUILD_PACKAGES
for tool in qemu-system-x86_64 mkfs.ext4 e2fsck debugfs dmsetup; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install qemu-system-x86 e2fsprogs dmsetup)"
done

# 2. The kernel (the one Debian's linux-image-amd64 depends on) and busybox, unpacked once.
# shellcheck source=scripts/lib/vm-kernel.sh
. "$root/scripts/lib/vm-kernel.sh"
image_deb=$(fetch "linux-image-$flavour-unsigned" || fetch "linux-image-$flavour") || die "cannot download linux-image-$flavour"
busybox_deb=$(fetch busybox-static) || die "cannot download busybox-static"
k="$cache/$flavour-powercut"
if [ ! -f "$k/.unpacked" ]; then
    log "unpacking the kernel, its modules and busybox"
    rm -rf "$k"
    mkdir -p "$k"
    dpkg-deb --fsys-tarfile "$image_deb" | tar -x -C "$k" ./boot ./lib/modules
    dpkg-deb --fsys-tarfile "$busybox_deb" | tar -x -C "$k" ./bin/busybox
    touch "$k/.unpacked"
fi
vmlinuz=$(find "$k/boot" -name 'vmlinuz-*' -print -quit)
moddir=$(find "$k/lib/modules" -mindepth 1 -maxdepth 1 -type d -print -quit)
[ -f "$vmlinuz" ] && [ -d "$moddir" ] || die "the kernel package $image_deb has no vmlinuz or modules"

# 3. The agent as it ships (release, Swift runtime linked in) and tb-sim (debug) for the host.
log "building tb-agent (release, static Swift runtime) and tb-sim"
if ! nice -n 19 swift build -c release --static-swift-stdlib --scratch-path .build-release --product tb-agent \
        > "$work/swift-build.log" 2>&1; then
    grep -vE '^\[[0-9]+/[0-9]+\] ' "$work/swift-build.log" >&2
    die "swift build -c release --product tb-agent failed"
fi
if ! nice -n 19 swift build --product tb-sim > "$work/swift-build-sim.log" 2>&1; then
    grep -vE '^\[[0-9]+/[0-9]+\] ' "$work/swift-build-sim.log" >&2
    die "swift build --product tb-sim failed"
fi
agent="$root/.build-release/release/tb-agent"
if [ -n "${POWERCUT_AGENT:-}" ]; then
    # Another build of the agent (a release binary built elsewhere, or a deliberately broken one to see the
    # checks catch it).
    agent=$POWERCUT_AGENT
    [ -x "$agent" ] || die "POWERCUT_AGENT=$agent is not an executable"
    log "using $agent"
fi
bins="$work/bin"
mkdir -p "$bins"
ln -sf "$agent" "$bins/tb-agent"
ln -sf "$root/.build/debug/tb-sim" "$bins/tb-sim"

# 4. The initramfs: busybox, the agent and the libraries ldd lists, the simulated board's sysroot, the modules
#    for ext4 (and what it needs: jbd2, mbcache, crc16, crc32c) and virtio disk and network, /init.
log "making the initramfs"
ir="$work/initramfs"
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,tmp,etc/tb-agent,lib/modules,board}
cp "$k/bin/busybox" "$ir/bin/busybox"
# A binary and the libraries ldd lists, at the same paths.
install_binary() {  # SOURCE NAME-IN-/bin
    cp "$1" "$ir/bin/$2"
    strip "$ir/bin/$2" 2>/dev/null || true
    grep -q 'not found' <<< "$(ldd "$1")" && die "ldd $1: a library is missing"
    for lib in $(ldd "$1" | awk '/=>/ { print $3 } !/=>/ && /^\t\// { print $1 }'); do
        mkdir -p "$ir$(dirname "$lib")"
        cp -L "$lib" "$ir$lib"
    done
}
install_binary "$agent" tb-agent
install_binary "$(command -v dmsetup)" dmsetup
cp -r "$root/board/simulated/sysroot" "$root/board/simulated/gpio" "$ir/board/"
modules=$(python3 "$root/scripts/lib/powercut.py" modules "$moddir" crc32c_generic crc16 ext4 virtio_pci virtio_blk virtio_net \
    dm_mod dm_log_writes) \
    || die "cannot resolve the kernel modules in $moddir"
for m in $modules; do
    case $m in
        *.xz) xz -dc "$moddir/$m" > "$ir/lib/modules/$(basename "$m" .xz)" ;;
        *) cp "$moddir/$m" "$ir/lib/modules/" ;;
    esac
    basename "${m%.xz}"
done > "$ir/lib/modules/order"
cat > "$ir/etc/tb-agent/config.toml.in" <<'EOF'
# The power-cut test's agent (scripts/powercut.sh); @NAMES@ come from the kernel command line.
[server]
host = "10.0.2.2"
port = @PORT@
keepalive = "5s"
max_backoff = "2s"

[provisioning]
device_key = "PC-KEY"
device_secret = "pc-secret"
credentials_type = "ACCESS_TOKEN"
token = "@TOKEN@"
timeout = "10s"

[device]
name_template = "pc-{id}"
sysroot = "/board/sysroot"
state_dir = "/data/state"

[telemetry]
interval = "200ms"

[spool]
segment_size = "4KiB"
sync_interval = "@SYNC@"

[gpio]
backend = "simulated"
simulated_dir = "/board/gpio"

[[sensors]]
name = "cpu_temperature"
kind = "thermal"
zone = "thermal_zone0"

# Pulses from /init's toggler: its total is saved crash-safely each interval (state_dir/counters/).
[[sensors]]
name = "pulses"
kind = "counter"
line = "GPIO23"
bias = "pull-down"
debounce = "2ms"
EOF
cp "$root/scripts/lib/powercut-init.sh" "$ir/init"
chmod +x "$ir/init"
(cd "$ir" && find . | "$k/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"

# 5. A fresh disk: 64 MiB of ext4, as mkfs makes it for a Raspberry Pi OS root (journal on, 4 KiB blocks).
image="$work/disk.img"
rm -f "$image"
truncate -s 64M "$image"
mkfs.ext4 -q -F -b 4096 "$image" || die "mkfs.ext4 $image failed"

# 6. The cuts.
if [ "$cuts" -gt 0 ]; then
    log "$cuts power cuts (qemu TCG, kernel $flavour; console in $work/console.log)"
    : > "$work/console.log"
    python3 "$root/scripts/lib/powercut.py" run --cuts "$cuts" --kernel "$vmlinuz" --initrd "$work/initrd.gz" \
        --image "$image" --bin-dir "$bins" --work "$work" "${extra[@]}" \
        || die "violations above (console of every boot: $work/console.log; the disk image: $image)"
fi

# 7. The stronger form for the credential store: every write recorded with dm-log-writes while the agent
#    provisions, replayed on this machine to every flush point.
log "dm-log-writes: $rounds provisionings recorded, the store checked at every flush point"
: > "$work/lw-console.log"
python3 "$root/scripts/lib/powercut.py" logwrites --rounds "$rounds" --kernel "$vmlinuz" --initrd "$work/initrd.gz" \
    --bin-dir "$bins" --work "$work" \
    || die "dm-log-writes replay: violations above (console: $work/lw-console.log; log: $work/lw-log.img)"
log "done: $cuts cuts and $rounds recorded provisionings, no violation"

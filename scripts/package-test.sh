#!/usr/bin/env bash
# Tests the Debian packages in throwaway chroots, never on this machine's own root: builds each .deb (and a second one
# with a higher version), installs it with apt (its Depends resolved from Debian), checks files, modes, owners and the
# service user, runs the agent under a stand-in NOTIFY_SOCKET, upgrades over a user-edited configuration, removes and
# purges it. One line per check; exits non-zero when any check fails.
#
#   scripts/package-test.sh [--arch LIST] [--no-build]
#
#   --arch LIST  comma-separated, as scripts/package-deb.sh takes it:
#                  native          this machine's package in a Debian 12 (bookworm) chroot of its architecture
#                  arm64-trixie    the Raspberry Pi OS trixie package in a Debian 13 (trixie) arm64 chroot, every arm64
#                                  program in it run by qemu-user through binfmt_misc
#                  arm64-bookworm  the bookworm arm64 package in a bookworm arm64 chroot, the same way
#                  all             the three
#                default: native,arm64-trixie on x86_64 (the test command's), native elsewhere
#   --no-build   package the release binaries already built (package-deb.sh --no-build)
#
# Needs root (chroot, mount), debootstrap, qemu-user-static for arm64, and Debian's archive for the first run of each
# chroot: debootstrap --variant=minbase (about a minute native, several under qemu) is cached as
# .build/package-test/SUITE-ARCH-minbase-v1.tar and unpacked afresh for every run. Building an arm64 package runs
# scripts/cross-build.sh (see there). Only loopback traffic besides Debian's archive.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
started=$(date +%s)

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'package-test.sh: %s\n' "$*" >&2; exit 1; }

arch_list=""
build_option=()
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch_list+="${arch_list:+,}${2:?--arch needs a list}"; shift 2 ;;
        --arch=*) arch_list+="${arch_list:+,}${1#--arch=}"; shift ;;
        --no-build) build_option=(--no-build); shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
native_arch=$(dpkg --print-architecture)
if [ -z "$arch_list" ]; then
    arch_list=native
    [ "$(uname -m)" = x86_64 ] && arch_list+=",arm64-trixie"
fi
# The targets, normalised and in package-deb.sh's order (its output lists the packages in that order).
targets=()
for t in native arm64-trixie arm64-bookworm; do
    case ",$arch_list," in
        *",$t,"* | *",all,"*) targets+=("$t") ;;
        *",$native_arch,"*) [ "$t" = native ] && targets+=("$t") ;;
    esac
done
for t in ${arch_list//,/ }; do
    case "$t" in
        native | "$native_arch" | arm64-trixie | arm64-bookworm | all) ;;
        *) die "--arch takes native, $native_arch, arm64-trixie, arm64-bookworm or all, not '$t'" ;;
    esac
done
targets_csv=$(IFS=,; echo "${targets[*]}")

[ "$(id -u)" -eq 0 ] || die "needs root (chroot and mount); run it as root or with sudo"
ensure_apt_packages debootstrap lintian dpkg-dev binutils python3
case ",$targets_csv," in *",arm64-"*) ensure_aarch64_binfmt || die "aarch64 programs cannot run here (above)" ;; esac
mirror=$(debian_mirror) || die "cannot tell which Debian mirror apt uses (apt-cache policy); set TB_DEBIAN_MIRROR"

work=$root/.build/package-test
mkdir -p "$work"

passed=0
failed=0
ok() { printf 'ok   %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failed=$((failed + 1)); }
# check NAME COMMAND...: ok when the command succeeds; its output is shown when it fails.
check() {
    local name=$1 output
    shift
    if output=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(printf '%s' "$output" | tail -5)"; fi
}
# Seconds since $1 (from date +%s).
since() { echo $(($(date +%s) - $1)); }
timings=()

# Everything mounted below a folder, deepest first.
mounts_below() { findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1' | sort -r; }
listener_pid=""
agent_pid=""
chroot_dir=""
declare -A bootstrap_pid=() bootstrap_started=()
# Ends what runs in the chroot and unmounts what is mounted below it.
release_chroot() {
    if [ -n "$agent_pid" ]; then kill -KILL "$agent_pid" 2>/dev/null || true; fi
    if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null || true; fi
    agent_pid=""
    listener_pid=""
    local m
    if [ -n "$chroot_dir" ]; then
        for m in $(mounts_below "$chroot_dir"); do umount "$m" || umount -l "$m" || true; done
    fi
}
cleanup() {
    release_chroot
    # A debootstrap still running in the background (the script is ending early): stop it, unmount what it mounted.
    local key pid m
    for key in "${!bootstrap_pid[@]}"; do
        pid=${bootstrap_pid[$key]}
        [ -n "$pid" ] || continue
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        for m in $(mounts_below "$work/bootstrap-$key"); do umount "$m" || umount -l "$m" || true; done
    done
}
trap cleanup EXIT

in_root() { chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
# As the service user, like systemd's User=tb-agent with SupplementaryGroups=gpio.
as_agent() { in_root setpriv --reuid tb-agent --regid tb-agent --init-groups "$@"; }

# suite_arch TARGET: the release and architecture of the chroot the target's package is tested in.
suite_arch() {
    case "$1" in
        native) echo "bookworm $native_arch" ;;
        arm64-trixie) echo "trixie arm64" ;;
        arm64-bookworm) echo "bookworm arm64" ;;
    esac
}

# make_base_tar SUITE ARCH: debootstrap --variant=minbase, packed as the tarball every run unpacks afresh. For arm64
# the second stage (dpkg configuring every package) runs through binfmt_misc and qemu-user: about 4 minutes of one
# core, so a missing tarball is made in the background while the packages are built.
make_base_tar() {
    local suite=$1 arch=$2
    local fresh=$work/bootstrap-$suite-$arch base_tar=$work/$suite-$arch-minbase-v1.tar
    [ -z "$(mounts_below "$fresh")" ] || { echo "$fresh has file systems mounted below it; unmount them first"; return 1; }
    rm -rf "$fresh"
    debootstrap --arch="$arch" --variant=minbase "$suite" "$fresh" "$mirror" || return 1
    # As on this machine: the archive's Release files may be older than their Valid-Until.
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
        > "$fresh/etc/apt/apt.conf.d/99tb-agent-test"
    tar -C "$fresh" --numeric-owner -cf "$base_tar.part" . && mv "$base_tar.part" "$base_tar"
    rm -rf "$fresh"
}
for t in "${targets[@]}"; do
    read -r suite arch <<< "$(suite_arch "$t")"
    if [ ! -f "$work/$suite-$arch-minbase-v1.tar" ]; then
        log "debootstrap $suite $arch, in the background (log: $work/debootstrap-$suite-$arch.log)"
        bootstrap_started[$suite-$arch]=$(date +%s)
        make_base_tar "$suite" "$arch" > "$work/debootstrap-$suite-$arch.log" 2>&1 < /dev/null &
        bootstrap_pid[$suite-$arch]=$!
    fi
done

# --- packages --------------------------------------------------------------------------------------------------
log "building the packages ($targets_csv)"
t0=$(date +%s)
debs=$work/debs
rm -rf "$debs"
# package-deb.sh prints the path of each package on its last lines, in the order of the targets.
last_lines() { local n=$1 lines; mapfile -t lines; printf '%s\n' "${lines[@]: -$n}"; }
if built=$(scripts/package-deb.sh --arch "$targets_csv" --out "$debs" --lintian ${build_option[@]+"${build_option[@]}"} 2> "$work/package-deb.log" \
        | last_lines ${#targets[@]}); then
    mapfile -t first_debs <<< "$built"
else
    tail -30 "$work/package-deb.log" >&2
    die "package-deb.sh failed (log: $work/package-deb.log)"
fi
for deb in "${first_debs[@]}"; do
    if [ -f "$deb" ]; then ok "package-deb.sh builds $(basename "$deb") and lintian reports no errors or warnings"
    else tail -30 "$work/package-deb.log" >&2; die "package-deb.sh did not print the path of a package it made"; fi
done
# Uncompressed: only this test installs them, and xz would take about 40 s of CPU each.
if built=$(VERSION_SUFFIX=+1 TB_DEB_COMPRESSION=none scripts/package-deb.sh --arch "$targets_csv" --out "$debs" --no-build \
        2>> "$work/package-deb.log" | last_lines ${#targets[@]}); then
    mapfile -t upgrade_debs <<< "$built"
else
    die "building the upgrade packages failed (log: $work/package-deb.log)"
fi
timings+=("packages (build, lintian, upgrade packages): $(since "$t0") s")
echo "   (packages built in $(since "$t0") s)"

# The sysusers.d entry, applied as systemd-sysusers does on a systemd system (the chroots below use adduser).
if command -v systemd-sysusers >/dev/null; then
    sysroot=$(mktemp -d)
    mkdir -p "$sysroot/usr/lib/sysusers.d" "$sysroot/etc"
    dpkg-deb --fsys-tarfile "${first_debs[0]}" | tar -xO ./usr/lib/sysusers.d/tb-agent.conf \
        > "$sysroot/usr/lib/sysusers.d/tb-agent.conf"
    printf 'root:x:0:\ngpio:x:997:pi\n' > "$sysroot/etc/group"
    systemd-sysusers --root="$sysroot" tb-agent.conf > /dev/null 2>&1 || true
    check "systemd-sysusers with tb-agent.conf: a system user tb-agent with nologin" \
        grep -qE '^tb-agent:x:[0-9]{1,3}:[0-9]+:[^:]*:/var/lib/tb-agent:/usr/sbin/nologin$' "$sysroot/etc/passwd"
    check "systemd-sysusers with tb-agent.conf: tb-agent joins an existing gpio group" \
        grep -qx 'gpio:x:997:pi,tb-agent' "$sysroot/etc/group"
    rm -rf "$sysroot"
fi

# test_package TARGET DEB UPGRADE_DEB: every check below in a fresh chroot of the target's release and architecture.
test_package() {
    local target=$1 deb1=$2 deb2=$3
    local suite arch gpiod=libgpiod2 api=v1 ready_wait=20 t0 t1 status out
    read -r suite arch <<< "$(suite_arch "$target")"
    if [ "$suite" = trixie ]; then gpiod=libgpiod3; api=v2; fi
    # Everything arm64 runs under qemu-user: a program starts in about a second, not a millisecond.
    [ "$arch" != "$native_arch" ] && ready_wait=90
    local name="$suite $arch"
    local t_target
    t_target=$(date +%s)
    chroot_dir=$work/root-$suite-$arch
    local base_tar=$work/$suite-$arch-minbase-v1.tar
    local v1 v2 control
    v1=$(dpkg-deb -f "$deb1" Version)
    v2=$(dpkg-deb -f "$deb2" Version)

    log "$name: $(basename "$deb1"), upgraded to $(basename "$deb2")"
    check "[$name] the upgrade package's version $v2 is higher than $v1" dpkg --compare-versions "$v2" gt "$v1"
    check "[$name] the package's architecture is $arch" test "$(dpkg-deb -f "$deb1" Architecture)" = "$arch"
    control=$(dpkg-deb -f "$deb1" Depends)
    local lib
    for lib in libc6 libmosquitto1 "$gpiod" libstdc++6; do
        check "[$name] Depends names $lib ($control)" grep -qw "$lib" <<< "$control"
    done
    local other_gpiod=libgpiod3
    [ "$gpiod" = libgpiod3 ] && other_gpiod=libgpiod2
    check "[$name] Depends does not name $other_gpiod" bash -c "! grep -qw '$other_gpiod' <<< '$control'"
    check "[$name] the conffile list holds /etc/tb-agent/config.toml" \
        bash -c "dpkg-deb -I '$deb1' conffiles | grep -qx /etc/tb-agent/config.toml"

    # --- the throwaway root ------------------------------------------------------------------------------------
    log "$name: preparing the chroot"
    t0=$(date +%s)
    if [ -n "${bootstrap_pid[$suite-$arch]:-}" ]; then
        # Started in the background while the packages were built (below the option parsing).
        local pid=${bootstrap_pid[$suite-$arch]}
        bootstrap_pid[$suite-$arch]=""
        if ! wait "$pid"; then
            tail -20 "$work/debootstrap-$suite-$arch.log" >&2
            die "debootstrap $suite $arch failed (log: $work/debootstrap-$suite-$arch.log); Debian's archive must be reachable for the first run"
        fi
        timings+=("[$name] debootstrap --variant=minbase (cold, beside the package builds; then cached): $(since "${bootstrap_started[$suite-$arch]}") s")
        echo "   (debootstrap --arch=$arch --variant=minbase $suite took $(since "${bootstrap_started[$suite-$arch]}") s, beside the package builds; cached in $base_tar)"
        t0=$(date +%s)
    fi
    [ -f "$base_tar" ] || die "$base_tar is missing"
    # A run that was killed may have left /proc mounted in the old root.
    local m
    for m in $(mounts_below "$chroot_dir"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    [ -z "$(mounts_below "$chroot_dir")" ] || die "$chroot_dir has file systems mounted below it; unmount them first"
    rm -rf "$chroot_dir"
    mkdir -p "$chroot_dir"
    tar -C "$chroot_dir" --numeric-owner -xf "$base_tar"
    cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
    # Swift reads its arguments from /proc/self/cmdline: without /proc every command prints the usage.
    mount -t proc proc "$chroot_dir/proc"
    cp "$deb1" "$deb2" "$chroot_dir/tmp/"
    timings+=("[$name] chroot unpacked: $(since "$t0") s")
    echo "   (chroot ready in $(since "$t0") s)"

    # --- install -----------------------------------------------------------------------------------------------
    log "$name: installing $(basename "$deb1") with apt"
    t0=$(date +%s)
    local logs=$work/$suite-$arch
    mkdir -p "$logs"
    install_v1() { in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb1")" </dev/null; }
    # The cached root's package lists may have gone stale (a dependency updated in the archive): refresh once, retry.
    if install_v1 > "$logs/install.log" 2>&1 \
        || { in_root apt-get update -q > "$logs/apt-update.log" 2>&1 && install_v1 > "$logs/install.log" 2>&1; }; then
        ok "[$name] apt-get install resolves the Depends from Debian and configures tb-agent $v1"
    else
        tail -20 "$logs/install.log" >&2
        die "installing the package failed (log: $logs/install.log)"
    fi
    timings+=("[$name] apt-get install: $(since "$t0") s")
    check "[$name] postinst says the unconfigured service was not started and how to fill it in" \
        grep -q "is not complete yet" "$logs/install.log"

    t0=$(date +%s)
    # The unit and the udev rule: where the package put them (/lib, or /usr/lib for trixie), /lib being /usr/lib
    # with merged /usr.
    local unit rule
    unit=$(dpkg-deb -c "$deb1" | awk '$NF ~ /systemd\/system\/tb-agent\.service$/ { sub(/^\./, "", $NF); print $NF }')
    rule=$(dpkg-deb -c "$deb1" | awk '$NF ~ /rules\.d\/99-tb-agent-leds\.rules$/ { sub(/^\./, "", $NF); print $NF }')
    expect_mode /usr/bin/tb-agent "755 root:root"
    expect_mode /etc/tb-agent "750 root:tb-agent"
    expect_mode /etc/tb-agent/config.toml "640 root:tb-agent"
    expect_mode "${unit:-/lib/systemd/system/tb-agent.service}" "644 root:root"
    expect_mode "${rule:-/lib/udev/rules.d/99-tb-agent-leds.rules}" "644 root:root"
    expect_mode /usr/lib/sysusers.d/tb-agent.conf "644 root:root"
    local f
    for f in board/*.toml; do
        check "[$name] board profile /usr/share/tb-agent/boards/$(basename "$f")" \
            cmp "$f" "$chroot_dir/usr/share/tb-agent/boards/$(basename "$f")"
    done
    for f in README.md copyright changelog.gz examples/raspberrypi-4b.toml examples/simulated.toml; do
        check "[$name] /usr/share/doc/tb-agent/$f" test -f "$chroot_dir/usr/share/doc/tb-agent/$f"
    done
    check "[$name] /usr/share/man/man1/tb-agent.1.gz" test -f "$chroot_dir/usr/share/man/man1/tb-agent.1.gz"
    local sections
    sections=$(readelf -h -S "$chroot_dir/usr/bin/tb-agent" 2>&1 || echo "readelf failed")
    check "[$name] the binary is stripped (no .symtab, no .debug_info)" stripped "$sections"
    local machine=X86-64
    [ "$arch" = arm64 ] && machine=AArch64
    check "[$name] the binary is for $machine" grep -qE "Machine:.* $machine\$" <<< "$sections"
    check "[$name] the unit is enabled (multi-user.target.wants)" \
        test -L "$chroot_dir/etc/systemd/system/multi-user.target.wants/tb-agent.service"

    local user_line uid groups
    user_line=$(in_root getent passwd tb-agent || true)
    uid=$(cut -d: -f3 <<< "$user_line")
    if [ -n "$user_line" ] && [ "$uid" -lt 1000 ]; then ok "[$name] system user tb-agent exists (uid $uid)"
    else fail "[$name] system user tb-agent exists" "getent passwd: '$user_line'"; fi
    check "[$name] tb-agent's shell is nologin and its home the state directory" \
        grep -q ':/var/lib/tb-agent:/usr/sbin/nologin$' <<< "$user_line"
    groups=$(in_root id -nG tb-agent 2>&1 || true)
    check "[$name] tb-agent is in the groups tb-agent and gpio ($groups)" \
        bash -c "grep -qw gpio <<< '$groups' && grep -qw tb-agent <<< '$groups'"

    # --- the binary in the root ----------------------------------------------------------------------------------
    out=$(as_agent tb-agent --version 2>&1 || true)
    # The first line is the upstream version (the package's, without the release tag and the test's suffix); the
    # second names the libgpiod API.
    if [ "${out%%$'\n'*}" = "$(cut -d+ -f1 <<< "$v1")" ] && grep -qE "^libgpiod [0-9.]+ \\($api API\\)$" <<< "$out"; then
        ok "[$name] tb-agent --version prints ${out//$'\n'/, }"
    else fail "[$name] tb-agent --version prints the package's version, then libgpiod's $api API" "got '$out'"; fi
    set +e
    out=$(as_agent tb-agent check-config 2>&1)
    status=$?
    set -e
    if [ $status -eq 78 ] && grep -q "server.host" <<< "$out"; then
        ok "[$name] check-config refuses the unfilled default config (exit 78, names server.host)"
    else
        fail "[$name] check-config refuses the unfilled default config" "exit $status: $out"
    fi
    local example
    for example in raspberrypi-4b simulated; do
        check "[$name] check-config accepts /usr/share/doc/tb-agent/examples/$example.toml (as tb-agent)" \
            as_agent tb-agent check-config --config "/usr/share/doc/tb-agent/examples/$example.toml"
    done
    timings+=("[$name] files, user, binary checks: $(since "$t0") s")

    # --- run under a stand-in NOTIFY_SOCKET ----------------------------------------------------------------------
    log "$name: tb-agent run under a stand-in NOTIFY_SOCKET"
    t0=$(date +%s)
    local port run_dir=/tmp/tb-agent-run
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    mkdir -p "$chroot_dir$run_dir/state" "$chroot_dir$run_dir/gpio" "$chroot_dir/run/tb-agent-test"
    in_root chown -R tb-agent:tb-agent "$run_dir"
    # The simulated example, pointed at an unused loopback port, with absolute paths and its own folders.
    sed -e "s|^port = 1883|port = $port|" \
        -e 's|^sysroot = "../simulated/sysroot"|sysroot = "/usr/share/doc/tb-agent/simulated/sysroot"|' \
        -e 's|"provision-secret.example"|"/usr/share/doc/tb-agent/examples/provision-secret.example"|' \
        -e "s|^state_dir = .*|state_dir = \"$run_dir/state\"|" \
        -e "s|^simulated_dir = .*|simulated_dir = \"$run_dir/gpio\"|" \
        "$chroot_dir/usr/share/doc/tb-agent/examples/simulated.toml" > "$chroot_dir$run_dir/config.toml"
    chmod 0644 "$chroot_dir$run_dir/config.toml"
    check "[$name] the run configuration uses port $port" grep -qx "port = $port" "$chroot_dir$run_dir/config.toml"
    check "[$name] the run configuration passes check-config" as_agent tb-agent check-config --config "$run_dir/config.toml"

    local notify_log=$logs/notify.log
    : > "$notify_log"
    python3 - "$chroot_dir/run/tb-agent-test/notify.sock" "$notify_log" <<'EOF' &
# A stand-in for systemd's notification socket: one line per datagram.
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)
with open(log, "a") as f:
    print("listening", file=f, flush=True)
    while True:
        data = s.recv(4096)
        print(data.decode(errors="replace").replace("\n", " | "), file=f, flush=True)
EOF
    listener_pid=$!
    for _ in $(seq 50); do grep -q listening "$notify_log" && break; sleep 0.1; done

    local agent_log=$logs/agent-run.log ready=false
    chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        NOTIFY_SOCKET=/run/tb-agent-test/notify.sock \
        setpriv --reuid tb-agent --regid tb-agent --init-groups \
        tb-agent run --config "$run_dir/config.toml" > "$agent_log" 2>&1 &
    agent_pid=$!
    t1=$(date +%s)
    for _ in $(seq $((ready_wait * 10))); do
        if grep -q '^READY=1' "$notify_log" || grep -q '| READY=1' "$notify_log"; then ready=true; break; fi
        kill -0 "$agent_pid" 2>/dev/null || break
        sleep 0.1
    done
    if $ready; then
        ok "[$name] tb-agent run sends READY=1 to NOTIFY_SOCKET (after $(since "$t1") s)"
        kill -TERM "$agent_pid"
        status=timeout
        for _ in $(seq $((ready_wait * 10))); do
            if ! kill -0 "$agent_pid" 2>/dev/null; then
                set +e; wait "$agent_pid"; status=$?; set -e
                break
            fi
            sleep 0.1
        done
        if [ "$status" = 0 ]; then ok "[$name] tb-agent run exits 0 on SIGTERM"
        else fail "[$name] tb-agent run exits 0 on SIGTERM" "status $status; log: $(tail -3 "$agent_log")"; fi
    else
        if kill -0 "$agent_pid" 2>/dev/null; then
            fail "[$name] tb-agent run sends READY=1 to NOTIFY_SOCKET" \
                "nothing within $ready_wait s; notifications: $(tr '\n' ' ' < "$notify_log")"
        else
            set +e; wait "$agent_pid"; status=$?; set -e
            fail "[$name] tb-agent run sends READY=1 to NOTIFY_SOCKET" \
                "it exited with status $status first: $(head -3 "$agent_log" | tr '\n' ' ')"
        fi
    fi
    kill -KILL "$agent_pid" 2>/dev/null || true
    agent_pid=""
    kill "$listener_pid" 2>/dev/null || true
    listener_pid=""
    timings+=("[$name] tb-agent run: $(since "$t0") s")

    # --- the unit's sandbox: SystemCallFilter=, LimitCORE=0, a non-dumpable process ------------------------------
    # No systemd runs here: scripts/lib/unit-seccomp.py loads the installed unit's SystemCallFilter= lines with
    # libseccomp as systemd would (a call they do not allow kills the agent with SIGSYS), after chroot and the switch
    # to tb-agent, and tb-agent runs a whole session under it against Tests/faults/fakeserver.py (provisioning, a
    # device session, telemetry, SIGHUP, SIGTERM). Native only: under qemu-user the filter would apply to qemu.
    if [ "$arch" = "$native_arch" ] && command -v systemd-analyze > /dev/null && ldconfig -p | grep -q libseccomp.so.2; then
        log "$name: tb-agent run under the unit's SystemCallFilter= (libseccomp), LimitCORE=0, as tb-agent"
        t0=$(date +%s)
        local fake_log=$logs/fakeserver.log sandbox_log=$logs/agent-sandbox.log sandbox_dir=/tmp/tb-agent-sandbox
        : > "$fake_log"
        python3 -c 'import sys, time; sys.path.insert(0, sys.argv[1]); from fakeserver import FakeServer
s = FakeServer(); print(s.port, flush=True); time.sleep(600)' "$root/Tests/faults" > "$fake_log" 2>&1 &
        listener_pid=$!
        for _ in $(seq 50); do [ -s "$fake_log" ] && break; sleep 0.1; done
        local fake_port
        fake_port=$(head -1 "$fake_log")
        mkdir -p "$chroot_dir$sandbox_dir/state"
        sed -e "s|^port = .*|port = $fake_port|" -e "s|^state_dir = .*|state_dir = \"$sandbox_dir/state\"|" \
            -e "s|^interval = .*|interval = \"500ms\"|" "$chroot_dir$run_dir/config.toml" > "$chroot_dir$sandbox_dir/config.toml"
        cp -R "$chroot_dir$run_dir/gpio" "$chroot_dir$sandbox_dir/gpio" 2>/dev/null || mkdir -p "$chroot_dir$sandbox_dir/gpio"
        sed -i "s|^simulated_dir = .*|simulated_dir = \"$sandbox_dir/gpio\"|" "$chroot_dir$sandbox_dir/config.toml"
        in_root chown -R tb-agent:tb-agent "$sandbox_dir"
        chmod 0700 "$chroot_dir$sandbox_dir/state"
        python3 "$root/scripts/lib/unit-seccomp.py" --unit "$chroot_dir${unit:-/lib/systemd/system/tb-agent.service}" \
            --root "$chroot_dir" --user tb-agent -- \
            env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
            tb-agent run --config "$sandbox_dir/config.toml" > "$sandbox_log" 2>&1 &
        agent_pid=$!
        local sandbox_ok=false
        status=""
        for _ in $(seq $((ready_wait * 10))); do
            grep -q '"state": *"online"\|state.*online' <(in_root tb-agent status --json --config "$sandbox_dir/config.toml" 2>/dev/null) \
                && { sandbox_ok=true; break; }
            kill -0 "$agent_pid" 2>/dev/null || break
            sleep 0.2
        done
        if $sandbox_ok; then
            ok "[$name] under the unit's SystemCallFilter= the agent provisions and comes online"
        else
            set +e; kill -0 "$agent_pid" 2>/dev/null || { wait "$agent_pid"; status=$?; }; set -e
            fail "[$name] under the unit's SystemCallFilter= the agent provisions and comes online" \
                "status ${status:-running}: $(tail -5 "$sandbox_log" | tr '\n' ' ')"
        fi
        check "[$name] the agent under the filter is not dumpable (/proc/PID/environ belongs to root)" \
            bash -c "[ \"\$(stat -c %u /proc/$agent_pid/environ)\" = 0 ] && [ \"\$(stat -c %u /proc/$agent_pid)\" != 0 ]"
        check "[$name] its own user cannot read /proc/PID/environ" \
            bash -c "! setpriv --reuid \$(stat -c %u /proc/$agent_pid) --regid \$(stat -c %g /proc/$agent_pid) --clear-groups cat /proc/$agent_pid/environ > /dev/null 2>&1"
        check "[$name] LimitCORE=0 applies (RLIMIT_CORE 0 0)" \
            bash -c "grep -Eq '^Max core file size +0 +0 ' /proc/$agent_pid/limits"
        kill -HUP "$agent_pid" 2>/dev/null || true
        sleep 2
        check "[$name] under the filter SIGHUP reloads the configuration" grep -q "configuration reloaded" "$sandbox_log"
        kill -TERM "$agent_pid" 2>/dev/null || true
        status=timeout
        for _ in $(seq 100); do
            if ! kill -0 "$agent_pid" 2>/dev/null; then set +e; wait "$agent_pid"; status=$?; set -e; break; fi
            sleep 0.1
        done
        if [ "$status" = 0 ]; then ok "[$name] under the filter SIGTERM ends the agent with 0 (no SIGSYS)"
        else fail "[$name] under the filter SIGTERM ends the agent with 0 (no SIGSYS)" "status $status: $(tail -3 "$sandbox_log" | tr '\n' ' ')"; fi
        kill -KILL "$agent_pid" 2>/dev/null || true
        agent_pid=""
        kill "$listener_pid" 2>/dev/null || true
        listener_pid=""
        timings+=("[$name] tb-agent run under the unit's sandbox: $(since "$t0") s")
    else
        echo "   (the SystemCallFilter= check runs for the native package only, with systemd-analyze and libseccomp here)"
    fi

    # --- upgrade keeps the administrator's configuration ------------------------------------------------------
    log "$name: configuring as the administrator would, then upgrading to $v2"
    t0=$(date +%s)
    sed -i -e 's|^host = ""|host = "127.0.0.1"|' -e 's|^device_key = ""|device_key = "PACKAGE-TEST-KEY"|' \
        "$chroot_dir/etc/tb-agent/config.toml"
    # The steps config.toml's header gives.
    in_root install -m 0640 -g tb-agent /dev/null /etc/tb-agent/provision-secret
    echo "package-test-secret" > "$chroot_dir/etc/tb-agent/provision-secret"
    check "[$name] the filled-in default config passes check-config as tb-agent" as_agent tb-agent check-config
    local edited
    edited=$(sha256sum < "$chroot_dir/etc/tb-agent/config.toml")
    # Stands for the issued credentials: the state directory must survive upgrades and removal (not purge).
    install -d -m 0700 "$chroot_dir/var/lib/tb-agent"
    echo "credentials" > "$chroot_dir/var/lib/tb-agent/credentials.json"
    in_root chown -R tb-agent:tb-agent /var/lib/tb-agent

    if in_root dpkg -i "/tmp/$(basename "$deb2")" > "$logs/upgrade.log" 2>&1 </dev/null; then
        ok "[$name] dpkg -i upgrades to $v2 without a conffile prompt"
    else
        fail "[$name] dpkg -i upgrades to $v2 without a conffile prompt" "$(tail -5 "$logs/upgrade.log")"
    fi
    check "[$name] postinst no longer says the service is unconfigured" \
        bash -c "! grep -q 'is not complete yet' '$logs/upgrade.log'"
    check "[$name] dpkg reports version $v2 installed" \
        bash -c "[ \"\$(chroot '$chroot_dir' dpkg-query -W -f='\${Version} \${Status}' tb-agent)\" = '$v2 install ok installed' ]"
    check "[$name] the upgrade kept the edited config.toml" \
        bash -c "[ \"\$(sha256sum < '$chroot_dir/etc/tb-agent/config.toml')\" = '$edited' ]"
    check "[$name] no config.toml.dpkg-* copies were left" \
        bash -c "! ls '$chroot_dir'/etc/tb-agent/config.toml.dpkg-* 2>/dev/null"
    expect_mode /etc/tb-agent/config.toml "640 root:tb-agent"
    check "[$name] the state directory survived the upgrade" test -f "$chroot_dir/var/lib/tb-agent/credentials.json"
    check "[$name] tb-agent is still in gpio after the upgrade" \
        bash -c "chroot '$chroot_dir' id -nG tb-agent | grep -qw gpio"
    timings+=("[$name] upgrade: $(since "$t0") s")

    # --- a firmware update: the root step installs, keeps the previous binary, rolls back ---------------------------
    # What tb-agent-update.service does when the agent leaves a ticket: `tb-agent apply-update` as root in the
    # installed system, on a copy of the installed binary stamped with another version (the agent's checks and the
    # download are the end-to-end tests' business). The restart command stands for systemctl: it confirms (or not).
    log "$name: firmware update: apply-update installs, confirms, and rolls back"
    t0=$(date +%s)
    check "[$name] the update units are installed" \
        test -f "$chroot_dir$(dirname "${unit:-/lib/systemd/system/tb-agent.service}")/tb-agent-update.path" -a \
             -f "$chroot_dir$(dirname "${unit:-/lib/systemd/system/tb-agent.service}")/tb-agent-update.service"
    check "[$name] tb-agent-update.path is enabled (paths.target.wants)" \
        test -L "$chroot_dir/etc/systemd/system/paths.target.wants/tb-agent-update.path"
    # ota_update CONFIRM(true|false) PACKAGE VERSION FROM: leaves the agent's ticket for PACKAGE, runs apply-update; the
    # restart command confirms VERSION or not.
    ota_update() {
        local confirm=$1 package=$2 new_version=$3 from=$4 ota=$chroot_dir/var/lib/tb-agent/ota sum size restart
        install -d -m 0700 "$ota"
        install -m 0600 "$package" "$ota/package.part"
        sum=$(sha256sum < "$ota/package.part" | cut -d' ' -f1)
        size=$(stat -c %s "$ota/package.part")
        printf '{"package":{"title":"tb-agent","version":"%s","size":%s,"checksumAlgorithm":"SHA256","checksum":"%s","durableBytes":%s,"verified":true},"from":"%s"}' \
            "$new_version" "$size" "$sum" "$size" "$from" > "$ota/ready"
        rm -f "$ota/outcome"
        in_root chown -R tb-agent:tb-agent /var/lib/tb-agent/ota
        restart='["true"]'
        printf '#!/bin/sh\nprintf %s > /var/lib/tb-agent/ota/confirmed\n' "'{\"version\":\"$new_version\"}'" > "$chroot_dir/tmp/confirm.sh"
        $confirm && restart='["sh", "/tmp/confirm.sh"]'
        { cat "$chroot_dir/etc/tb-agent/config.toml"
          printf '\n[ota]\nconfirm_after = "1s"\nwindow = "3s"\nrestart_command = %s\n' "$restart"
        } > "$chroot_dir/tmp/ota.toml"
        set +e
        out=$(in_root tb-agent apply-update --config /tmp/ota.toml 2>&1)
        status=$?
        set -e
    }
    python3 "$root/scripts/lib/stamp-version.py" "$chroot_dir/usr/bin/tb-agent" "$work/tb-agent.ota" "${v2%%+*}.ota"
    local before
    before=$(sha256sum < "$chroot_dir/usr/bin/tb-agent")
    ota_update false "$work/tb-agent.ota" "${v2%%+*}.ota" "${v2%%+*}"
    if [ "$status" = 1 ] && grep -q "rolled back to tb-agent" <<< "$out"; then ok "[$name] apply-update without a confirmation rolls back (exit 1)"
    else fail "[$name] apply-update without a confirmation rolls back (exit 1)" "exit $status: $out"; fi
    check "[$name] the rollback put the previous binary back, byte for byte" \
        bash -c "[ \"\$(sha256sum < '$chroot_dir/usr/bin/tb-agent')\" = '$before' ]"
    expect_mode /usr/bin/tb-agent "755 root:root"
    check "[$name] the rollback's outcome is FAILED, for the agent's user to read" \
        bash -c "grep -q '\"state\":\"FAILED\"' '$chroot_dir/var/lib/tb-agent/ota/outcome' && [ \"\$(chroot '$chroot_dir' stat -c %U /var/lib/tb-agent/ota/outcome)\" = tb-agent ]"
    ota_update true "$work/tb-agent.ota" "${v2%%+*}.ota" "${v2%%+*}"
    if [ "$status" = 0 ] && grep -q "the update is final" <<< "$out"; then ok "[$name] apply-update with a confirmation installs the update (exit 0)"
    else fail "[$name] apply-update with a confirmation installs the update (exit 0)" "exit $status: $out"; fi
    out=$(as_agent tb-agent --version 2>&1 || true)
    check "[$name] the installed binary is the new version (${out%%$'\n'*})" test "${out%%$'\n'*}" = "${v2%%+*}.ota"
    expect_mode /usr/bin/tb-agent "755 root:root"
    check "[$name] the previous binary is removed once the update is final" test ! -e "$chroot_dir/var/backups/tb-agent/tb-agent.previous"
    expect_mode /var/backups/tb-agent "700 root:root"
    check "[$name] no ticket, trial or part is left" \
        bash -c "! ls '$chroot_dir'/var/lib/tb-agent/ota/{ready,trial,confirmed,package.part} 2>/dev/null"
    timings+=("[$name] firmware update (apply-update): $(since "$t0") s")

    # --- a firmware update as a .deb: dpkg installs it; the installed package, rebuilt, is what it rolls back to ------
    # The package: the upgrade package with its binary stamped with another version (Debian version VERSION+test).
    log "$name: firmware update as a .deb: dpkg installs it, the rebuilt installed package rolls it back"
    t0=$(date +%s)
    local deb_version="${v2%%+*}.deb" deb_tree=$work/ota-deb-tree ota_deb=$work/tb-agent-ota.deb
    rm -rf "$deb_tree"
    dpkg-deb -R "$deb2" "$deb_tree"
    python3 "$root/scripts/lib/stamp-version.py" "$deb_tree/usr/bin/tb-agent" "$work/tb-agent.deb-binary" "$deb_version"
    install -m 0755 "$work/tb-agent.deb-binary" "$deb_tree/usr/bin/tb-agent"
    sed -i "s/^Version: .*/Version: $deb_version+test/" "$deb_tree/DEBIAN/control"
    (cd "$deb_tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
        > "$deb_tree/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Znone --build "$deb_tree" "$ota_deb" > /dev/null
    rm -rf "$deb_tree"
    installed_state() { chroot "$chroot_dir" dpkg-query -W -f='${Version} ${Status}' tb-agent; }
    before=$(sha256sum < "$chroot_dir/usr/bin/tb-agent")
    ota_update false "$ota_deb" "$deb_version" "${v2%%+*}.ota"
    if [ "$status" = 1 ] && grep -q "rolled back to tb-agent" <<< "$out"; then ok "[$name] a .deb without a confirmation is rolled back by dpkg (exit 1)"
    else fail "[$name] a .deb without a confirmation is rolled back by dpkg (exit 1)" "exit $status: $out"; fi
    check "[$name] after the rollback dpkg has $v2 installed again ($(installed_state))" \
        test "$(installed_state)" = "$v2 install ok installed"
    check "[$name] the rollback put the installed binary back, byte for byte" \
        bash -c "[ \"\$(sha256sum < '$chroot_dir/usr/bin/tb-agent')\" = '$before' ]"
    check "[$name] the rollback kept the edited config.toml" \
        bash -c "[ \"\$(sha256sum < '$chroot_dir/etc/tb-agent/config.toml')\" = '$edited' ]"
    expect_mode /etc/tb-agent/config.toml "640 root:tb-agent"
    check "[$name] the rollback's outcome is FAILED" grep -q '"state":"FAILED"' "$chroot_dir/var/lib/tb-agent/ota/outcome"
    # The rebuilt package's md5sums are the files' as they were; the edited config.toml differs from what it shipped.
    out=$(chroot "$chroot_dir" dpkg --verify tb-agent 2>&1 || true)
    check "[$name] after the rollback dpkg --verify finds only the edited config.toml (${out:-nothing})" \
        bash -c "[ \"\$(grep -v ' c /etc/tb-agent/config.toml\$' <<< '$out')\" = '' ] && grep -q ' c /etc/tb-agent/config.toml\$' <<< '$out'"
    check "[$name] nothing is left in /var/backups/tb-agent after the rollback" \
        bash -c "[ -z \"\$(ls -A '$chroot_dir/var/backups/tb-agent')\" ]"
    ota_update true "$ota_deb" "$deb_version" "${v2%%+*}.ota"
    if [ "$status" = 0 ] && grep -q "the update is final" <<< "$out"; then ok "[$name] a confirmed .deb is installed by dpkg (exit 0)"
    else fail "[$name] a confirmed .deb is installed by dpkg (exit 0)" "exit $status: $out"; fi
    check "[$name] dpkg has $deb_version+test installed ($(installed_state))" \
        test "$(installed_state)" = "$deb_version+test install ok installed"
    out=$(as_agent tb-agent --version 2>&1 || true)
    check "[$name] the installed binary is the .deb's version (${out%%$'\n'*})" test "${out%%$'\n'*}" = "$deb_version"
    check "[$name] the .deb update kept the edited config.toml" \
        bash -c "[ \"\$(sha256sum < '$chroot_dir/etc/tb-agent/config.toml')\" = '$edited' ]"
    check "[$name] dpkg --audit finds nothing half-installed" bash -c "[ -z \"\$(chroot '$chroot_dir' dpkg --audit)\" ]"
    check "[$name] the rebuilt previous package is removed once the update is final" \
        bash -c "[ -z \"\$(ls -A '$chroot_dir/var/backups/tb-agent')\" ]"
    check "[$name] no ticket, trial or part is left after the .deb update" \
        bash -c "! ls '$chroot_dir'/var/lib/tb-agent/ota/{ready,trial,confirmed,package.part} 2>/dev/null"
    timings+=("[$name] firmware update as a .deb (apply-update, dpkg): $(since "$t0") s")

    # --- remove, then purge ------------------------------------------------------------------------------------
    log "$name: removing and purging"
    t0=$(date +%s)
    check "[$name] dpkg --remove tb-agent" in_root dpkg --remove tb-agent
    check "[$name] remove: the binary is gone" test ! -e "$chroot_dir/usr/bin/tb-agent"
    check "[$name] remove: the config and the state stay" \
        test -f "$chroot_dir/etc/tb-agent/config.toml" -a -f "$chroot_dir/var/lib/tb-agent/credentials.json"
    check "[$name] dpkg --purge tb-agent" in_root dpkg --purge tb-agent
    check "[$name] purge: dpkg no longer knows tb-agent" bash -c "! chroot '$chroot_dir' dpkg-query -W tb-agent 2>/dev/null"
    local leftover=() path
    while read -r path; do
        [ -e "$chroot_dir/$path" ] || [ -L "$chroot_dir/$path" ] && leftover+=("$path")
    done < <(dpkg-deb --fsys-tarfile "$deb2" | tar -t | grep -v '/$' | sed 's|^\./|/|')
    if [ ${#leftover[@]} -eq 0 ]; then ok "[$name] purge: every file of the package is gone"
    else fail "[$name] purge: every file of the package is gone" "left: ${leftover[*]}"; fi
    local d
    for d in /etc/tb-agent /var/lib/tb-agent /usr/share/tb-agent /usr/share/doc/tb-agent; do
        check "[$name] purge: $d is gone" test ! -e "$chroot_dir$d"
    done
    check "[$name] purge: the user tb-agent is gone" bash -c "! chroot '$chroot_dir' getent passwd tb-agent"
    check "[$name] purge: the group tb-agent is gone" bash -c "! chroot '$chroot_dir' getent group tb-agent"
    check "[$name] purge: the gpio group stays (other software uses it)" in_root getent group gpio
    check "[$name] purge: the unit is no longer enabled" \
        test ! -e "$chroot_dir/etc/systemd/system/multi-user.target.wants/tb-agent.service"
    check "[$name] purge: the update path unit is no longer enabled" \
        test ! -e "$chroot_dir/etc/systemd/system/paths.target.wants/tb-agent-update.path"
    check "[$name] purge: /var/backups/tb-agent is gone" test ! -e "$chroot_dir/var/backups/tb-agent"
    timings+=("[$name] remove and purge: $(since "$t0") s")

    release_chroot
    rm -rf "$chroot_dir"
    chroot_dir=""
    timings+=("[$name] all of it: $(since "$t_target") s")
}

# Whether readelf -S output shows code but neither a symbol table nor debugging information.
stripped() { grep -q ' .text' <<< "$1" && ! grep -qE ' \.(symtab|debug_info) ' <<< "$1"; }

# stat inside the root, so that names are the root's own users and groups.
mode_owner() { in_root stat -c '%a %U:%G' "$1"; }
expect_mode() {
    local path=$1 want=$2 got
    got=$(mode_owner "$path" 2>&1) || true
    if [ "$got" = "$want" ]; then ok "[$name] $path is $want"; else fail "[$name] $path is $want" "found '$got'"; fi
}

for i in "${!targets[@]}"; do
    test_package "${targets[$i]}" "${first_debs[$i]}" "${upgrade_debs[$i]}"
done

trap - EXIT
echo
echo "   timings:"
printf '     %s\n' "${timings[@]}"
echo "   (package test took $(since "$started") s)"
echo "package-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "package-test: some checks failed (details above)" >&2; exit 1; }

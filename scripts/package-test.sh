#!/usr/bin/env bash
# Tests the Debian package in a throwaway Debian 12 (bookworm) chroot, never on this machine's own root:
# builds the .deb (and a second one with a higher version), installs it with apt (its Depends resolved from Debian),
# checks files, modes, owners and the service user, runs the agent under a stand-in NOTIFY_SOCKET, upgrades over a
# user-edited configuration, removes and purges it. One line per check; exits non-zero when any check fails.
#
#   scripts/package-test.sh
#
# Needs root (chroot, mount), debootstrap, and Debian's archive for the first run: the chroot (debootstrap
# --variant=minbase, about a minute) is cached as .build/package-test/bookworm-minbase-v1.tar and unpacked afresh
# for every run. Only loopback traffic besides Debian's archive.
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

[ "$(id -u)" -eq 0 ] || die "needs root (chroot and mount); run it as root or with sudo"
ensure_apt_packages debootstrap lintian dpkg-dev binutils

work=$root/.build/package-test
chroot_dir=$work/root
base_tar=$work/bookworm-minbase-v1.tar
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

# Everything mounted below the chroot, deepest first.
mounts_below() { findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1' | sort -r; }
listener_pid=""
agent_pid=""
cleanup() {
    if [ -n "$agent_pid" ]; then kill -KILL "$agent_pid" 2>/dev/null || true; fi
    if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null || true; fi
    local m
    for m in $(mounts_below "$chroot_dir"); do umount "$m" || umount -l "$m" || true; done
}
trap cleanup EXIT

in_root() { chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
# As the service user, like systemd's User=tb-agent with SupplementaryGroups=gpio.
as_agent() { in_root setpriv --reuid tb-agent --regid tb-agent --init-groups "$@"; }

# --- packages --------------------------------------------------------------------------------------------------
log "building the packages"
t0=$(date +%s)
debs=$work/debs
rm -rf "$debs"
if deb1=$(scripts/package-deb.sh --out "$debs" --lintian 2> "$work/package-deb.log" | tail -1) && [ -f "$deb1" ]; then
    ok "package-deb.sh builds $(basename "$deb1") and lintian reports no errors or warnings"
else
    tail -30 "$work/package-deb.log" >&2
    die "package-deb.sh failed (log: $work/package-deb.log)"
fi
deb2=$(VERSION_SUFFIX=+1 scripts/package-deb.sh --out "$debs" --no-build 2>> "$work/package-deb.log" | tail -1) \
    || die "building the upgrade package failed (log: $work/package-deb.log)"
v1=$(dpkg-deb -f "$deb1" Version)
v2=$(dpkg-deb -f "$deb2" Version)
check "the upgrade package's version $v2 is higher than $v1" dpkg --compare-versions "$v2" gt "$v1"
control=$(dpkg-deb -f "$deb1" Depends)
for lib in libc6 libmosquitto1 libgpiod2 libstdc++6; do
    check "Depends names $lib ($control)" grep -qw "$lib" <<< "$control"
done
check "the conffile list holds /etc/tb-agent/config.toml" \
    bash -c "dpkg-deb -I '$deb1' conffiles | grep -qx /etc/tb-agent/config.toml"
echo "   (packages built in $(($(date +%s) - t0)) s)"

# The sysusers.d entry, applied as systemd-sysusers does on a systemd system (the chroot below uses adduser).
if command -v systemd-sysusers >/dev/null; then
    sysroot=$(mktemp -d)
    mkdir -p "$sysroot/usr/lib/sysusers.d" "$sysroot/etc"
    dpkg-deb --fsys-tarfile "$deb1" | tar -xO ./usr/lib/sysusers.d/tb-agent.conf \
        > "$sysroot/usr/lib/sysusers.d/tb-agent.conf"
    printf 'root:x:0:\ngpio:x:997:pi\n' > "$sysroot/etc/group"
    systemd-sysusers --root="$sysroot" tb-agent.conf > /dev/null 2>&1 || true
    check "systemd-sysusers with tb-agent.conf: a system user tb-agent with nologin" \
        grep -qE '^tb-agent:x:[0-9]{1,3}:[0-9]+:[^:]*:/var/lib/tb-agent:/usr/sbin/nologin$' "$sysroot/etc/passwd"
    check "systemd-sysusers with tb-agent.conf: tb-agent joins an existing gpio group" \
        grep -qx 'gpio:x:997:pi,tb-agent' "$sysroot/etc/group"
    rm -rf "$sysroot"
fi

# --- the throwaway root ----------------------------------------------------------------------------------------
log "preparing the bookworm chroot"
t0=$(date +%s)
if [ ! -f "$base_tar" ]; then
    fresh=$work/bootstrap
    [ -z "$(mounts_below "$fresh")" ] || die "$fresh has file systems mounted below it; unmount them first"
    rm -rf "$fresh"
    if ! debootstrap --variant=minbase bookworm "$fresh" http://deb.debian.org/debian > "$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log" >&2
        die "debootstrap failed (log: $work/debootstrap.log); Debian's archive must be reachable for the first run"
    fi
    # As on this machine: the archive's Release files may be older than their Valid-Until.
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
        > "$fresh/etc/apt/apt.conf.d/99tb-agent-test"
    tar -C "$fresh" --numeric-owner -cf "$base_tar.part" . && mv "$base_tar.part" "$base_tar"
    rm -rf "$fresh"
    echo "   (debootstrap --variant=minbase bookworm took $(($(date +%s) - t0)) s; cached in $base_tar)"
fi
# A run that was killed may have left /proc mounted in the old root.
for m in $(mounts_below "$chroot_dir"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
[ -z "$(mounts_below "$chroot_dir")" ] || die "$chroot_dir has file systems mounted below it; unmount them first"
rm -rf "$chroot_dir"
mkdir -p "$chroot_dir"
tar -C "$chroot_dir" --numeric-owner -xf "$base_tar"
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
# Swift reads its arguments from /proc/self/cmdline: without /proc every command prints the usage.
mount -t proc proc "$chroot_dir/proc"
cp "$deb1" "$deb2" "$chroot_dir/tmp/"
echo "   (chroot ready in $(($(date +%s) - t0)) s)"

# --- install ---------------------------------------------------------------------------------------------------
log "installing $(basename "$deb1") with apt"
install_v1() { in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb1")" </dev/null; }
# The cached root's package lists may have gone stale (a dependency updated in the archive): refresh once and retry.
if install_v1 > "$work/install.log" 2>&1 \
    || { in_root apt-get update -q > "$work/apt-update.log" 2>&1 && install_v1 > "$work/install.log" 2>&1; }; then
    ok "apt-get install resolves the Depends from Debian and configures tb-agent $v1"
else
    tail -20 "$work/install.log" >&2
    die "installing the package failed (log: $work/install.log)"
fi
check "postinst says the unconfigured service was not started and how to fill it in" grep -q "is not complete yet" "$work/install.log"

# stat inside the root, so that names are the root's own users and groups.
mode_owner() { in_root stat -c '%a %U:%G' "$1"; }
expect_mode() {
    local path=$1 want=$2 got
    got=$(mode_owner "$path" 2>&1) || true
    if [ "$got" = "$want" ]; then ok "$path is $want"; else fail "$path is $want" "found '$got'"; fi
}
expect_mode /usr/bin/tb-agent "755 root:root"
expect_mode /etc/tb-agent "750 root:tb-agent"
expect_mode /etc/tb-agent/config.toml "640 root:tb-agent"
expect_mode /lib/systemd/system/tb-agent.service "644 root:root"
expect_mode /lib/udev/rules.d/99-tb-agent-leds.rules "644 root:root"
expect_mode /usr/lib/sysusers.d/tb-agent.conf "644 root:root"
for f in board/*.toml; do
    check "board profile /usr/share/tb-agent/boards/$(basename "$f")" \
        cmp "$f" "$chroot_dir/usr/share/tb-agent/boards/$(basename "$f")"
done
for f in README.md copyright changelog.gz examples/raspberrypi-4b.toml examples/simulated.toml; do
    check "/usr/share/doc/tb-agent/$f" test -f "$chroot_dir/usr/share/doc/tb-agent/$f"
done
check "/usr/share/man/man1/tb-agent.1.gz" test -f "$chroot_dir/usr/share/man/man1/tb-agent.1.gz"
sections=$(readelf -S "$chroot_dir/usr/bin/tb-agent" 2>&1 || echo "readelf failed")
check "the binary is stripped (no .symtab, no .debug_info)" \
    bash -c "grep -q ' .text' <<< '$sections' && ! grep -qE ' \.(symtab|debug_info) ' <<< '$sections'"
check "the unit is enabled (multi-user.target.wants)" \
    test -L "$chroot_dir/etc/systemd/system/multi-user.target.wants/tb-agent.service"

user_line=$(in_root getent passwd tb-agent || true)
uid=$(cut -d: -f3 <<< "$user_line")
if [ -n "$user_line" ] && [ "$uid" -lt 1000 ]; then ok "system user tb-agent exists (uid $uid)"
else fail "system user tb-agent exists" "getent passwd: '$user_line'"; fi
check "tb-agent's shell is nologin and its home the state directory" \
    grep -q ':/var/lib/tb-agent:/usr/sbin/nologin$' <<< "$user_line"
groups=$(in_root id -nG tb-agent 2>&1 || true)
check "tb-agent is in the groups tb-agent and gpio ($groups)" \
    bash -c "grep -qw gpio <<< '$groups' && grep -qw tb-agent <<< '$groups'"

# --- the binary in the root --------------------------------------------------------------------------------------
out=$(as_agent tb-agent --version 2>&1 || true)
if [ "${out%%$'\n'*}" = "$(cut -d+ -f1 <<< "$v1")" ] && grep -qE '^libgpiod [0-9.]+ \(v[12] API\)$' <<< "$out"; then
    ok "tb-agent --version prints ${out//$'\n'/, }"
else fail "tb-agent --version prints the package's version, then the libgpiod API" "got '$out'"; fi
set +e
out=$(as_agent tb-agent check-config 2>&1)
status=$?
set -e
if [ $status -eq 78 ] && grep -q "server.host" <<< "$out"; then
    ok "check-config refuses the unfilled default config (exit 78, names server.host)"
else
    fail "check-config refuses the unfilled default config" "exit $status: $out"
fi
for example in raspberrypi-4b simulated; do
    check "check-config accepts /usr/share/doc/tb-agent/examples/$example.toml (as tb-agent)" \
        as_agent tb-agent check-config --config "/usr/share/doc/tb-agent/examples/$example.toml"
done

# --- run under a stand-in NOTIFY_SOCKET ------------------------------------------------------------------------
log "tb-agent run under a stand-in NOTIFY_SOCKET"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
run_dir=/tmp/tb-agent-run
mkdir -p "$chroot_dir$run_dir/state" "$chroot_dir$run_dir/gpio" "$chroot_dir/run/tb-agent-test"
in_root chown -R tb-agent:tb-agent "$run_dir"
# The simulated example, pointed at an unused loopback port, with absolute paths and its own folders.
sed -e "s|^port = 1883|port = $port|" \
    -e 's|^sysroot = "../simulated/sysroot"|sysroot = "/usr/share/doc/tb-agent/simulated/sysroot"|' \
    -e 's|"provision-secret.example"|"/usr/share/doc/tb-agent/examples/provision-secret.example"|' \
    -e "s|/tmp/tb-agent-simulated/|$run_dir/|g" \
    "$chroot_dir/usr/share/doc/tb-agent/examples/simulated.toml" > "$chroot_dir$run_dir/config.toml"
chmod 0644 "$chroot_dir$run_dir/config.toml"
check "the run configuration uses port $port" grep -qx "port = $port" "$chroot_dir$run_dir/config.toml"
check "the run configuration passes check-config" as_agent tb-agent check-config --config "$run_dir/config.toml"

notify_log=$work/notify.log
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

agent_log=$work/agent-run.log
chroot "$chroot_dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    NOTIFY_SOCKET=/run/tb-agent-test/notify.sock \
    setpriv --reuid tb-agent --regid tb-agent --init-groups \
    tb-agent run --config "$run_dir/config.toml" > "$agent_log" 2>&1 &
agent_pid=$!
ready=false
for _ in $(seq 200); do
    if grep -q '^READY=1' "$notify_log" || grep -q '| READY=1' "$notify_log"; then ready=true; break; fi
    kill -0 "$agent_pid" 2>/dev/null || break
    sleep 0.1
done
if $ready; then
    ok "tb-agent run sends READY=1 to NOTIFY_SOCKET"
    kill -TERM "$agent_pid"
    status=timeout
    for _ in $(seq 150); do
        if ! kill -0 "$agent_pid" 2>/dev/null; then
            set +e; wait "$agent_pid"; status=$?; set -e
            break
        fi
        sleep 0.1
    done
    if [ "$status" = 0 ]; then ok "tb-agent run exits 0 on SIGTERM"
    else fail "tb-agent run exits 0 on SIGTERM" "status $status; log: $(tail -3 "$agent_log")"; fi
else
    if kill -0 "$agent_pid" 2>/dev/null; then
        fail "tb-agent run sends READY=1 to NOTIFY_SOCKET" "nothing within 20 s; notifications: $(tr '\n' ' ' < "$notify_log")"
    else
        set +e; wait "$agent_pid"; status=$?; set -e
        fail "tb-agent run sends READY=1 to NOTIFY_SOCKET" \
            "it exited with status $status first: $(head -3 "$agent_log" | tr '\n' ' ')"
    fi
fi
kill -KILL "$agent_pid" 2>/dev/null || true
agent_pid=""
kill "$listener_pid" 2>/dev/null || true
listener_pid=""

# --- upgrade keeps the administrator's configuration ------------------------------------------------------------
log "configuring as the administrator would, then upgrading to $v2"
sed -i -e 's|^host = ""|host = "127.0.0.1"|' -e 's|^device_key = ""|device_key = "PACKAGE-TEST-KEY"|' \
    "$chroot_dir/etc/tb-agent/config.toml"
# The steps config.toml's header gives.
in_root install -m 0640 -g tb-agent /dev/null /etc/tb-agent/provision-secret
echo "package-test-secret" > "$chroot_dir/etc/tb-agent/provision-secret"
check "the filled-in default config passes check-config as tb-agent" as_agent tb-agent check-config
edited=$(sha256sum < "$chroot_dir/etc/tb-agent/config.toml")
# Stands for the issued credentials: the state directory must survive upgrades and removal (not purge).
install -d -m 0700 "$chroot_dir/var/lib/tb-agent"
echo "credentials" > "$chroot_dir/var/lib/tb-agent/credentials.json"
in_root chown -R tb-agent:tb-agent /var/lib/tb-agent

if in_root dpkg -i "/tmp/$(basename "$deb2")" > "$work/upgrade.log" 2>&1 </dev/null; then
    ok "dpkg -i upgrades to $v2 without a conffile prompt"
else
    fail "dpkg -i upgrades to $v2 without a conffile prompt" "$(tail -5 "$work/upgrade.log")"
fi
check "postinst no longer says the service is unconfigured" bash -c "! grep -q 'is not complete yet' '$work/upgrade.log'"
check "dpkg reports version $v2 installed" \
    bash -c "[ \"\$(chroot '$chroot_dir' dpkg-query -W -f='\${Version} \${Status}' tb-agent)\" = '$v2 install ok installed' ]"
check "the upgrade kept the edited config.toml" \
    bash -c "[ \"\$(sha256sum < '$chroot_dir/etc/tb-agent/config.toml')\" = '$edited' ]"
check "no config.toml.dpkg-* copies were left" \
    bash -c "! ls '$chroot_dir'/etc/tb-agent/config.toml.dpkg-* 2>/dev/null"
expect_mode /etc/tb-agent/config.toml "640 root:tb-agent"
check "the state directory survived the upgrade" test -f "$chroot_dir/var/lib/tb-agent/credentials.json"
check "tb-agent is still in gpio after the upgrade" bash -c "chroot '$chroot_dir' id -nG tb-agent | grep -qw gpio"

# --- remove, then purge ----------------------------------------------------------------------------------------
log "removing and purging"
check "dpkg --remove tb-agent" in_root dpkg --remove tb-agent
check "remove: the binary is gone" test ! -e "$chroot_dir/usr/bin/tb-agent"
check "remove: the config and the state stay" \
    test -f "$chroot_dir/etc/tb-agent/config.toml" -a -f "$chroot_dir/var/lib/tb-agent/credentials.json"
check "dpkg --purge tb-agent" in_root dpkg --purge tb-agent
check "purge: dpkg no longer knows tb-agent" bash -c "! chroot '$chroot_dir' dpkg-query -W tb-agent 2>/dev/null"
leftover=()
while read -r path; do
    [ -e "$chroot_dir/$path" ] || [ -L "$chroot_dir/$path" ] && leftover+=("$path")
done < <(dpkg-deb --fsys-tarfile "$deb2" | tar -t | grep -v '/$' | sed 's|^\./|/|')
if [ ${#leftover[@]} -eq 0 ]; then ok "purge: every file of the package is gone"
else fail "purge: every file of the package is gone" "left: ${leftover[*]}"; fi
for d in /etc/tb-agent /var/lib/tb-agent /usr/share/tb-agent /usr/share/doc/tb-agent; do
    check "purge: $d is gone" test ! -e "$chroot_dir$d"
done
check "purge: the user tb-agent is gone" bash -c "! chroot '$chroot_dir' getent passwd tb-agent"
check "purge: the group tb-agent is gone" bash -c "! chroot '$chroot_dir' getent group tb-agent"
check "purge: the gpio group stays (other software uses it)" in_root getent group gpio
check "purge: the unit is no longer enabled" \
    test ! -e "$chroot_dir/etc/systemd/system/multi-user.target.wants/tb-agent.service"

cleanup
trap - EXIT
echo "   (package test took $(($(date +%s) - started)) s)"
echo "package-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "package-test: some checks failed (details above)" >&2; exit 1; }

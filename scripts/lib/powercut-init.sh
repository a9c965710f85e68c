#!/bin/busybox sh
# /init of the power-cut test's initramfs (scripts/powercut.sh): runs under busybox inside qemu, mounts the
# virtual disk (/dev/vda, ext4, `defaults,noatime` as Raspberry Pi OS mounts its root) on /data, brings up the
# user-mode network (10.0.2.15; the host's loopback, where tb-sim listens, is 10.0.2.2) and runs tb-agent with its
# state directory on that disk, against tb-sim on the host. It never shuts down: the host ends it with SIGKILL to
# qemu (a power cut), at a moment of its choosing.
#
# Parameters on the kernel command line: pc.port=MQTT port of tb-sim, pc.token=the token to provision with,
# pc.mode=run|provision|logwrites (provision: `tb-agent provision --force` first; logwrites: see below),
# pc.sync=the spool's sync_interval, pc.rounds=how many provisionings (logwrites).
# Console lines for the host, each prefixed `PC `:
#   PC CLOCK <ms>             the guest's wall clock (every 0.5 s), to bound it from the host's
#   PC FAIL <what> <detail>   something the test needs did not work (the host stops and shows it)
#   PC STATUS <exit> <line>   `tb-agent status` on the disk as found after the cut (before the agent runs)
#   PC AGENT-START <ms> <command>, PC AGENT-EXIT <command> <exit>
#   PC LW-DELETE <round> <device>, PC LW-PROVISIONED <round> <exit> <output>, PC LW-DONE (logwrites)
# Everything else on the console is the agent's own log.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

now_ms() {
    adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 } END { if (u > 999999) u = int(u / 1000); printf "%s%03d\n", s, int(u / 1000) }'
}
fail() {
    echo "PC FAIL $*"
    exec sleep 100000
}

PC_PORT=1883 PC_TOKEN=tok PC_MODE=run PC_SYNC=1s PC_ROUNDS=8
for word in $(cat /proc/cmdline); do
    case $word in
        pc.port=*) PC_PORT=${word#*=} ;;
        pc.token=*) PC_TOKEN=${word#*=} ;;
        pc.mode=*) PC_MODE=${word#*=} ;;
        pc.sync=*) PC_SYNC=${word#*=} ;;
        pc.rounds=*) PC_ROUNDS=${word#*=} ;;
    esac
done

(while :; do echo "PC CLOCK $(now_ms)"; usleep 500000; done) &

for m in $(cat /lib/modules/order); do
    out=$(insmod "/lib/modules/$m" 2>&1) || fail insmod "$m: $out"
done

i=0
while [ ! -b /dev/vda ] || ! ip link show eth0 > /dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 200 ] && fail devices "no /dev/vda or eth0 after 10 s (virtio_blk, virtio_net): $(ls /dev | tr '\n' ' ')"
    usleep 50000
done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

sed -e "s/@PORT@/$PC_PORT/" -e "s/@TOKEN@/$PC_TOKEN/" -e "s/@SYNC@/$PC_SYNC/" /etc/tb-agent/config.toml.in \
    > /etc/tb-agent/config.toml
C=/etc/tb-agent/config.toml
mkdir -p /data

if [ "$PC_MODE" = logwrites ]; then
    # Every write to the disk recorded by dm-log-writes on /dev/vdb while the agent provisions PC_ROUNDS times,
    # each with a new token (the device deleted on tb-sim first: asked of the host on the console, which answers
    # `deleted N` on the serial line); after each the log gets a mark `stored-N`. The host replays the log to every flush point and checks the store there.
    i=0
    while [ ! -b /dev/vdb ]; do
        i=$((i + 1))
        [ $i -gt 200 ] && fail devices "no /dev/vdb (the log disk) after 10 s"
        usleep 50000
    done
    size=$(blockdev --getsz /dev/vda) || fail blockdev "/dev/vda"
    out=$(dmsetup create --noudevsync lw --table "0 $size log-writes /dev/vda /dev/vdb" 2>&1) || fail dmsetup "create: $out"
    # No udev here: the device node is made from the numbers the kernel gave it.
    if [ ! -b /dev/mapper/lw ]; then
        set -- $(dmsetup info -c --noheadings -o major,minor --separator ' ' lw)
        mkdir -p /dev/mapper
        mknod /dev/mapper/lw b "$1" "$2" || fail dmsetup "mknod /dev/mapper/lw b $1 $2"
    fi
    out=$(mount -t ext4 -o defaults,noatime /dev/mapper/lw /data 2>&1) || fail mount "/dev/mapper/lw: $out"
    name=$(tb-agent identity --config $C | head -1)
    i=1
    while [ $i -le "$PC_ROUNDS" ]; do
        echo "PC LW-DELETE $i $name"
        read -r reply
        [ "$reply" = "deleted $i" ] || fail serial "expected 'deleted $i' from the host, got '$reply'"
        sed -e "s/@PORT@/$PC_PORT/" -e "s/@TOKEN@/tok-lw-$i/" -e "s/@SYNC@/$PC_SYNC/" /etc/tb-agent/config.toml.in > $C
        tb-agent provision --force --config $C > /tmp/provision.out 2>&1
        status=$?
        echo "PC LW-PROVISIONED $i $status $(tr '\n' '|' < /tmp/provision.out | cut -c1-1500)"
        [ $status -eq 0 ] || fail provision "round $i: exit $status"
        dmsetup message lw 0 mark "stored-$i" || fail dmsetup "mark stored-$i"
        i=$((i + 1))
    done
    umount /data || fail umount "/data"
    dmsetup remove --noudevsync lw || fail dmsetup "remove lw"
    echo "PC LW-DONE"
    sync
    poweroff -f
fi

out=$(mount -t ext4 -o defaults,noatime /dev/vda /data 2>&1) || fail mount "/dev/vda: $out"

# Pulses on the counter's line (GPIO23 of the simulated board), about ten a second, replaced as the harness does.
(while :; do
    for level in 1 0; do echo $level > /board/gpio/GPIO23.tmp; mv /board/gpio/GPIO23.tmp /board/gpio/GPIO23; usleep 50000; done
done) &

out=$(tb-agent status --config $C 2>&1)
echo "PC STATUS $? $(echo "$out" | tr '\n' '|' | cut -c1-400)"

if [ "$PC_MODE" = provision ]; then
    echo "PC AGENT-START $(now_ms) provision"
    tb-agent provision --force --config $C
    echo "PC AGENT-EXIT provision $?"
fi
echo "PC AGENT-START $(now_ms) run"
tb-agent run --config $C
echo "PC AGENT-EXIT run $?"
exec sleep 100000

#!/bin/busybox sh
# /init of the real-kernel GPIO test's initramfs (scripts/vm-test.sh): runs under busybox inside qemu, creates a
# gpio-sim chip with Raspberry-Pi-style line names, and checks the agent's GPIO code through its own commands.
# Every result is one console line: `VMTEST PASS|FAIL NAME DETAIL`; the host parses them. Ends with poweroff.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

pass() { echo "VMTEST PASS $1 $2"; }
fail() { echo "VMTEST FAIL $1 $2"; }
finish() {
    echo "VMTEST DONE"
    sync
    poweroff -f
}
oneline() { tr '\n' '|' | cut -c1-300; }

# Waits until FILE contains PATTERN (10 s at most).
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 200 ] && return 1
        sleep 0.05
    done
}

echo "VMTEST INFO kernel $(uname -r), $(tb-agent --version 2>&1)"

for m in configfs irq-sim gpio-sim; do
    if ! out=$(insmod /lib/modules/$m.ko 2>&1); then
        fail modules "insmod $m.ko: $out"
        finish
    fi
done
mount -t configfs none /sys/kernel/config

D=/sys/kernel/config/gpio-sim/tbagent
mkdir $D $D/bank0
echo 28 > $D/bank0/num_lines
echo pinctrl-sim > $D/bank0/label
for n in 4 17 22 23 27; do
    mkdir $D/bank0/line$n
    echo GPIO$n > $D/bank0/line$n/name
done
echo 1 > $D/live
S=/sys/devices/platform/$(cat $D/dev_name)/$(cat $D/bank0/chip_name)
if [ ! -e "$S/sim_gpio17/pull" ]; then
    fail gpio-sim "no simulated chip at $S"
    finish
fi
echo "VMTEST INFO chip $(cat $D/bank0/chip_name) at $S"

# 1. Levels: the input reads what the pull says.
echo pull-up > $S/sim_gpio17/pull
out=$(tb-agent gpio read GPIO17 2>&1)
[ "$out" = "GPIO17=1" ] && pass read-pull-up "$out" || fail read-pull-up "expected GPIO17=1, got: $(echo "$out" | oneline)"
echo pull-down > $S/sim_gpio17/pull
out=$(tb-agent gpio read GPIO17 2>&1)
[ "$out" = "GPIO17=0" ] && pass read-pull-down "$out" || fail read-pull-down "expected GPIO17=0, got: $(echo "$out" | oneline)"
out=$(tb-agent gpio read --chip pinctrl-sim 17 2>&1)
[ "$out" = "pinctrl-sim:17=0" ] && pass read-chip-offset "$out" || fail read-chip-offset "expected pinctrl-sim:17=0, got: $(echo "$out" | oneline)"
out=$(tb-agent gpio read --active-low GPIO17 2>&1)
[ "$out" = "GPIO17=1" ] && pass read-active-low "$out" || fail read-active-low "expected GPIO17=1, got: $(echo "$out" | oneline)"
# The agent's own bias request reaches the chip (gpio-sim applies it like a pull).
out=$(tb-agent gpio read --bias pull-up GPIO23 2>&1)
[ "$out" = "GPIO23=1" ] && pass read-bias-pull-up "$out" || fail read-bias-pull-up "expected GPIO23=1, got: $(echo "$out" | oneline)"

# 2. An edge is seen as an event, with a kernel timestamp.
echo pull-down > $S/sim_gpio17/pull
tb-agent gpio watch GPIO17 --raw --debounce 0ms --count 1 --for 20s > /tmp/edge.out 2>&1 &
pid=$!
wait_for /tmp/edge.out '^initial GPIO17=0'
echo pull-up > $S/sim_gpio17/pull
wait $pid
if grep -q '^edge GPIO17=1 t=[0-9]*\.[0-9]\{9\}$' /tmp/edge.out && grep -q '^change GPIO17=1' /tmp/edge.out; then
    pass edge-event "$(grep '^edge' /tmp/edge.out | head -1)"
else
    fail edge-event "$(oneline < /tmp/edge.out)"
fi

# 3. Debounce holds on a real burst of edges: seven pull flips 2 ms apart, inside a 300 ms window, give exactly
#    one debounced change, to the final level, stamped with the last edge.
tb-agent gpio watch GPIO17 --raw --debounce 300ms --for 30s > /tmp/burst.out 2>&1 &
pid=$!
wait_for /tmp/burst.out '^initial GPIO17=1'
for p in pull-down pull-up pull-down pull-up pull-down pull-up pull-down; do
    echo $p > $S/sim_gpio17/pull
    usleep 2000
done
sleep 1.5
kill -TERM $pid
wait $pid
edges=$(grep -c '^edge ' /tmp/burst.out)
changes=$(grep -c '^change ' /tmp/burst.out)
change=$(grep '^change ' /tmp/burst.out)
last_edge_t=$(grep '^edge ' /tmp/burst.out | tail -1 | sed 's/.* t=//')
if [ "$edges" -ge 2 ] && [ "$changes" -eq 1 ] && [ "$change" = "change GPIO17=0 t=$last_edge_t" ]; then
    pass debounce-burst "$edges raw edges, one change: $change"
else
    fail debounce-burst "$edges raw edges, $changes changes (want exactly 1, to 0, stamped t=$last_edge_t): $(oneline < /tmp/burst.out)"
fi

# 4. An output line follows the LED pattern: provisioning blinks at 4 Hz, online is steady on.
tb-agent led provisioning --line GPIO22 --for 30s > /tmp/led.out 2>&1 &
pid=$!
wait_for /tmp/led.out '^provisioning on GPIO22'
samples=""
i=0
while [ $i -lt 40 ]; do
    read v < $S/sim_gpio22/value
    samples="$samples$v"
    usleep 50000
    i=$((i + 1))
done
kill -TERM $pid
wait $pid
transitions=$(echo "$samples" | sed 's/\(.\)\1*/\1/g' | wc -c)
transitions=$((transitions - 2))
if [ $transitions -ge 4 ] && echo "$samples" | grep -q 0 && echo "$samples" | grep -q 1; then
    pass led-blink "$transitions transitions in 40 samples: $samples"
else
    fail led-blink "$transitions transitions in 40 samples: $samples ($(oneline < /tmp/led.out))"
fi
tb-agent led online --line GPIO22 --for 30s > /tmp/led2.out 2>&1 &
pid=$!
wait_for /tmp/led2.out '^online on GPIO22'
samples=""
i=0
while [ $i -lt 10 ]; do
    read v < $S/sim_gpio22/value
    samples="$samples$v"
    usleep 50000
    i=$((i + 1))
done
kill -TERM $pid
wait $pid
[ "$samples" = "1111111111" ] && pass led-steady "$samples" || fail led-steady "want 1111111111, got $samples"

# 5. A long press is detected; a short one is not; a button pressed at start is ignored until released.
echo pull-up > $S/sim_gpio27/pull
tb-agent button --line GPIO27 --hold 1s --debounce 50ms --for 30s --exit-on-request > /tmp/button.out 2>&1 &
pid=$!
wait_for /tmp/button.out '^watching GPIO27'
echo pull-down > $S/sim_gpio27/pull
sleep 1.6
echo pull-up > $S/sim_gpio27/pull
wait $pid
if grep -q '^pressed ' /tmp/button.out && grep -q '^held ' /tmp/button.out && grep -q '^released .*held=' /tmp/button.out \
    && grep -q '^reprovision-requested ' /tmp/button.out; then
    pass long-press "$(grep '^released' /tmp/button.out)"
else
    fail long-press "$(oneline < /tmp/button.out)"
fi

tb-agent button --line GPIO27 --hold 1s --debounce 50ms --for 30s > /tmp/short.out 2>&1 &
pid=$!
wait_for /tmp/short.out '^watching GPIO27'
echo pull-down > $S/sim_gpio27/pull
sleep 0.3
echo pull-up > $S/sim_gpio27/pull
wait_for /tmp/short.out '^released'
sleep 0.3
kill -TERM $pid
wait $pid
if grep -q '^released ' /tmp/short.out && ! grep -q 'reprovision-requested' /tmp/short.out; then
    pass short-press "$(grep '^released' /tmp/short.out)"
else
    fail short-press "$(oneline < /tmp/short.out)"
fi

# As-is bias: the agent's own pull-up request would release the simulated button (gpio-sim applies a consumer's
# bias like a pull).
echo pull-down > $S/sim_gpio27/pull
tb-agent button --line GPIO27 --bias as-is --hold 1s --debounce 50ms --for 30s > /tmp/stuck.out 2>&1 &
pid=$!
wait_for /tmp/stuck.out '^ignored-pressed-at-start'
sleep 1.3
echo pull-up > $S/sim_gpio27/pull
wait_for /tmp/stuck.out '^armed'
kill -TERM $pid
wait $pid
if grep -q '^ignored-pressed-at-start' /tmp/stuck.out && grep -q '^armed' /tmp/stuck.out \
    && ! grep -q 'reprovision-requested\|^held' /tmp/stuck.out; then
    pass stuck-at-start "$(grep -c . /tmp/stuck.out) lines, no request"
else
    fail stuck-at-start "$(oneline < /tmp/stuck.out)"
fi

# 6. Errors name the line and the fix: a busy line names its consumer; an unknown line lists what exists.
tb-agent gpio set GPIO22 1 --hold 30s > /tmp/set.out 2>&1 &
pid=$!
wait_for /tmp/set.out '^GPIO22=1'
read v < $S/sim_gpio22/value
[ "$v" = "1" ] && pass output-set "sim_gpio22/value=$v" || fail output-set "sim_gpio22/value=$v"
out=$(tb-agent gpio read GPIO22 2>&1)
if echo "$out" | grep -q "busy: used by 'tb-agent gpio set'"; then
    pass busy-names-consumer "$out"
else
    fail busy-names-consumer "$(echo "$out" | oneline)"
fi
kill -TERM $pid
wait $pid
out=$(tb-agent gpio read GPIO99 2>&1)
if echo "$out" | grep -q "GPIO line 'GPIO99' not found" && echo "$out" | grep -q "pinctrl-sim.*GPIO17"; then
    pass not-found-lists-lines "$out"
else
    fail not-found-lists-lines "$(echo "$out" | oneline)"
fi

# 7. Permission denied names the gpio group, and membership of that group is enough.
echo "root:x:0:0:root:/:/bin/sh" > /etc/passwd
echo "tester:x:1000:1000:tester:/tmp:/bin/sh" >> /etc/passwd
printf 'root:x:0:\ngpio:x:997:\ntester:x:1000:\n' > /etc/group
chgrp gpio /dev/gpiochip*
chmod 660 /dev/gpiochip*
out=$(su -s /bin/sh tester -c "tb-agent gpio read GPIO17" 2>&1)
status=$?
if [ $status -eq 77 ] && echo "$out" | grep -q 'permission denied' && echo "$out" | grep -q '`gpio` group'; then
    pass permission-names-gpio-group "$out"
else
    fail permission-names-gpio-group "exit $status: $(echo "$out" | oneline)"
fi
printf 'root:x:0:\ngpio:x:997:tester\ntester:x:1000:\n' > /etc/group
out=$(su -s /bin/sh tester -c "tb-agent gpio read GPIO17" 2>&1)
echo "$out" | grep -q '^GPIO17=[01]$' && pass gpio-group-suffices "$out" || fail gpio-group-suffices "$(echo "$out" | oneline)"

finish

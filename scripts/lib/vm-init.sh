#!/bin/busybox sh
# /init of the real-kernel GPIO test's initramfs (scripts/vm-test.sh): runs under busybox inside qemu, creates
# gpio-sim chips shaped like a Raspberry Pi's (a first chip that is not the header's, then the header's chip with
# its label and line names), and checks the agent's GPIO code through its own commands.
# Every result is one console line: `VMTEST PASS|FAIL NAME DETAIL`; the host parses them. Ends with poweroff.
#
# The host checks that every check below reported PASS (scripts/vm-test.sh reads this line):
# CHECKS: libgpiod-api read-pull-up read-pull-down read-chip-offset read-chip-path-offset chip-number-refused name-across-chips read-active-low read-bias-pull-up edge-event debounce-burst debounce-burst-kernel led-blink led-steady long-press short-press stuck-at-start output-set busy-names-consumer not-found-lists-lines permission-names-gpio-group gpio-group-suffices not-dumpable
#
# Parameters, from /etc/vm-test.conf (shell assignments; what is not set there keeps the default below), so the
# same checks run on other kernels and boards: the arm64 run gives the chip the Raspberry Pi 5's label and line
# names and expects the libgpiod v2 API.
VMTEST_CHIP_LABEL=pinctrl-sim                 # the header chip's label (pinctrl-rp1 for a Pi 5)
# The header chip's line names by offset ("-" for an unnamed line); as many lines as names.
VMTEST_LINE_NAMES="ID_SDA ID_SCL GPIO2 GPIO3 GPIO4 GPIO5 GPIO6 GPIO7 GPIO8 GPIO9 GPIO10 GPIO11 GPIO12 GPIO13 GPIO14 GPIO15 GPIO16 GPIO17 GPIO18 GPIO19 GPIO20 GPIO21 GPIO22 GPIO23 GPIO24 GPIO25 GPIO26 GPIO27"
VMTEST_INPUT=17                                # offsets of the lines the checks use: an input (door, edges)
VMTEST_LED=22                                  # an output (the LED)
VMTEST_BIAS=23                                 # an input read with the agent's own pull-up
VMTEST_BUTTON=27                               # the re-provisioning button
VMTEST_GPIOD_API=1                             # the libgpiod API the agent must report (tb-agent --version)
VMTEST_KERNEL_DEBOUNCE=                        # yes|no: the kernel debounces (default: yes with API 2)
VMTEST_MODULES="configfs irq-sim gpio-sim"     # /lib/modules/NAME.ko, loaded in this order
[ -f /etc/vm-test.conf ] && . /etc/vm-test.conf
[ -n "$VMTEST_KERNEL_DEBOUNCE" ] || { [ "$VMTEST_GPIOD_API" = 2 ] && VMTEST_KERNEL_DEBOUNCE=yes || VMTEST_KERNEL_DEBOUNCE=no; }

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

# The name of the header chip's line at offset $1.
line_name() {
    set -- $(($1 + 1)) $VMTEST_LINE_NAMES
    shift "$1"
    echo "$1"
}
LABEL=$VMTEST_CHIP_LABEL
IN=$(line_name $VMTEST_INPUT)
LED=$(line_name $VMTEST_LED)
BIAS=$(line_name $VMTEST_BIAS)
BUTTON=$(line_name $VMTEST_BUTTON)

version=$(tb-agent --version 2>&1)
echo "VMTEST INFO kernel $(uname -r), $(echo "$version" | oneline)"
if echo "$version" | sed -n 2p | grep -q "^libgpiod [0-9.]* (v$VMTEST_GPIOD_API API)\$"; then
    pass libgpiod-api "$(echo "$version" | sed -n 2p)"
else
    fail libgpiod-api "want the v$VMTEST_GPIOD_API API, got: $(echo "$version" | oneline)"
fi

for m in $VMTEST_MODULES; do
    if ! out=$(insmod /lib/modules/$m.ko 2>&1); then
        fail modules "insmod $m.ko: $out"
        finish
    fi
done
mount -t configfs none /sys/kernel/config

# Two chips on one simulated device: bank0, a chip that is not the header's (so the header's chip is not
# gpiochip0, and a name is found only by looking at every chip), then bank1, the header's chip.
D=/sys/kernel/config/gpio-sim/tbagent
mkdir $D $D/bank0 $D/bank1
echo 4 > $D/bank0/num_lines
echo other-gpio > $D/bank0/label
mkdir $D/bank0/line1
echo OTHER1 > $D/bank0/line1/name
set -- $VMTEST_LINE_NAMES
echo $# > $D/bank1/num_lines
echo "$LABEL" > $D/bank1/label
offset=0
for name in $VMTEST_LINE_NAMES; do
    if [ "$name" != "-" ]; then
        mkdir $D/bank1/line$offset
        echo "$name" > $D/bank1/line$offset/name
    fi
    offset=$((offset + 1))
done
echo 1 > $D/live
CHIP=$(cat $D/bank1/chip_name)
OTHER=$(cat $D/bank0/chip_name)
S=/sys/devices/platform/$(cat $D/dev_name)/$CHIP
if [ ! -e "$S/sim_gpio$VMTEST_INPUT/pull" ]; then
    fail gpio-sim "no simulated chip at $S"
    finish
fi
echo "VMTEST INFO chip $CHIP [$LABEL] at $S, $OTHER [other-gpio] before it; lines $IN $LED $BIAS $BUTTON"

# 1. Levels: the input reads what the pull says.
echo pull-up > $S/sim_gpio$VMTEST_INPUT/pull
out=$(tb-agent gpio read $IN 2>&1)
[ "$out" = "$IN=1" ] && pass read-pull-up "$out" || fail read-pull-up "expected $IN=1, got: $(echo "$out" | oneline)"
echo pull-down > $S/sim_gpio$VMTEST_INPUT/pull
out=$(tb-agent gpio read $IN 2>&1)
[ "$out" = "$IN=0" ] && pass read-pull-down "$out" || fail read-pull-down "expected $IN=0, got: $(echo "$out" | oneline)"
# By the chip's label, by its path, never by its number; by name on whichever chip has the line.
out=$(tb-agent gpio read --chip "$LABEL" $VMTEST_INPUT 2>&1)
want="$LABEL:$VMTEST_INPUT=0"
[ "$out" = "$want" ] && pass read-chip-offset "$out" || fail read-chip-offset "expected $want, got: $(echo "$out" | oneline)"
out=$(tb-agent gpio read --chip /dev/$CHIP $VMTEST_INPUT 2>&1)
want="/dev/$CHIP:$VMTEST_INPUT=0"
[ "$out" = "$want" ] && pass read-chip-path-offset "$out" || fail read-chip-path-offset "expected $want, got: $(echo "$out" | oneline)"
number=${CHIP#gpiochip}
out=$(tb-agent gpio read --chip "$number" $VMTEST_INPUT 2>&1)
status=$?
if [ $status -ne 0 ] && echo "$out" | grep -q "chip numbers change between kernels" && echo "$out" | grep -q "'$LABEL' on $CHIP"; then
    pass chip-number-refused "exit $status: $out"
else
    fail chip-number-refused "exit $status: $(echo "$out" | oneline)"
fi
# The chips listed before the header's: other-gpio, and on some machines more (qemu's arm64 virt has a PL061 first).
list=$(tb-agent gpio list 2>&1)
chips=$(echo "$list" | grep '^gpiochip' | cut -d' ' -f1-2 | tr '\n' ' ')
before=${chips%%"$CHIP [$LABEL]"*}
other=$(tb-agent gpio read OTHER1 2>&1)
if [ "$CHIP" != gpiochip0 ] && [ "$before" != "$chips" ] && echo "$before" | grep -q "$OTHER \\[other-gpio\\]" \
    && [ "$other" = "OTHER1=0" ]; then
    pass name-across-chips "$IN found on $CHIP, after ${before% }; OTHER1 on $OTHER"
else
    fail name-across-chips "chips: $(echo "$list" | grep '^gpiochip' | oneline); OTHER1: $other"
fi
out=$(tb-agent gpio read --active-low $IN 2>&1)
[ "$out" = "$IN=1" ] && pass read-active-low "$out" || fail read-active-low "expected $IN=1, got: $(echo "$out" | oneline)"
# The agent's own bias request reaches the chip (gpio-sim applies it like a pull).
out=$(tb-agent gpio read --bias pull-up $BIAS 2>&1)
[ "$out" = "$BIAS=1" ] && pass read-bias-pull-up "$out" || fail read-bias-pull-up "expected $BIAS=1, got: $(echo "$out" | oneline)"

# 2. An edge is seen as an event, with a kernel timestamp.
echo pull-down > $S/sim_gpio$VMTEST_INPUT/pull
tb-agent gpio watch $IN --raw --debounce 0ms --count 1 --for 20s > /tmp/edge.out 2>&1 &
pid=$!
wait_for /tmp/edge.out "^initial $IN=0"
echo pull-up > $S/sim_gpio$VMTEST_INPUT/pull
wait $pid
if grep -q "^edge $IN=1 t=[0-9]*\\.[0-9]\\{9\\}\$" /tmp/edge.out && grep -q "^change $IN=1" /tmp/edge.out; then
    pass edge-event "$(grep '^edge' /tmp/edge.out | head -1)"
else
    fail edge-event "$(oneline < /tmp/edge.out)"
fi

# 3. Debounce holds on a real burst of edges: seven pull flips 2 ms apart, inside a 300 ms window, give exactly
#    one debounced change, to the final level, stamped with the last edge. First the software debouncer alone
#    (every raw edge reaches it), then with the kernel asked to debounce too: with libgpiod v2 the kernel takes it
#    (gpio-sim has no hardware debounce, so the kernel's own debouncer runs) and passes on one edge, stamped with
#    the time the line settled, and the change is the same; with v1 nothing changes.
burst() {  # burst OUTPUT [gpio watch options]
    file=$1
    shift
    echo pull-up > $S/sim_gpio$VMTEST_INPUT/pull
    tb-agent gpio watch $IN --raw --debounce 300ms --for 30s "$@" > $file 2>&1 &
    pid=$!
    wait_for $file "^initial $IN=1"
    for p in pull-down pull-up pull-down pull-up pull-down pull-up pull-down; do
        echo $p > $S/sim_gpio$VMTEST_INPUT/pull
        usleep 2000
    done
    sleep 1.5
    kill -TERM $pid
    wait $pid
    edges=$(grep -c '^edge ' $file)
    changes=$(grep -c '^change ' $file)
    change=$(grep '^change ' $file)
    last_edge_t=$(grep '^edge ' $file | tail -1 | sed 's/.* t=//')
}
burst /tmp/burst.out --no-kernel-debounce
if [ "$edges" -ge 2 ] && [ "$changes" -eq 1 ] && [ "$change" = "change $IN=0 t=$last_edge_t" ] \
    && ! grep -q '^kernel-debounce' /tmp/burst.out; then
    pass debounce-burst "$edges raw edges, one change: $change"
else
    fail debounce-burst "$edges raw edges, $changes changes (want exactly 1, to 0, stamped t=$last_edge_t): $(oneline < /tmp/burst.out)"
fi
burst /tmp/burst2.out
if [ "$VMTEST_KERNEL_DEBOUNCE" = yes ]; then
    want_kernel="kernel-debounce $IN 300ms"
    edges_ok=$([ "$edges" -eq 1 ] && echo yes)
else
    want_kernel=""
    edges_ok=$([ "$edges" -ge 2 ] && echo yes)
fi
kernel=$(grep '^kernel-debounce' /tmp/burst2.out)
if [ "$kernel" = "$want_kernel" ] && [ "$edges_ok" = yes ] && [ "$changes" -eq 1 ] && [ "$change" = "change $IN=0 t=$last_edge_t" ]; then
    pass debounce-burst-kernel "kernel debounce: ${kernel:-none}; $edges raw edges, one change: $change"
else
    fail debounce-burst-kernel "want '${want_kernel:-no kernel debounce}'; $edges raw edges, $changes changes: $(oneline < /tmp/burst2.out)"
fi

# 4. An output line follows the LED pattern: provisioning blinks at 4 Hz, online is steady on.
tb-agent led provisioning --line $LED --for 30s > /tmp/led.out 2>&1 &
pid=$!
wait_for /tmp/led.out "^provisioning on $LED"
samples=""
i=0
while [ $i -lt 40 ]; do
    read v < $S/sim_gpio$VMTEST_LED/value
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
tb-agent led online --line $LED --for 30s > /tmp/led2.out 2>&1 &
pid=$!
wait_for /tmp/led2.out "^online on $LED"
samples=""
i=0
while [ $i -lt 10 ]; do
    read v < $S/sim_gpio$VMTEST_LED/value
    samples="$samples$v"
    usleep 50000
    i=$((i + 1))
done
kill -TERM $pid
wait $pid
[ "$samples" = "1111111111" ] && pass led-steady "$samples" || fail led-steady "want 1111111111, got $samples"

# 5. A long press is detected; a short one is not; a button pressed at start is ignored until released.
echo pull-up > $S/sim_gpio$VMTEST_BUTTON/pull
tb-agent button --line $BUTTON --hold 1s --debounce 50ms --for 30s --exit-on-request > /tmp/button.out 2>&1 &
pid=$!
wait_for /tmp/button.out "^watching $BUTTON"
echo pull-down > $S/sim_gpio$VMTEST_BUTTON/pull
sleep 1.6
echo pull-up > $S/sim_gpio$VMTEST_BUTTON/pull
wait $pid
if grep -q '^pressed ' /tmp/button.out && grep -q '^held ' /tmp/button.out && grep -q '^released .*held=' /tmp/button.out \
    && grep -q '^reprovision-requested ' /tmp/button.out; then
    pass long-press "$(grep '^released' /tmp/button.out)"
else
    fail long-press "$(oneline < /tmp/button.out)"
fi

tb-agent button --line $BUTTON --hold 1s --debounce 50ms --for 30s > /tmp/short.out 2>&1 &
pid=$!
wait_for /tmp/short.out "^watching $BUTTON"
echo pull-down > $S/sim_gpio$VMTEST_BUTTON/pull
sleep 0.3
echo pull-up > $S/sim_gpio$VMTEST_BUTTON/pull
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
echo pull-down > $S/sim_gpio$VMTEST_BUTTON/pull
tb-agent button --line $BUTTON --bias as-is --hold 1s --debounce 50ms --for 30s > /tmp/stuck.out 2>&1 &
pid=$!
wait_for /tmp/stuck.out '^ignored-pressed-at-start'
sleep 1.3
echo pull-up > $S/sim_gpio$VMTEST_BUTTON/pull
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
tb-agent gpio set $LED 1 --hold 30s > /tmp/set.out 2>&1 &
pid=$!
wait_for /tmp/set.out "^$LED=1"
read v < $S/sim_gpio$VMTEST_LED/value
[ "$v" = "1" ] && pass output-set "sim_gpio$VMTEST_LED/value=$v" || fail output-set "sim_gpio$VMTEST_LED/value=$v"
out=$(tb-agent gpio read $LED 2>&1)
if echo "$out" | grep -q "busy: used by 'tb-agent gpio set'"; then
    pass busy-names-consumer "$out"
else
    fail busy-names-consumer "$(echo "$out" | oneline)"
fi
kill -TERM $pid
wait $pid
out=$(tb-agent gpio read GPIO99 2>&1)
if echo "$out" | grep -q "GPIO line 'GPIO99' not found" && echo "$out" | grep -q "$CHIP \\[$LABEL\\].* $IN" \
    && echo "$out" | grep -q "$OTHER \\[other-gpio\\]"; then
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
out=$(su -s /bin/sh tester -c "tb-agent gpio read $IN" 2>&1)
status=$?
if [ $status -eq 77 ] && echo "$out" | grep -q 'permission denied' && echo "$out" | grep -q '`gpio` group'; then
    pass permission-names-gpio-group "$out"
else
    fail permission-names-gpio-group "exit $status: $(echo "$out" | oneline)"
fi
printf 'root:x:0:\ngpio:x:997:tester\ntester:x:1000:\n' > /etc/group
out=$(su -s /bin/sh tester -c "tb-agent gpio read $IN" 2>&1)
echo "$out" | grep -q "^$IN=[01]\$" && pass gpio-group-suffices "$out" || fail gpio-group-suffices "$(echo "$out" | oneline)"

# 8. Every tb-agent command makes itself non-dumpable (no core dump holds a secret; its own user cannot read its
#    memory or environment): its /proc/PID files belong to root although it runs as tester.
su -s /bin/sh tester -c "exec tb-agent gpio watch $IN --for 5s" > /tmp/watch-dumpable.out 2>&1 &
pid=$!
wait_for /tmp/watch-dumpable.out "^initial $IN=" || true
owner=$(stat -c %u /proc/$pid/environ 2>&1)
runs_as=$(awk '/^Uid:/ { print $2 }' /proc/$pid/status 2>&1)
if [ "$owner" = 0 ] && [ "$runs_as" = 1000 ] && ! su -s /bin/sh tester -c "cat /proc/$pid/environ" > /dev/null 2>&1; then
    pass not-dumpable "runs as uid $runs_as, /proc/$pid/environ owned by uid $owner and unreadable to it"
else
    fail not-dumpable "runs as uid $runs_as, /proc/$pid/environ owned by uid $owner"
fi
kill -TERM $pid 2>/dev/null
wait $pid

finish

#!/usr/bin/env bash
# The aarch64 tests, on this x86_64 machine: tb-agent and its Swift tests cross-built for aarch64
# (scripts/cross-build.sh) and run under qemu-user through binfmt_misc.
#   1. the Swift test suites of the modules that carry no server (core, configuration, platform, MQTT against a
#      real mosquitto, board I/O), built for aarch64 and run under emulation;
#   2. an end-to-end smoke: the aarch64 release tb-agent provisions against tb-sim (native), stores its
#      credentials, publishes telemetry, restarts on them, and answers RPCs: the end-to-end tests of the native
#      suite, run with the aarch64 agent in place of the native one.
#
#   scripts/arm64-test.sh                       trixie (libgpiod v2), the Raspberry Pi OS of today
#   scripts/arm64-test.sh --target bookworm     bookworm (libgpiod v1, glibc 2.36): the end-to-end smoke only, since
#                                               the Swift test bundle links sid's shared Swift runtime, which needs
#                                               glibc 2.38 (the release binary links it statically, with wrappers)
#
# Needs the native debug build (.build/debug: tb-sim and the native test bundle); scripts/test.sh makes it first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
target=trixie
[ "${1:-}" = "--target" ] && target=${2:?--target needs trixie or bookworm}
started=$(date +%s)
log() { printf '== arm64-test: %s (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }
die() { printf 'arm64-test: FAILED: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_aarch64_binfmt

unit_tests=true
[ "$target" = bookworm ] && unit_tests=false
if $unit_tests; then bash scripts/cross-build.sh --target "$target" --tests; else bash scripts/cross-build.sh --target "$target"; fi
eval "$(bash scripts/cross-build.sh --target "$target" --env)"
bundle="$TB_CROSS_SCRATCH/debug/tb-agentPackageTests.xctest"
checked="$TB_CROSS_BINARY"
$unit_tests && checked="$checked $bundle"
for f in $checked; do
    file -b "$f" | grep -q 'ARM aarch64' || die "$f is not an aarch64 executable"
done
native_bundle="$root/.build/debug/tb-agentPackageTests.xctest"
[ -x "$native_bundle" ] && [ -x "$root/.build/debug/tb-sim" ] || die "the native debug build is missing: run swift build --build-tests first"

# Under qemu-user the aarch64 loader, libraries and Swift runtime come from the target's sysroot: qemu looks up
# every absolute path the program opens there first (QEMU_LD_PREFIX), so /usr/lib/swift/linux is the sysroot's.
export QEMU_LD_PREFIX="$TB_CROSS_SYSROOT"
status=0

if $unit_tests; then
log "Swift tests for aarch64 under qemu-user: core, configuration, platform, MQTT, GPIO, board I/O"
# One at a time, as natively: tests that block their thread starve the others' waits on a 2-core machine, and
# emulation makes every thread slower.
tests_log="$TB_CROSS_SCRATCH/arm64-tests.log"
LD_LIBRARY_PATH=/usr/lib/swift/linux "$bundle" --testing-library swift-testing --no-parallel \
    --filter '^AgentCoreTests\.' --filter '^AgentConfigTests\.' --filter '^AgentPlatformTests\.' \
    --filter '^AgentMQTTTests\.' --filter '^BoardIOTests\.' --filter '^AgentGPIOTests\.' > "$tests_log" 2>&1 || true
# What went wrong, without the lines of every test that started or passed.
grep -vE "(◇|↳|✔) " "$tests_log" | cut -c1-400 >&2 || true
# The closing line says how many ran; anything short of "passed" is a failure.
closing=$(grep -E 'Test run with [0-9]+ tests? .*(passed|failed)' "$tests_log" | tail -1 || true)
case "$closing" in
    *" passed after "*) log "aarch64: ${closing#*Test run with }" ;;
    *) echo "arm64-test: the aarch64 Swift tests failed: ${closing:-no closing line (see $tests_log)}" >&2
       status=1 ;;
esac
fi

log "end-to-end smoke: the aarch64 tb-agent against tb-sim"
bin="$root/.build/arm64-e2e-$target"
rm -rf "$bin"
mkdir -p "$bin"
ln -s "$TB_CROSS_BINARY" "$bin/tb-agent"
ln -s "$root/.build/debug/tb-sim" "$bin/tb-sim"
# The agent the tests start must be the aarch64 one: it says so itself (the kernel could not run it without qemu).
"$bin/tb-agent" --version > /dev/null || die "the aarch64 tb-agent does not run under qemu-user"
if ! TB_BIN_DIR="$bin" "$native_bundle" --testing-library swift-testing --no-parallel \
        --filter 'EndToEndTests.FirstStartTests/firstStartThenRestart' \
        --filter 'EndToEndTests.RemoteControlTests/rpcMethods' > "$bin/e2e.log" 2>&1; then
    grep -vE "(◇|↳) " "$bin/e2e.log" | cut -c1-400 | tail -40 >&2
    echo "arm64-test: the end-to-end smoke with the aarch64 agent failed" >&2
    status=1
else
    closing=$(grep -E 'Test run with [0-9]+ tests?' "$bin/e2e.log" | tail -1)
    case "$closing" in
        *"with 2 tests"*" passed "*) log "end-to-end: ${closing#*Test run with }" ;;
        *) echo "arm64-test: expected the 2 end-to-end tests to run and pass: $closing" >&2; status=1 ;;
    esac
fi
[ $status -eq 0 ] && log "all aarch64 tests passed"
exit $status

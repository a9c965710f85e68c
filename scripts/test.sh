#!/usr/bin/env bash
# The README's test command: installs what is missing (apt packages, a Python virtual environment with the
# third-party clients), builds, and runs every test: Swift unit and integration tests, the tb-sim conformance
# tests with clients nobody here wrote, the release binaries' link check, the real-kernel GPIO test and the power
# cuts on a real kernel.
#
#   scripts/test.sh            everything
#   scripts/test.sh --swift    only the Swift tests (quicker while developing)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
only_swift=false
[ "${1:-}" = "--swift" ] && only_swift=true

log() { printf '\n== %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_swift
ensure_apt_packages $TB_BUILD_PACKAGES $TB_TEST_PACKAGES

log "building"
mkdir -p .build
if ! swift build --build-tests > .build/build.log 2>&1; then
    grep -vE '^\[[0-9]+/[0-9]+\] ' .build/build.log >&2
    echo "build failed" >&2
    exit 1
fi
export TB_BIN_DIR="$root/.build/debug"

status=0
log "Swift tests"
# One test at a time: many tests wait on real processes and sockets, and on a 2-core machine tests that block
# their thread starve the others' async waits (Swift's cooperative pool has one thread per core).
swift test --skip-build --no-parallel || status=1

if ! $only_swift; then
    if ls Tests/conformance/test_*.py >/dev/null 2>&1; then
        log "tb-sim conformance with third-party clients (paho-mqtt, tb-mqtt-client, mosquitto_pub)"
        venv=$(ensure_python_venv)
        TB_SDK_PYTHON="$(ensure_sdk_venv)/bin/python"
        export TB_SDK_PYTHON
        "$venv/bin/python" -m pytest -q Tests/conformance || status=1
    fi
    log "the README's demo, non-interactively"
    scripts/demo.sh --check || status=1
    log "fault suite, short form (scripts/faults.sh --long for release)"
    scripts/faults.sh || status=1
    log "fuzzing smoke run (5 s per parser; scripts/fuzz.sh --seconds N for long runs)"
    scripts/fuzz.sh --seconds 5 --seed 1 || status=1
    # The machine's libgpiod is v1; the aarch64 build is against trixie's libgpiod v2, so both APIs are compiled,
    # and each is proven on a real kernel below (vm-test.sh: x86_64 with v1, arm64 with v2).
    log "aarch64: cross-built tb-agent and Swift tests under qemu-user (scripts/arm64-test.sh)"
    scripts/arm64-test.sh || status=1
    log "aarch64 for bookworm (libgpiod v1, glibc 2.36 through scripts/lib/glibc-compat.c): end-to-end smoke"
    scripts/arm64-test.sh --target bookworm || status=1
    # Issue 11: no Foundation, FoundationInternationalization, CoreFoundation or ICU in the agent, and the Swift
    # runtime linked statically; proven first on control programs that do link them (the script's self-test).
    log "release binaries: no Foundation (not even FoundationEssentials), ICU or shared Swift runtime (x86_64 built here, and the aarch64 builds above)"
    release_check=(--build --forbid-foundation-essentials)
    for target in trixie bookworm; do
        aarch64_binary=$(bash scripts/cross-build.sh --target "$target" --env | sed -n "s/^TB_CROSS_BINARY='\(.*\)'$/\1/p")
        if [ -f "$aarch64_binary" ]; then release_check+=(--bin "$aarch64_binary"); fi
    done
    scripts/check-release-binary.sh "${release_check[@]}" || status=1
    # Issue 10: under each server flood the agent as shipped (release, the Swift runtime static) keeps feeding the
    # watchdog and bounds its memory; its whole RSS, the mapped binary included, stays under 16 MiB (the kernel's
    # high-water mark from READY=1 on).
    log "server floods against the release tb-agent: watchdog fed, memory bounded, RSS under 16 MiB"
    release_bins=$(mktemp -d)
    ln -s "$root/.build-release/release/tb-agent" "$release_bins/tb-agent"
    ln -s "$TB_BIN_DIR/tb-sim" "$release_bins/tb-sim"
    TB_FAULTS_RSS_LIMIT_MIB=16 TB_BIN_DIR="$release_bins" scripts/faults.sh --only floods || status=1
    rm -rf "$release_bins"
    if [ -x scripts/vm-test.sh ]; then
        log "real-kernel GPIO test under qemu (x86_64 kernel, libgpiod v1)"
        scripts/vm-test.sh || status=1
        log "real-kernel GPIO test on an arm64 kernel (aarch64 agent, libgpiod v2, a Raspberry Pi 5's pinctrl-rp1 chip)"
        scripts/vm-test.sh --arch arm64 || status=1
    fi
    if [ -x scripts/powercut.sh ]; then
        # Issue 14: qemu SIGKILLed (a power cut: the guest's page cache is lost) while the release agent provisions,
        # spools and replays on an ext4 disk image; the long form (--long, 200 cuts) is for releases.
        log "power cuts on a real kernel, short form (scripts/powercut.sh --long for release)"
        scripts/powercut.sh || status=1
    fi
    if [ -x scripts/package-test.sh ]; then
        log "Debian packages: build, install, run, upgrade and purge in throwaway chroots (amd64 bookworm; arm64 trixie under qemu-user)"
        scripts/package-test.sh || status=1
    fi
fi

if [ $status -ne 0 ]; then echo "some tests failed" >&2; fi
exit $status

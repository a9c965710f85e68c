#!/usr/bin/env bash
# tb-agent beside its peers, on this machine: telemetry throughput against mosquitto_pub and ThingsBoard's Python
# SDK on one mosquitto broker, idle cost, provisioning latency, cold start, GPIO edge → PUBLISH, binary size, a
# fleet through a tb-sim outage, and a backlog drained through tb-sim's rate limits (issue 12). Prints a Markdown table (medians over the rounds, ratios to each peer) and issue
# 11's targets, PASS/MISS each: stripped static release binary ≤ 10 MB on x86_64 (≤ 12 MB on aarch64, for a
# cross-build.sh binary found or given), idle RSS ≤ 9 MB, peak RSS while publishing ≤ 10 MB, one reading per PUBLISH
# at ≥ 1.0 × mosquitto_pub's rate and ≤ 1.3 × its CPU per message, a batched backlog at ≥ 2.5 × its rate, idle CPU
# ≤ 0.3 % of a core at five sensors a second; then where the RSS is (/proc/PID/smaps, by mapping). Everything stays
# on 127.0.0.1, on free ports.
#
#   scripts/bench.sh                     the full run (3 rounds, 60 s idle windows, 200 agents): about 10 minutes
#   scripts/bench.sh --quick             15 s idle windows, 50 agents, 200 edges
#   scripts/bench.sh --rounds 5          more rounds
#   scripts/bench.sh --only throughput,edge   some sections: throughput idle provision cold edge size fleet replay
#   scripts/bench.sh --agents 100        fleet size
#   scripts/bench.sh --json FILE         also keep the raw figures
#   scripts/bench.sh --aarch64 PATH      the aarch64 tb-agent to size (default: scripts/cross-build.sh's outputs,
#                                        .build-aarch64-trixie and -bookworm/release/tb-agent, those that exist)
#
# It installs what is missing (Debian packages, the SDK's virtual environment) and builds the release binaries
# with the static Swift standard library in .build-release (git-ignored). Timings depend on the machine's load:
# run it on an otherwise idle machine for figures worth publishing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) args+=(--quick) ;;
        --rounds|--only|--agents|--json|--aarch64)
            [ $# -ge 2 ] || { echo "bench.sh: $1 needs a value" >&2; exit 64; }
            args+=("$1" "$2"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
    shift
done

# The aarch64 binaries scripts/cross-build.sh made, unless given: sized, not built (that needs root and a sid chroot).
given_aarch64=false
for a in ${args[@]+"${args[@]}"}; do [ "$a" = --aarch64 ] && given_aarch64=true; done
if ! $given_aarch64; then
    for target in trixie bookworm; do
        binary=$(bash scripts/cross-build.sh --target "$target" --env | sed -n "s/^TB_CROSS_BINARY='\(.*\)'$/\1/p")
        if [ -f "$binary" ]; then args+=(--aarch64 "$binary"); fi
    done
fi

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_swift
# time: /usr/bin/time -f for CPU and peak RSS of each client; binutils: strip (binutils-aarch64-linux-gnu: an aarch64
# binary's).
# shellcheck disable=SC2086  # the package lists are word lists
ensure_apt_packages $TB_BUILD_PACKAGES mosquitto mosquitto-clients python3 python3-venv time binutils \
    binutils-aarch64-linux-gnu
sdk_venv=$(ensure_sdk_venv)

if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh: the GPIO edge timing reads packets from the loopback interface (AF_PACKET) and needs root;" \
         "run it as root or leave that section out with --only" >&2
fi

echo "building the release binaries (static Swift stdlib) in .build-release..." >&2
mkdir -p .build-release
log=.build-release/bench-build.log
: > "$log"
for product in tb-agent tb-sim; do
    if ! swift build -c release --static-swift-stdlib --scratch-path .build-release --product "$product" >> "$log" 2>&1; then
        grep -vE '^\[[0-9]+/[0-9]+\] ' "$log" | tail -40 >&2
        echo "bench.sh: the release build failed (full log: $log)" >&2
        exit 1
    fi
done
rm -f "$log"
bin=$(swift build -c release --static-swift-stdlib --scratch-path .build-release --show-bin-path)

exec python3 "$root/scripts/lib/bench.py" --bin "$bin" --root "$root" --sdk-python "$sdk_venv/bin/python" "${args[@]}"

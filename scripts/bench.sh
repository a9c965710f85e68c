#!/usr/bin/env bash
# tb-agent beside its peers, on this machine: telemetry throughput against mosquitto_pub and ThingsBoard's Python
# SDK on one mosquitto broker, idle cost, provisioning latency, cold start, GPIO edge → PUBLISH, binary size, and a
# fleet through a tb-sim outage. Prints a Markdown table (medians over the rounds, ratios to each peer, PASS/MISS
# per target). Everything stays on 127.0.0.1, on free ports.
#
#   scripts/bench.sh                     the full run (3 rounds, 60 s idle windows, 200 agents): about 10 minutes
#   scripts/bench.sh --quick             15 s idle windows, 50 agents, 200 edges
#   scripts/bench.sh --rounds 5          more rounds
#   scripts/bench.sh --only throughput,edge   some sections: throughput idle provision cold edge size fleet
#   scripts/bench.sh --agents 100        fleet size
#   scripts/bench.sh --json FILE         also keep the raw figures
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
        --rounds|--only|--agents|--json)
            [ $# -ge 2 ] || { echo "bench.sh: $1 needs a value" >&2; exit 64; }
            args+=("$1" "$2"); shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
    shift
done

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_swift
# time: /usr/bin/time -f for CPU and peak RSS of each client; binutils: strip.
# shellcheck disable=SC2086  # the package lists are word lists
ensure_apt_packages $TB_BUILD_PACKAGES mosquitto mosquitto-clients python3 python3-venv time binutils
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

#!/usr/bin/env bash
# libFuzzer targets for every parser that reads outside input (Tests/Fuzz/*.swift, one target per file):
#
#   json         TBJSON's parser, strict and lenient (round trip: parse(serialized(parse(x))) == parse(x))
#   provision    /provision/response replies (ProvisionResponse.decode / .credentials(from:…); no secret in any text)
#   credentials  the stored-credentials document, as read and torn or damaged (loads as the original or fails)
#   rpc          server RPC requests (RemoteControl.parseRPC)
#   attributes   shared-attribute updates (RemoteControl.IntervalOverrides.apply)
#   sensors      w1_slave, temperature, thermal zone temp and IIO channel files (SensorParsers)
#   spool        the spool record format (SpoolRecord.scan; torn and damaged segments keep every record before)
#   config       config.toml: the TOML reader (TBTOML, on raw bytes) and ConfigurationLoader.parse over it
#   mqtt         tb-sim's MQTT packet decoder (not in the default set: it first builds swift-nio's NIOCore with
#                SwiftPM and the same instrumentation, a minute or two)
#
#   scripts/fuzz.sh [--seconds N] [--seed S] [TARGET...]   build, then run each target N seconds (default 10);
#                                                          a fixed seed repeats the same mutations (the test run's)
#   scripts/fuzz.sh --build-only [TARGET...]
#
# Each target is built with swiftc straight from the module sources it needs (`-sanitize=fuzzer,address`, no
# SwiftPM target), into .build/fuzz/bin. Runs start from the seeds in Tests/Fuzz/corpus/TARGET (with the dictionary
# Tests/Fuzz/dict/TARGET.dict, if any) and keep what they learn in .build/fuzz/corpus/TARGET; an input that crashes
# or breaks a property is written to .build/fuzz/crashes/TARGET-crash-… and the script exits 1. Replay one with
# `.build/fuzz/bin/TARGET FILE`. Logs: .build/fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_swift

default_targets=(json provision credentials rpc attributes sensors spool config)
all_targets=("${default_targets[@]}" mqtt)
seconds=10
build_only=false
seed=()
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --seed) seed=(-seed="$2"); shift 2 ;;
        --build-only) build_only=true; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${default_targets[@]}")
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target $t (known: ${all_targets[*]})" >&2; exit 2; }
done

out=.build/fuzz
mkdir -p "$out/obj" "$out/modules" "$out/bin" "$out/logs" "$out/crashes" "$out/corpus"
swift_flags=(-sanitize=fuzzer,address -O -g -enable-testing -parse-as-library -I "$out/modules")
# gold warns once per ASan helper symbol; nothing else in a link is that noisy.
quiet() { grep -v "Cannot export local symbol" || true; }

# newer OUTPUT INPUT...: true when OUTPUT is missing or older than any input.
stale() {
    local output=$1; shift
    [ -e "$output" ] || return 0
    [ -n "$(find "$@" -newer "$output" -print -quit)" ]
}

# build_module NAME DIR: a Swift module from the sources under DIR, as one object and a .swiftmodule.
build_module() {
    local name=$1
    local sources=()
    mapfile -t sources < <(find "$2" -name '*.swift' | sort)
    if stale "$out/obj/$name.o" "${sources[@]}" "$0"; then
        echo "fuzz: compiling $name" >&2
        swiftc "${swift_flags[@]}" -swift-version "$swift_version" "${extra_module_flags[@]}" -module-name "$name" -wmo -c "${sources[@]}" \
            -emit-module -emit-module-path "$out/modules/$name.swiftmodule" -o "$out/obj/$name.o" 2>&1 | quiet
        [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz: compiling $name failed" >&2; return 1; }
        # swiftc leaves an output alone when its bytes did not change.
        touch "$out/obj/$name.o"
    fi
}
extra_module_flags=()
swift_version=6

build_core() {
    build_module TBJSON Sources/TBJSON
    build_module TextSearch Sources/TextSearch
    build_module TBChecksum Sources/TBChecksum
    build_module AgentCore Sources/AgentCore
}

# The TOML reader and the POSIX helpers, then AgentConfig on top.
build_config_modules() {
    build_module TBTOML Sources/TBTOML
    build_module AgentHost Sources/AgentHost
    build_module AgentConfig Sources/AgentConfig
}

# NIOCore (for tb-sim's MQTT decoder) through SwiftPM in its own scratch path, instrumented; the decoder's sources
# are then compiled into the target itself.
spm=$out/spm
build_nio() {
    if [ ! -f "$spm/debug/Modules/NIOCore.swiftmodule" ]; then
        echo "fuzz: building NIOCore with SwiftPM" >&2
        swift build --scratch-path "$spm" --target NIOCore -Xswiftc -sanitize=fuzzer,address -Xswiftc -O \
            -Xcc -fsanitize=fuzzer-no-link,address > "$out/logs/nio-build.log" 2>&1 \
            || { tail -20 "$out/logs/nio-build.log" >&2; echo "fuzz: building NIOCore failed" >&2; return 1; }
    fi
}

target_file() {
    case "$1" in
        json) echo Tests/Fuzz/JSON.swift ;;
        rpc) echo Tests/Fuzz/RPC.swift ;;
        mqtt) echo Tests/Fuzz/MQTT.swift ;;
        *) echo "Tests/Fuzz/$(tr '[:lower:]' '[:upper:]' <<<"${1:0:1}")${1:1}.swift" ;;
    esac
}

build_target() {
    local t=$1
    local objects=("$out/obj/TBJSON.o" "$out/obj/TextSearch.o" "$out/obj/TBChecksum.o")
    local link=()
    case "$t" in
        mqtt) build_nio ;;
        *) build_core ;;
    esac
    case "$t" in
        json) ;;
        mqtt)
            local m
            objects=()
            for m in "$spm"/debug/C*.build/module.modulemap "$spm"/checkouts/swift-atomics/Sources/_AtomicsShims/include/module.modulemap; do
                link+=(-Xcc -fmodule-map-file="$root/$m")
            done
            link+=(-I "$spm/debug/Modules" Sources/TBSimulator/MQTT/*.swift)
            mapfile -t objects < <(find "$spm"/debug/{Atomics,CNIOAtomics,CNIODarwin,CNIOFreeBSD,CNIOLinux,CNIOOpenBSD,CNIOWASI,CNIOWindows,ContainersPreview,DequeModule,InternalCollectionsUtilities,NIOConcurrencyHelpers,NIOCore,_AtomicsShims,_NIOBase64,_NIODataStructures}.build -name '*.o' 2>/dev/null)
            ;;
        config)
            build_config_modules
            objects+=("$out/obj/AgentCore.o" "$out/obj/TBTOML.o" "$out/obj/AgentHost.o" "$out/obj/AgentConfig.o")
            ;;
        *) objects+=("$out/obj/AgentCore.o") ;;
    esac
    local file; file=$(target_file "$t")
    local inputs=("$file" Tests/Fuzz/FuzzSupport.swift "${objects[@]}")
    [ "$t" = mqtt ] && inputs+=(Sources/TBSimulator/MQTT)
    if stale "$out/bin/$t" "${inputs[@]}"; then
        echo "fuzz: linking $t" >&2
        swiftc "${swift_flags[@]}" -swift-version 6 "${link[@]}" -module-name "Fuzz_$t" Tests/Fuzz/FuzzSupport.swift "$file" \
            "${objects[@]}" -o "$out/bin/$t" 2>&1 | quiet
        [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz: building $t failed" >&2; return 1; }
        touch "$out/bin/$t"
    fi
}

for t in "${targets[@]}"; do build_target "$t"; done
$build_only && exit 0

status=0
# The Swift runtime's own crash reporter would sit on a crashing input for half a minute; libFuzzer and ASan
# report crashes themselves.
export SWIFT_BACKTRACE=enable=no
# A smaller quarantine keeps an hour's run of the config target well under the RSS limit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:quarantine_size_mb=64}
# Board profiles named in fuzzed configurations come from this checkout.
export TB_AGENT_BOARDS_DIR="$root/board"
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "Tests/Fuzz/corpus/$t"
    log="$out/logs/$t.log"
    dict=()
    [ -f "Tests/Fuzz/dict/$t.dict" ] && dict=(-dict="Tests/Fuzz/dict/$t.dict")
    # toml-test's cases, when they are beside the repository, seed the TOML reader too.
    seeds=()
    [ "$t" = config ] && [ -d "$root/../shared/reference/toml-test/tests" ] && seeds=("$root/../shared/reference/toml-test/tests")
    rc=0
    "$out/bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 -max_len=16384 -print_final_stats=1 \
        "${dict[@]}" "${seed[@]}" -artifact_prefix="$out/crashes/$t-" "$out/corpus/$t" "Tests/Fuzz/corpus/$t" "${seeds[@]}" > "$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    if [ $rc -ne 0 ]; then
        status=1
        echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} runs; see $log" >&2
        grep -m 8 -E "fuzz property violated|Fatal error|Swift runtime failure|ERROR: (AddressSanitizer|libFuzzer)|^SUMMARY|Test unit written|error in line" "$log" >&2 || true
    else
        echo "fuzz: $t ok: ${execs:-?} runs in ${seconds}s, ${cov:-cov: ?}"
    fi
done
exit $status

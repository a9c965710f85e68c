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
#   config       config.toml (ConfigurationLoader.parse over TOMLKit, whose C++ parser is instrumented too)
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]   build, then run each target N seconds (default 10)
#   scripts/fuzz.sh --build-only [TARGET...]
#
# Each target is built with swiftc straight from the module sources it needs (`-sanitize=fuzzer,address`, no
# SwiftPM target), into .build/fuzz/bin. Runs start from the seeds in Tests/Fuzz/corpus/TARGET and keep what they
# learn in .build/fuzz/corpus/TARGET (with the dictionary Tests/Fuzz/dict/TARGET.dict, if any); an input that crashes or breaks a property is written to
# .build/fuzz/crashes/TARGET-crash-… and the script exits 1. Reproduce one with
# `.build/fuzz/bin/TARGET FILE`. Logs: .build/fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

all_targets=(json provision credentials rpc attributes sensors spool config)
seconds=10
build_only=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --build-only) build_only=true; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
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
    build_module AgentCore Sources/AgentCore
}

# TOMLKit: its C++ half (toml++ behind a C interface) compiled with the same instrumentation, then the Swift half,
# then AgentConfig on top.
build_config_modules() {
    local tomlkit=.build/checkouts/TOMLKit
    if [ ! -d "$tomlkit/Sources/CTOML" ]; then
        swift package resolve >/dev/null
    fi
    local ctoml=$tomlkit/Sources/CTOML
    local cxx; cxx=$(dirname "$(command -v swiftc)")/clang++
    local f
    for f in "$ctoml"/Sources/*.cpp; do
        local obj="$out/obj/CTOML-$(basename "$f" .cpp | tr -c 'A-Za-z0-9\n' '_').o"
        if stale "$obj" "$f" "$ctoml/Sources/toml.hpp" "$ctoml/include"; then
            echo "fuzz: compiling CTOML/$(basename "$f")" >&2
            "$cxx" -fsanitize=address,fuzzer-no-link -O1 -g -std=c++17 -DTOML_EXCEPTIONS=1 -I "$ctoml/include" \
                -c "$f" -o "$obj"
        fi
    done
    extra_module_flags=(-Xcc -fmodule-map-file="$root/$ctoml/include/CTOML/module.modulemap" -Xcc -I"$root/$ctoml/include/CTOML")
    # TOMLKit is third-party code written for Swift 5.
    local with_map=("${extra_module_flags[@]}")
    extra_module_flags+=(-suppress-warnings)
    swift_version=5 build_module TOMLKit "$tomlkit/Sources/TOMLKit"
    extra_module_flags=("${with_map[@]}")
    build_module AgentConfig Sources/AgentConfig
    extra_module_flags=()
}

target_file() {
    case "$1" in
        json) echo Tests/Fuzz/JSON.swift ;;
        rpc) echo Tests/Fuzz/RPC.swift ;;
        *) echo "Tests/Fuzz/$(tr '[:lower:]' '[:upper:]' <<<"${1:0:1}")${1:1}.swift" ;;
    esac
}

build_target() {
    local t=$1
    local objects=("$out/obj/TBJSON.o")
    local link=()
    build_core
    case "$t" in
        json) ;;
        config)
            build_config_modules
            objects+=("$out/obj/AgentCore.o" "$out"/obj/CTOML-*.o "$out/obj/TOMLKit.o" "$out/obj/AgentConfig.o")
            link=(-Xcc -fmodule-map-file="$root/.build/checkouts/TOMLKit/Sources/CTOML/include/CTOML/module.modulemap"
                -Xcc -I"$root/.build/checkouts/TOMLKit/Sources/CTOML/include/CTOML" -lstdc++)
            ;;
        *) objects+=("$out/obj/AgentCore.o") ;;
    esac
    local file; file=$(target_file "$t")
    if stale "$out/bin/$t" "$file" Tests/Fuzz/FuzzSupport.swift "${objects[@]}"; then
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
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
# Board profiles named in fuzzed configurations come from this checkout.
export TB_AGENT_BOARDS_DIR="$root/board"
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "Tests/Fuzz/corpus/$t"
    log="$out/logs/$t.log"
    dict=()
    [ -f "Tests/Fuzz/dict/$t.dict" ] && dict=(-dict="Tests/Fuzz/dict/$t.dict")
    rc=0
    "$out/bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
        "${dict[@]}" -artifact_prefix="$out/crashes/$t-" "$out/corpus/$t" "Tests/Fuzz/corpus/$t" > "$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    if [ $rc -ne 0 ]; then
        status=1
        echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} runs; see $log" >&2
        grep -E "fuzz property violated|Fatal error|Swift runtime failure|ERROR: (AddressSanitizer|libFuzzer)|^SUMMARY|Test unit written|error in line" "$log" | head -8 >&2 || true
    else
        echo "fuzz: $t ok: ${execs:-?} runs in ${seconds}s, ${cov:-cov: ?}"
    fi
done
exit $status

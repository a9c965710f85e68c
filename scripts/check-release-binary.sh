#!/usr/bin/env bash
# Fails if the release tb-agent links Foundation, FoundationInternationalization, CoreFoundation or ICU, or loads any
# part of the Swift runtime as a shared library (issue 11: the runtime is linked statically and no Foundation is in).
# Two independent views of one binary:
#   - its dynamic dependencies: `readelf -d` NEEDED (any architecture) and, for this machine's architecture, `ldd`
#     (the libraries those load in turn): no libFoundation*, lib_Foundation* (lib_FoundationICU), libCoreFoundation*,
#     libicu*, libswift*, libdispatch or libBlocksRuntime;
#   - its symbol table (`nm`, on the unstripped binary): no symbol of the Swift modules Foundation and
#     FoundationInternationalization (mangled `10Foundation`, `30FoundationInternationalization`), no CoreFoundation
#     (CF*, _CF*, kCF*, __CF* but the __CFUniChar tables FoundationEssentials' C shims carry too, _cf_*), no ICU
#     (the icudtNN_dat data blob; the C++ namespace, icu_NN in swift.org's toolchains, plain icu in Debian's swiftlang;
#     the C API: swift_u*_ as swift.org's _FoundationICU renames it, u_/ucol_/ubrk_/udat_/... as ICU spells it).
# With --forbid-foundation-essentials, FoundationEssentials and _FoundationCollections (and their C shims) fail too,
# and so do _StringProcessing and _RegexParser (regex and the string searches the agent's modules are built without).
#
# Before checking, a self-test proves each rule on binaries built here from three-line programs: a statically linked
# `import Foundation` program must fail every symbol rule (each pattern must match it: a pattern that matches nothing
# cannot be trusted), a dynamically linked one must fail on its shared libraries, an `import FoundationEssentials`
# one must pass by default and fail under --forbid-foundation-essentials, a plain `print` must pass (no false
# positive from the static runtime), and a stripped binary must be refused rather than pass for lack of symbols.
#
#   scripts/check-release-binary.sh                  build the x86_64 release tb-agent as scripts/bench.sh does
#                                                    (.build-release) and check it
#   scripts/check-release-binary.sh --bin PATH       check this binary instead (repeat for more, e.g. an aarch64
#                                                    .build-aarch64-trixie/release/tb-agent from cross-build.sh)
#   scripts/check-release-binary.sh --build --bin PATH   both: the x86_64 build and the binaries given
#   scripts/check-release-binary.sh --forbid-foundation-essentials   FoundationEssentials fails too
#   scripts/check-release-binary.sh --skip-self-test                 only the check
#
# Exit status: 0 every binary passes; 1 a binary fails; 2 the self-test failed (the check cannot be trusted).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"

bins=()
build=false
forbid_essentials=false
self_test=true
while [ $# -gt 0 ]; do
    case "$1" in
        --bin)
            [ $# -ge 2 ] || { echo "check-release-binary: --bin needs a path" >&2; exit 64; }
            bins+=("$2"); shift ;;
        --build) build=true ;;
        --forbid-foundation-essentials) forbid_essentials=true ;;
        --skip-self-test) self_test=false ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "check-release-binary: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
    shift
done

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_swift
# binutils: readelf (any ELF machine), nm and strip; libc-bin: ldd.
ensure_apt_packages binutils libc-bin

host_machine=$(uname -m)

# The forbidden shared libraries (one regular expression over the library's file name).
forbidden_libraries='^(lib_?Foundation|libCoreFoundation|libicu|lib_?swift|libdispatch\.|libBlocksRuntime\.)'

# The symbol rules: "category<TAB>pattern<TAB>exception", each an extended regular expression over a line of
# `nm -P` (the name first; some names, such as LLVM's "symbolic ..." references, contain spaces). A line counts if
# it matches the pattern and not the exception. Swift names carry their module as a length-prefixed identifier, so
# `[^0-9]10Foundation` is the module Foundation wherever it appears: its own symbols ($s10Foundation...), its
# extensions of other modules' types ($sSS10FoundationE...) and specialisations over its types.
symbol_rules() {
    local t=$'\t'
    cat <<EOF
Foundation${t}[^0-9]10Foundation${t}
FoundationInternationalization${t}[^0-9]30FoundationInternationalization${t}
CoreFoundation${t}^(_?CF|kCF)[A-Z]${t}
CoreFoundation${t}^__CF${t}^__CFUniChar
CoreFoundation${t}^_cf_${t}
ICU${t}icudt[0-9]+[a-z]?_dat${t}
ICU${t}^_Z.*[^0-9](3icu|6icu_[0-9]+)[0-9A-Z_]${t}
ICU${t}^swift_u[a-z0-9]*_${t}
ICU${t}^(u|ucol|ubrk|ucal|udat|unum|uloc|ures|ucnv|unorm2|uset|uregex|utext|utrans|uidna|ucasemap|ucurr|uenum|udata|uscript|ubidi|usearch|uplrules|ulistfmt|umsg|uameasfmt|uatmufmt)_[A-Za-z]${t}
EOF
    if $forbid_essentials; then
        cat <<EOF
FoundationEssentials${t}[^0-9]20FoundationEssentials${t}
FoundationEssentials${t}[^0-9]22_FoundationCollections${t}
FoundationEssentials${t}^_?_(stringshims|platform_shims|filemanagershims|foundation)_${t}
FoundationEssentials${t}^__CFUniChar${t}
StringProcessing${t}[^0-9]17_StringProcessing${t}
StringProcessing${t}[^0-9]12_RegexParser${t}
EOF
    fi
}

mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1048576 }'; }

# Set by check_binary for the self-test: which categories and which patterns matched, and whether the libraries
# or the symbol table failed.
declare -A matched_categories matched_patterns
libraries_failed=false
symbols_unreadable=false

# check_binary PATH: prints what the binary links and what it contains; returns 1 if it breaks a rule.
check_binary() {
    local bin=$1 failed=false
    matched_categories=() matched_patterns=()
    libraries_failed=false
    symbols_unreadable=false
    echo "== $bin"
    if [ ! -f "$bin" ]; then echo "   FAIL: no such file"; return 1; fi
    local header machine arch
    header=$(readelf -h "$bin" 2>/dev/null) || { echo "   FAIL: not an ELF file"; return 1; }
    machine=$(sed -n 's/^ *Machine: *//p' <<< "$header")
    case "$machine" in
        *X86-64*) arch=x86_64 ;;
        *AArch64*) arch=aarch64 ;;
        *) arch=unknown ;;
    esac
    local nm_tool=nm strip_tool=strip
    if [ "$arch" != "$host_machine" ]; then
        case "$arch" in
            aarch64)
                ensure_apt_packages binutils-aarch64-linux-gnu
                nm_tool=aarch64-linux-gnu-nm strip_tool=aarch64-linux-gnu-strip ;;
            *) echo "   FAIL: cannot check a binary for '$machine' here"; return 1 ;;
        esac
    fi
    local stripped
    stripped=$(mktemp)
    "$strip_tool" -o "$stripped" "$bin"
    echo "   architecture: $arch; $(mb "$(stat -c %s "$bin")") unstripped, $(mb "$(stat -c %s "$stripped")") stripped"
    rm -f "$stripped"

    # Dynamic dependencies.
    local dynamic needed runpath loaded="" lib bad=()
    dynamic=$(readelf -d "$bin")
    needed=$(sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p' <<< "$dynamic")
    runpath=$(sed -n 's/.*(\(RUNPATH\|RPATH\)).*: \[\(.*\)\]/\2/p' <<< "$dynamic")
    echo "   shared libraries (NEEDED): $(tr '\n' ' ' <<< "$needed")"
    [ -z "$runpath" ] || echo "   RUNPATH: $runpath"
    if [ "$arch" = "$host_machine" ]; then
        # ldd: what the loader would load, the libraries' own dependencies too (the loader only: main never runs).
        local ldd_output
        ldd_output=$(ldd "$bin" 2>&1) || true
        if grep -q 'not found' <<< "$ldd_output"; then
            echo "   FAIL: ldd cannot find every library: $(grep 'not found' <<< "$ldd_output" | awk '{ print $1 }' | tr '\n' ' ')"
            failed=true
        fi
        loaded=$(awk '$1 !~ /^linux-vdso/ && $1 !~ /^statically/ { name = $1; sub(/.*\//, "", name); print name }' <<< "$ldd_output")
        echo "   loaded (ldd): $(tr '\n' ' ' <<< "$loaded")"
    fi
    while IFS= read -r lib; do
        [ -n "$lib" ] || continue
        lib=${lib##*/}
        if grep -qE "$forbidden_libraries" <<< "$lib"; then bad+=("$lib"); fi
    done <<< "$needed"$'\n'"$loaded"
    if [ ${#bad[@]} -gt 0 ]; then
        echo "   FAIL: loads Foundation, ICU or the Swift runtime as shared libraries: $(printf '%s\n' "${bad[@]}" | sort -u | tr '\n' ' ')"
        libraries_failed=true
        failed=true
    fi

    # Symbols.
    local symbols count
    symbols=$(mktemp)
    if ! "$nm_tool" -P -p "$bin" > "$symbols" 2> "$symbols.err"; then
        echo "   FAIL: $nm_tool cannot read the symbol table: $(head -3 "$symbols.err" | tr '\n' ' ')"
        rm -f "$symbols" "$symbols.err"; symbols_unreadable=true; return 1
    fi
    count=$(wc -l < "$symbols")
    # A stripped binary (or an nm that lists nothing) would pass every rule: refuse it. Any Swift binary has
    # thousands of symbols, among them the runtime's swift_retain.
    if [ "$count" -lt 1000 ] || ! grep -qE '^swift_retain ' "$symbols"; then
        echo "   FAIL: only $count symbols and no swift_retain: the binary is stripped (or $nm_tool reads no .symtab); check the unstripped build"
        rm -f "$symbols" "$symbols.err"; symbols_unreadable=true; return 1
    fi
    echo "   symbols: $count (nm)"
    local category pattern exception hits n examples
    while IFS=$'\t' read -r category pattern exception; do
        hits=$(grep -E -- "$pattern" "$symbols" || true)
        if [ -n "$exception" ] && [ -n "$hits" ]; then hits=$(grep -vE -- "$exception" <<< "$hits" || true); fi
        [ -n "$hits" ] || continue
        n=$(wc -l <<< "$hits")
        matched_patterns["$category $pattern"]=$n
        matched_categories["$category"]=$(( ${matched_categories["$category"]:-0} + n ))
        # Three examples, demangled (swift demangle leaves C and C++ names as they are).
        examples=$(awk 'NR <= 3 { print $1 }' <<< "$hits" | swift demangle --simplified 2>/dev/null | c++filt | cut -c1-110 \
            | sed 's/^/        /') || examples=""
        echo "   FAIL: $category: $n symbols match /$pattern/${exception:+ (not /$exception/)}, e.g."
        echo "$examples"
        failed=true
    done < <(symbol_rules)
    rm -f "$symbols" "$symbols.err"
    local what="no Foundation, FoundationInternationalization, CoreFoundation or ICU; Swift runtime static"
    $forbid_essentials && what="no FoundationEssentials or _StringProcessing either; $what"
    if $failed; then return 1; fi
    echo "   PASS: $what"
}

# The self-test: the rules against binaries whose contents are known.
self_test() {
    local dir="$root/.build-release/check-controls" status=0
    rm -rf "$dir" && mkdir -p "$dir"
    cat > "$dir/foundation.swift" <<'EOF'
import Foundation
let formatter = DateFormatter()
formatter.locale = Locale(identifier: "tr_TR")
formatter.dateStyle = .full
print(formatter.string(from: Date()), NSString(string: "i").uppercased, "straße".uppercased(with: Locale(identifier: "de")))
EOF
    cat > "$dir/essentials.swift" <<'EOF'
import FoundationEssentials
print(Date.now, UUID(), try! JSONEncoder().encode([1, 2]).count)
EOF
    echo 'print("hello")' > "$dir/plain.swift"
    echo 'print((try? Regex("a+b")).map { "xaab".contains($0) } ?? false, "abc".contains("bc"))' > "$dir/regex.swift"
    local compile=(swiftc -static-stdlib -module-cache-path "$dir/module-cache")
    if ! { "${compile[@]}" "$dir/foundation.swift" -o "$dir/foundation-static" \
            && swiftc -module-cache-path "$dir/module-cache" "$dir/foundation.swift" -o "$dir/foundation-dynamic" \
            && "${compile[@]}" "$dir/essentials.swift" -o "$dir/essentials-static" \
            && "${compile[@]}" "$dir/plain.swift" -o "$dir/plain-static" \
            && "${compile[@]}" "$dir/regex.swift" -o "$dir/regex-static" \
            && strip -o "$dir/plain-stripped" "$dir/plain-static"; } > "$dir/build.log" 2>&1; then
        cat "$dir/build.log" >&2
        echo "check-release-binary: SELF-TEST FAILED: cannot build the control programs" >&2
        return 2
    fi
    local saved=$forbid_essentials out="$dir/check.out" category pattern exception
    problem() { echo "   SELF-TEST: $*"; status=2; }
    # Each check's report goes to a file (not through $(...): check_binary's findings are read afterwards).
    echo "-- self-test: each rule against a binary whose contents are known (.build-release/check-controls)"

    forbid_essentials=true
    if check_binary "$dir/foundation-static" > "$out"; then problem "a static 'import Foundation' binary passed"; fi
    while IFS=$'\t' read -r category pattern exception; do
        [ "$category" = StringProcessing ] && continue  # the regex control below
        [ -n "${matched_patterns["$category $pattern"]:-}" ] \
            || problem "the $category rule /$pattern/ matches nothing in a static 'import Foundation' binary: it would miss what it is for"
    done < <(symbol_rules)
    echo "   static 'import Foundation': fails; symbols of$(for c in Foundation FoundationInternationalization CoreFoundation ICU FoundationEssentials; do printf ' %s %s,' "$c" "${matched_categories[$c]:-0}"; done | sed 's/,$//')"

    check_binary "$dir/foundation-dynamic" > "$out" || true
    $libraries_failed || problem "a dynamically linked 'import Foundation' binary passed the shared-library rule"
    echo "   dynamic 'import Foundation': fails on its shared libraries ($(sed -n 's/.*as shared libraries: //p' "$out" | wc -w) of them)"

    if check_binary "$dir/essentials-static" > "$out"; then
        problem "a static 'import FoundationEssentials' binary passed under --forbid-foundation-essentials"
    fi
    [ -n "${matched_categories[FoundationEssentials]:-}" ] || problem "no FoundationEssentials symbol found in a FoundationEssentials binary"
    forbid_essentials=false
    if ! check_binary "$dir/essentials-static" > "$out"; then
        problem "a static 'import FoundationEssentials' binary failed without --forbid-foundation-essentials:"; cat "$out"
    fi
    echo "   static 'import FoundationEssentials': fails under --forbid-foundation-essentials, passes without"

    forbid_essentials=true
    if ! check_binary "$dir/plain-static" > "$out"; then
        problem "a static 'print' binary failed (a rule matches the Swift runtime itself):"; cat "$out"
    fi
    # The agent's modules are built without the implicit `_StringProcessing` import (issue 11: 1.25 MB): a regex or
    # one of its string searches (`String.contains(String)`) brings it back, and the rule says so.
    if check_binary "$dir/regex-static" > "$out"; then problem "a static binary using Regex passed under --forbid-foundation-essentials"; fi
    while IFS=$'\t' read -r category pattern exception; do
        [ "$category" = StringProcessing ] || continue
        [ -n "${matched_patterns["$category $pattern"]:-}" ] \
            || problem "the $category rule /$pattern/ matches nothing in a static binary using Regex: it would miss what it is for"
    done < <(symbol_rules)
    echo "   static Regex and String.contains(String): fails under --forbid-foundation-essentials (_StringProcessing)"
    check_binary "$dir/plain-stripped" > "$out" || true
    $symbols_unreadable || problem "a stripped binary was not refused"
    echo "   static 'print': passes; stripped: refused"
    forbid_essentials=$saved
    if [ $status -ne 0 ]; then
        echo "check-release-binary: SELF-TEST FAILED: the check cannot be trusted" >&2
    fi
    return $status
}

started=$(date +%s)
if $self_test; then
    self_test || exit 2
fi

[ ${#bins[@]} -gt 0 ] || build=true
if $build; then
    echo "-- building the release tb-agent (static Swift stdlib) in .build-release, as scripts/bench.sh does" >&2
    mkdir -p .build-release
    build_started=$(date +%s)
    log=.build-release/check-build.log
    if ! swift build -c release --static-swift-stdlib --scratch-path .build-release --product tb-agent > "$log" 2>&1; then
        grep -vE '^\[[0-9]+/[0-9]+\] ' "$log" | tail -40 >&2
        echo "check-release-binary: the release build failed (full log: $log)" >&2
        exit 1
    fi
    echo "-- built in $(( $(date +%s) - build_started )) s" >&2
    bins=("$(swift build -c release --static-swift-stdlib --scratch-path .build-release --show-bin-path)/tb-agent" ${bins[@]+"${bins[@]}"})
fi

status=0
for bin in "${bins[@]}"; do
    check_binary "$bin" || status=1
done
if [ $status -ne 0 ]; then
    echo "check-release-binary: FAILED: a release binary links what issue 11 keeps out (see FAIL above; $(( $(date +%s) - started )) s)" >&2
else
    echo "check-release-binary: every binary passes ($(( $(date +%s) - started )) s)"
fi
exit $status

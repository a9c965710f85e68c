# Shared by scripts/vm-test.sh and scripts/powercut.sh: which Debian amd64 kernel to boot, and downloads of
# Debian packages cached by version under $cache/debs. Needs $cache, log and die from the caller.
# shellcheck shell=bash

# Which kernel: the one Debian's linux-image-amd64 depends on now (e.g. linux-image-6.1.0-56-amd64).
# awk reads to the end (no `exit` at the first match): under pipefail, apt-cache's next write would get SIGPIPE.
image_package() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ && image == "" { image = $2 } END { print image }'
}
image=$(image_package)
if [ -z "$image" ]; then
    log "refreshing the apt package lists"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    image=$(image_package)
fi
[ -n "$image" ] || die "cannot tell which kernel linux-image-amd64 depends on (apt-cache depends linux-image-amd64)"
flavour=${image#linux-image-}          # 6.1.0-56-amd64
abi=${flavour%-amd64}                  # 6.1.0-56
series=$(echo "$abi" | cut -d. -f1-2)  # 6.1
log "kernel $flavour"

# Downloads, cached by package version.
fetch() {  # package → path of its .deb in the cache
    local package=$1 version file
    version=$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    [ -n "$version" ] && [ "$version" != "(none)" ] || return 1
    file=$(ls "$cache/debs/${package}_${version/:/%3a}_"*.deb 2>/dev/null | head -1 || true)
    if [ -z "$file" ]; then
        log "downloading $package $version"
        # apt warns that root downloads unsandboxed into a folder _apt cannot write: expected here.
        (cd "$cache/debs" && apt-get download "$package=$version" 2>&1) > "$cache/download.log" || {
            cat "$cache/download.log" >&2
            return 1
        }
        file=$(ls "$cache/debs/${package}_${version/:/%3a}_"*.deb 2>/dev/null | head -1 || true)
    fi
    [ -n "$file" ] && echo "$file"
}

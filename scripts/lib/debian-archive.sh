# Debian's archive from scripts: a private apt state for another suite or
# architecture (sid's arm64 kernel, say) that never touches the machine's own apt sources, lists or dpkg status.
# shellcheck shell=bash

# The mirror: debian_mirror, from scripts/lib/deps.sh (source it first).

# private_apt DIR apt-get|apt-cache ARGS...: runs apt with DIR as its whole state (sources.list, lists, cache,
# no configuration parts, an empty dpkg status), the architecture in DIR/arch as the only one, and no check of
# the Release files' validity dates (sid's expire within days; a lagging mirror must still do).
private_apt() {
    local dir=$1 tool=$2 arch
    shift 2
    arch=$(cat "$dir/arch")
    "$tool" -o Dir::State="$dir" -o Dir::State::Lists="$dir/lists" -o Dir::State::status="$dir/status" \
        -o Dir::Cache="$dir/cache" -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts="$dir/empty" \
        -o Dir::Etc::Parts="$dir/empty" -o Dir::Etc::Preferences="$dir/empty/preferences" \
        -o Dir::Etc::PreferencesParts="$dir/empty" -o APT::Architecture="$arch" -o APT::Architectures::="$arch" \
        -o Acquire::Check-Valid-Until=false -o Acquire::Languages=none -q "$@"
}

# private_apt_init DIR SUITE ARCH MIRROR: makes DIR a private apt state for SUITE's main component on ARCH,
# signed by Debian's archive keyring. Keeps the lists already there.
private_apt_init() {
    local dir=$1 suite=$2 arch=$3 mirror=$4
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/empty"
    : > "$dir/status"
    echo "$arch" > "$dir/arch"
    echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
        > "$dir/sources.list"
}

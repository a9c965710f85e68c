# Shared by the scripts: what the project needs from Debian and PyPI, installed only when missing.
# shellcheck shell=bash

TB_BUILD_PACKAGES="libmosquitto-dev libgpiod-dev libssl-dev pkg-config"
TB_TEST_PACKAGES="mosquitto mosquitto-clients gpiod openssl python3-venv"
# Two virtual environments: tb-mqtt-client depends on tb-paho-mqtt-client, whose `paho` package clashes with
# paho-mqtt's. pytest and paho-mqtt live in the first; ThingsBoard's SDK (plus mmh3, which it would otherwise
# pip-install at import time) in the second, where the conformance tests run it as subprocess scripts.
TB_PYTHON_PACKAGES="paho-mqtt==2.1.0 pytest"
TB_SDK_PYTHON_PACKAGES="tb-mqtt-client==1.13.14 mmh3"

ensure_apt_packages() {
    local missing=()
    for p in "$@"; do
        # No `| grep -q`: under pipefail, grep leaving early can fail the pipeline (SIGPIPE) and so misreport.
        case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" in
            *"install ok installed"*) ;;
            *) missing+=("$p") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    # A broker started by the package's service scripts would hold port 1883; tests pick their own ports anyway.
}

# Prints the path of a virtual environment holding the Python test clients, creating it when needed.
# With arguments: ensure_python_venv DIR PACKAGES... for another environment.
ensure_python_venv() {
    local venv="${1:-$root/.build/venv}"
    local packages="$TB_PYTHON_PACKAGES"
    if [ $# -gt 1 ]; then shift; packages="$*"; fi
    local stamp="$venv/.installed"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$packages" ]; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check $packages >&2
        echo "$packages" > "$stamp"
    fi
    echo "$venv"
}

# Prints the path of the virtual environment holding ThingsBoard's Python SDK (tb-mqtt-client).
ensure_sdk_venv() {
    ensure_python_venv "$root/.build/venv-sdk" $TB_SDK_PYTHON_PACKAGES
}

# Swift itself is not a Debian package on bookworm: use the one on PATH or in /opt/swift, or say what to do.
ensure_swift() {
    if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    if ! command -v swift >/dev/null 2>&1; then
        echo "Swift 6 is needed and was not found on PATH or in /opt/swift: install a Swift 6.1 or later toolchain" \
             "for Debian 12 (swift.org/install) and put its usr/bin on PATH" >&2
        return 1
    fi
    local version
    version=$(swift --version 2>&1) || true
    version=${version%%$'\n'*}  # the first line, without `| head -1` (SIGPIPE under pipefail)
    case "$version" in
        *"version 6."*) ;;
        *) echo "tb-agent needs Swift 6.1 or later; found: $version" >&2; return 1 ;;
    esac
}

# The Debian mirror this machine's apt already uses (one archive serves bookworm, trixie and sid), so that no
# mirror is named in this repository. TB_DEBIAN_MIRROR overrides it.
debian_mirror() {
    if [ -n "${TB_DEBIAN_MIRROR:-}" ]; then echo "$TB_DEBIAN_MIRROR"; return; fi
    local policy codename
    policy=$(apt-cache policy 2>/dev/null) || true
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null) || true
    # awk reads all of its input: a reader that leaves early breaks the pipe under pipefail.
    awk -v suite="${codename:-bookworm}/main" \
        '$2 ~ /^https?:/ && $3 == suite && mirror == "" { mirror = $2 } END { if (mirror == "") exit 1; print mirror }' \
        <<< "$policy"
}

# Lets this x86_64 machine run aarch64 programs, in chroots too, through qemu-user: qemu-user-static registered with
# the kernel's binfmt_misc with the F flag (the interpreter is opened when registered, so a chroot needs no copy of
# it). A fresh machine or a container may have binfmt_misc unmounted, or the format not imported or not enabled.
ensure_aarch64_binfmt() {
    ensure_apt_packages qemu-user-static binfmt-support
    local sudo="" dir=/proc/sys/fs/binfmt_misc
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ ! -e "$dir/status" ]; then
        $sudo mount -t binfmt_misc binfmt_misc "$dir" >&2 \
            || { echo "cannot mount binfmt_misc on $dir: aarch64 programs cannot run here (in a container, the host must allow it)" >&2; return 1; }
    fi
    if [ ! -e "$dir/qemu-aarch64" ]; then
        # Installed while binfmt_misc was not mounted, or before binfmt-support: import the format, then enable it.
        $sudo update-binfmts --display qemu-aarch64 >/dev/null 2>&1 || $sudo update-binfmts --import qemu-aarch64 >&2
        $sudo update-binfmts --enable qemu-aarch64 >&2 || true
    fi
    local state
    state=$(cat "$dir/qemu-aarch64" 2>/dev/null) || true
    if ! grep -qx enabled <<< "$state"; then
        $sudo update-binfmts --enable qemu-aarch64 >&2 || true
        state=$(cat "$dir/qemu-aarch64" 2>/dev/null) || true
    fi
    grep -qx enabled <<< "$state" || { echo "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)" >&2; return 1; }
    grep -qE '^flags: [A-Z]*F' <<< "$state" \
        || { echo "qemu-aarch64 is registered without the F flag: aarch64 programs would not run in a chroot" >&2; return 1; }
}

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

# Lets this x86_64 machine run aarch64 programs through qemu-user: qemu-user-static registered with the kernel's
# binfmt_misc (mounted here if the machine has not), so an aarch64 executable, and a chroot of them, just runs.
ensure_aarch64_binfmt() {
    ensure_apt_packages qemu-user-static binfmt-support
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || {
            echo "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc: aarch64 programs cannot run here" \
                 "(in a container, the host must allow it)" >&2
            return 1
        }
    fi
    if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
        $sudo update-binfmts --enable qemu-aarch64 >&2 || true
    fi
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || {
        echo "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --display qemu-aarch64)" >&2
        return 1
    }
}

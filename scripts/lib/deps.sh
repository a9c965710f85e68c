# Shared by the scripts: what the project needs from Debian and PyPI, installed only when missing.
# shellcheck shell=bash

TB_BUILD_PACKAGES="libmosquitto-dev libgpiod-dev pkg-config"
TB_TEST_PACKAGES="mosquitto mosquitto-clients gpiod openssl"
TB_PYTHON_PACKAGES="paho-mqtt==2.1.0 tb-mqtt-client==1.13.14 pytest"

ensure_apt_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
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
ensure_python_venv() {
    local venv="$root/.build/venv"
    local stamp="$venv/.installed"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$TB_PYTHON_PACKAGES" ]; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check $TB_PYTHON_PACKAGES >&2
        echo "$TB_PYTHON_PACKAGES" > "$stamp"
    fi
    echo "$venv"
}

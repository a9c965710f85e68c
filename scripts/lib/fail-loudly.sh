# Sourced by the scripts right after `set -euo pipefail`: when `set -e` ends a script, it says which command
# failed, on which line and with what status, instead of ending without a word (a pipeline killed by SIGPIPE
# under pipefail, status 141, used to look like a script that simply stopped).
# shellcheck shell=bash

tb_report_failure() {
    local status=$1 line=$2 command=$3 signal=""
    # Only failures that end the script: not under `set +e`, and not inside $(...), where bash clears -e (the
    # assignment around it fails in turn and is reported then).
    case $- in *e*) ;; *) return 0 ;; esac
    if [ "$status" -gt 128 ]; then
        signal=", killed by SIG$(kill -l $((status - 128)) 2>/dev/null || echo "NAL $((status - 128))")"
    fi
    printf '%s: line %s: exit status %s%s from: %s\n' "${0##*/}" "$line" "$status" "$signal" "$command" >&2
}
# errtrace: functions and subshells report too.
set -o errtrace
trap 'tb_report_failure $? "$LINENO" "$BASH_COMMAND"' ERR

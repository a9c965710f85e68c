#!/usr/bin/env bash
# The fault suite: tb-agent's failure modes tried on purpose, against tb-sim and a misbehaving fake server, all
# on 127.0.0.1 (Tests/faults/, Python standard library only).
#
#   scripts/faults.sh                      short form (the test command runs it): ~2 minutes
#   scripts/faults.sh --long               release form: at least 200 rounds of each random fault (60 of lock
#                                          and symlink, 50 of each flood and of reprovision)
#   scripts/faults.sh --only kill spool    some scenarios: kill spool outages storage badserver secrets floods lock
#                                          symlink reprovision
#
# Scenarios: kill -9 while provisioning and writing credentials; the spool truncated and corrupted at random
# offsets; tb-sim outages, drops and restarts (and the agent killed) while publishing; a full disk and a
# read-only state directory (tmpfs and bind mounts: needs root, else a fallback or a skip, said in the output);
# servers sending garbage, oversized packets, wrong statuses or nothing; secrets searched for in every output,
# status, RPC answer and process argument list; floods of sampleNow (a slow sensor), identify, 1 MiB RPCs and
# unknown attributes with systemd's watchdog and the agent's memory checked; a second agent (and provision --force) on a running agent's state
# directory, races and kill -9 (exit 78 naming the holder, nothing touched, no stale lock); links planted under
# the names of the credentials' and spool state's temporary files, spool segments, counters and the status socket
# (the file they point at must never change); the first connects after a re-provisioning dropped (and the agent
# killed while the new credentials are pending). TB_FAULTS_SEED=N repeats a random run; TB_FAULTS_KEEP=1 keeps
# the temporary files; TB_BIN_DIR uses binaries built elsewhere (the test command sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
if [ -z "${TB_BIN_DIR:-}" ]; then
    ensure_swift
    ensure_apt_packages $TB_BUILD_PACKAGES python3
    mkdir -p .build
    if ! swift build --product tb-agent > .build/faults-build.log 2>&1 || ! swift build --product tb-sim >> .build/faults-build.log 2>&1; then
        grep -vE '^\[[0-9]+/[0-9]+\] ' .build/faults-build.log >&2
        echo "the build failed (log above)" >&2
        exit 1
    fi
    TB_BIN_DIR="$root/.build/debug"
fi

exec python3 "$root/Tests/faults/faults.py" --bin "$TB_BIN_DIR" "$@"

# Shared by scripts/vm-test.sh and scripts/vm-test-arm64.sh: reads the serial console of a VM that ran
# scripts/lib/vm-init.sh and says whether every expected check passed.
# shellcheck shell=bash

# vm_check_results NAME CONSOLE_TXT QEMU_STATUS TIMEOUT_S CHECKS...: prints each VMTEST line, then each check that
# failed or did not run and, when the VM stopped early, its last console lines; returns 1 on any of those.
vm_check_results() {
    local name=$1 console=$2 qemu_status=$3 timeout_s=$4 check failed=0
    shift 4
    grep '^VMTEST ' "$console" | sed 's/^VMTEST /  /' >&2 || true
    for check in "$@"; do
        if grep -q "^VMTEST PASS $check " "$console"; then continue; fi
        if grep -q "^VMTEST FAIL $check " "$console"; then
            echo "$name: check '$check' failed: $(grep "^VMTEST FAIL $check " "$console" | cut -d' ' -f4-)" >&2
        else
            echo "$name: check '$check' did not run" >&2
        fi
        failed=1
    done
    if grep -q '^VMTEST FAIL ' "$console"; then failed=1; fi
    if ! grep -q '^VMTEST DONE' "$console"; then
        [ "$qemu_status" -eq 124 ] && echo "$name: the VM did not finish within $timeout_s s" >&2
        echo "$name: the VM stopped early (qemu status $qemu_status); last console lines:" >&2
        tail -20 "$console" >&2
        failed=1
    fi
    return $failed
}

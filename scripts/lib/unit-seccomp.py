#!/usr/bin/env python3
"""Runs a command the way systemd would under a unit's SystemCallFilter= and LimitCORE= lines, without systemd:
the filter is built with libseccomp (through ctypes) from the unit's lines, the groups expanded by
`systemd-analyze syscall-filter`, and loaded after chroot and the switch to the service user, right before exec.

    unit-seccomp.py --unit board/tb-agent.service [--root DIR] [--user NAME] [--print] -- COMMAND ARG...

As systemd does: the first SystemCallFilter= line decides the mode (an allow-list, with @default added, unless it
starts with ~), later lines add (or with ~ remove) calls in order, and a call the filter does not allow kills the
process with SIGSYS (SystemCallErrorNumber= unset). Only the native architecture's numbers (as
SystemCallArchitectures=native). --print lists what the filter allows and exits. Needs root (chroot, setuid),
libseccomp.so.2 and systemd-analyze on this machine; standard library only otherwise.

scripts/package-test.sh runs the packaged agent with it, so a filter line that kills the agent fails a check.
"""

import argparse
import ctypes
import ctypes.util
import os
import resource
import subprocess
import sys

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000


def unit_lines(path, key):
    """The values of KEY= in the unit's [Service] section, in order."""
    values = []
    section = None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and line.startswith(key + "="):
                values.append(line[len(key) + 1:])
    return values


def syscall_groups():
    """{"@group": [members, groups included]} from systemd-analyze."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def expand(name, groups, seen=None):
    if not name.startswith("@"):
        return {name}
    seen = seen or set()
    if name in seen:
        return set()
    seen.add(name)
    if name not in groups:
        raise SystemExit(f"unit-seccomp: systemd-analyze does not know the group {name}")
    out = set()
    for member in groups[name]:
        out |= expand(member, groups, seen)
    return out


def filter_from_unit(unit):
    """(allow_list: bool, names): the calls allowed (allow-list) or denied (deny-list), as systemd computes them."""
    groups = syscall_groups()
    allow_list = None
    names = set()
    for value in unit_lines(unit, "SystemCallFilter"):
        invert = value.startswith("~")
        items = value[1:].split() if invert else value.split()
        if allow_list is None:
            allow_list = not invert
            if allow_list:
                names |= expand("@default", groups)
        calls = set()
        for item in items:
            calls |= expand(item, groups)
        # In allow-list mode a ~ line removes; in deny-list mode a plain line removes (allows again).
        if invert == allow_list:
            names -= calls
        else:
            names |= calls
    return allow_list, names


def passwd_entry(root, user):
    with open(os.path.join(root, "etc/passwd")) as f:
        for line in f:
            fields = line.rstrip("\n").split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3])
    raise SystemExit(f"unit-seccomp: no user {user} in {root}/etc/passwd")


def supplementary_groups(root, user, primary):
    gids = {primary}
    with open(os.path.join(root, "etc/group")) as f:
        for line in f:
            fields = line.rstrip("\n").split(":")
            if len(fields) >= 4 and user in fields[3].split(","):
                gids.add(int(fields[2]))
    return sorted(gids)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--unit", required=True)
    parser.add_argument("--root", default="/")
    parser.add_argument("--user")
    parser.add_argument("--print", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    allow_list, names = filter_from_unit(args.unit)
    if allow_list is None:
        raise SystemExit(f"unit-seccomp: {args.unit} has no SystemCallFilter= line")
    path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(path, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    numbers = {}
    for name in sorted(names):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number != -1:  # __NR_SCMP_ERROR: not a call of this architecture
            numbers[name] = number
    if args.print:
        print(("allowed" if allow_list else "denied") + f" ({len(numbers)}): " + " ".join(sorted(numbers)))
        return 0
    if not command:
        raise SystemExit("unit-seccomp: no command given")

    limit_core = unit_lines(args.unit, "LimitCORE")
    if limit_core and limit_core[-1] in ("0", "0:0"):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if args.root != "/":
        os.chroot(args.root)
        os.chdir("/")
    if args.user:
        root = "/"
        uid, gid = passwd_entry(root, args.user)
        os.setgroups(supplementary_groups(root, args.user, gid))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    ctx = lib.seccomp_init(SCMP_ACT_KILL_PROCESS if allow_list else SCMP_ACT_ALLOW)
    if not ctx:
        raise SystemExit("unit-seccomp: seccomp_init failed")
    action = SCMP_ACT_ALLOW if allow_list else SCMP_ACT_KILL_PROCESS
    for name, number in numbers.items():
        rc = lib.seccomp_rule_add_array(ctx, action, number, 0, None)
        if rc < 0:
            raise SystemExit(f"unit-seccomp: seccomp_rule_add({name}) failed: {rc}")
    # libseccomp sets no_new_privs first (SCMP_FLTATR_CTL_NNP), which an unprivileged user needs.
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        raise SystemExit(f"unit-seccomp: seccomp_load failed: {rc}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())

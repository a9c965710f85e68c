#!/usr/bin/env python3
"""Rewrites the version a tb-agent binary reports (`--version`, `current_fw_version`) in place of the one it was
built with: the bytes `TB-AGENT-VERSION=<version>` that Sources/CAgentVersion keeps, NUL-padded to 64.

    stamp-version.py IN OUT VERSION

For a release whose version is decided after the build, and for the tests' second build of another version."""
import os
import sys

MARKER = b"TB-AGENT-VERSION="
SIZE = 64


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 64
    source, target, version = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    if not version or len(MARKER) + len(version) >= SIZE or any(c <= 0x20 or c >= 0x7F for c in version):
        print(f"stamp-version.py: '{sys.argv[3]}' is not a version (printable, no spaces, at most {SIZE - len(MARKER) - 1} bytes)", file=sys.stderr)
        return 64
    with open(source, "rb") as f:
        data = bytearray(f.read())
    at = data.find(MARKER)
    if at < 0 or data.find(MARKER, at + 1) >= 0:
        print(f"stamp-version.py: {source} has {'no' if at < 0 else 'more than one'} version stamp", file=sys.stderr)
        return 65
    data[at:at + SIZE] = (MARKER + version).ljust(SIZE, b"\0")
    with open(target, "wb") as f:
        f.write(data)
    os.chmod(target, 0o755)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The fault suite: tries the agent's failure modes on purpose (see scripts/faults.sh).

    faults.py --bin DIR [--long] [--only NAME ...]

Short form (the test command): fewer rounds of each random fault. Long form (release): at least 200 of each.
Prints one line per scenario with what happened, and exits 1 if any scenario failed.
"""

import argparse
import importlib
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Binaries, Failure  # noqa: E402

# name: (short-form size, long-form size); the scenario is scenario_NAME.run_scenario(binaries, size, report).
SCENARIOS = {
    "kill": (60, 220),
    "spool": (24, 210),
    "outages": (1, 4),
    "storage": (1, 1),
    "badserver": (1, 3),
    "secrets": (1, 1),
    "floods": (1, 50),
    "lock": (4, 60),
    "symlink": (6, 60),
    "reprovision": (2, 50),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="folder holding the built tb-agent and tb-sim")
    parser.add_argument("--long", action="store_true", help="the release form: at least 200 rounds of each")
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(SCENARIOS))
    args = parser.parse_args()
    binaries = Binaries(args.bin)
    # Stopped from outside (a CI timeout): unwind, so that every scenario stops its processes and unmounts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # One seed for every random choice, printed so that a failure can be repeated.
    seed = os.environ.setdefault("TB_FAULTS_SEED", str(time.time_ns() % 1_000_000_007))
    print(f"fault suite ({'long' if args.long else 'short'} form), TB_FAULTS_SEED={seed}", flush=True)
    failures = []
    started = time.monotonic()
    for name, (short, long) in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        size = long if args.long else short
        print(f"== {name}", flush=True)
        began = time.monotonic()
        lines = []

        def report(text):
            lines.append(text)
            print(f"    {text}", flush=True)

        try:
            importlib.import_module(f"scenario_{name}").run_scenario(binaries, size, report)
            print(f"    ok ({time.monotonic() - began:.0f} s)", flush=True)
        except Failure as e:
            failures.append(name)
            print(f"    FAILED ({time.monotonic() - began:.0f} s): {e}", flush=True)
        except Exception:
            failures.append(name)
            print(f"    ERROR ({time.monotonic() - began:.0f} s) in the harness:", flush=True)
            traceback.print_exc()
    total = time.monotonic() - started
    form = "long" if args.long else "short"
    if failures:
        print(f"fault suite ({form} form): FAILED: {', '.join(failures)} ({total:.0f} s)", flush=True)
        return 1
    print(f"fault suite ({form} form): all passed ({total:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

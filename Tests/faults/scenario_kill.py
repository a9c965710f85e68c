"""kill -9 of the agent at random moments while it provisions and writes its credentials.

Each round deletes the device on tb-sim (so that ALLOW_CREATE_NEW_DEVICES creates it again), puts a new token in
the configuration (`[provisioning] token = "tok-N"`, so the old and the new credentials are told apart), starts
`tb-agent provision --force` and kills it with SIGKILL:
  - "anytime": after a random delay in [0, the time a full run takes];
  - "in-write": the moment a temporary credentials file appears, plus 0-4 ms (during the crash-safe write);
  - "first-run": `tb-agent run` on an empty store, killed at a random moment of its first provisioning.
After each kill the store must load as the old or the new credentials (`tb-agent status` exit 0 from
credentials.json, not from the previous generation), never garbage or "damaged"; the previous generation, when
present, must be intact too; the files stay 0600 and the directory 0700.
"""

import hashlib
import json
import os
import random
import signal
import stat
import time

from harness import (Board, Failure, Process, TBSim, Workspace, agent_argv, check, device_name, run, sim_config,
                     stored_credentials, wait_until)


def token_of(document):
    return document["payload"]["credentials"]["token"]


def checksum_ok(document):
    payload = json.dumps(document["payload"], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest() == document["sha256"]


class Store:
    def __init__(self, state):
        self.state = state
        self.current = os.path.join(state, "credentials.json")
        self.previous = os.path.join(state, "credentials.previous.json")
        self.temps = [self.current + ".tmp", self.previous + ".tmp"]


def verify_store(binaries, board, store, allowed, round_name):
    """The store loads as one of `allowed` tokens (None = nothing stored); returns the token found."""
    code, out, err, _ = run(agent_argv(binaries, board, "status"), timeout=20)
    check(code in (0, 3), f"{round_name}: tb-agent status exited {code}: {err.strip()} {out.strip()}")
    check("damaged" not in out + err, f"{round_name}: the store reports damage:\n{out}{err}")
    if code == 3:
        check(None in allowed, f"{round_name}: nothing loads from the store, expected one of {allowed}:\n{out}{err}")
        document = None
        if os.path.exists(store.current):
            raise Failure(f"{round_name}: credentials.json exists but status says not provisioned:\n{out}{err}")
        return None
    check(f"stored in:   {store.current}\n" in out, f"{round_name}: not loaded from credentials.json:\n{out}")
    document = stored_credentials(store.state)
    token = token_of(document)
    check(token in allowed, f"{round_name}: the store holds token {token!r}, expected one of {allowed}")
    check(checksum_ok(document), f"{round_name}: the harness's checksum disagrees with a file tb-agent accepts")
    if os.path.exists(store.previous):
        with open(store.previous, "rb") as f:
            previous = json.loads(f.read())
        check(checksum_ok(previous), f"{round_name}: credentials.previous.json is damaged")
    for path in (store.current, store.previous):
        if os.path.exists(path):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            check(mode == 0o600, f"{round_name}: {os.path.basename(path)} has mode {mode:o}, expected 600")
    mode = stat.S_IMODE(os.stat(store.state).st_mode)
    check(mode == 0o700, f"{round_name}: the state directory has mode {mode:o}, expected 700")
    return token


def run_scenario(binaries, rounds, report):
    workspace = Workspace("kill")
    failed = True
    try:
        sim = TBSim(workspace, binaries, sim_config(), arguments=["--provision-close-delay", "1s"])
        board = Board(workspace)
        store = Store(board.state)

        def configure(token):
            board.write_config(sim.mqtt_port, sensors="none",
                               provisioning_extra=f'credentials_type = "ACCESS_TOKEN"\ntoken = "{token}"')

        configure("tok-0")
        name = device_name(binaries, board)
        code, out, err, _ = run(agent_argv(binaries, board, "provision"))
        check(code == 0, f"the first provisioning failed ({code}): {err}")
        current = verify_store(binaries, board, store, {"tok-0"}, "setup")

        # How long a whole `provision --force` takes here (process start to exit), to spread the kills over it.
        durations = []
        for i in range(3):
            sim.control("DELETE", f"/devices/{name}")
            configure(f"tok-cal{i}")
            code, out, err, seconds = run(agent_argv(binaries, board, "provision", "--force"))
            check(code == 0, f"calibration provisioning failed ({code}): {err}")
            durations.append(seconds)
            current = verify_store(binaries, board, store, {f"tok-cal{i}"}, "calibration")
        full = sorted(durations)[1]

        rng = random.Random(int(os.environ.get("TB_FAULTS_SEED", time.time_ns())))
        outcomes = {"old": 0, "new": 0, "finished": 0, "temp-left": 0, "none": 0}
        modes = {"anytime": 0, "in-write": 0, "first-run": 0}
        for n in range(1, rounds + 1):
            pick = rng.random()
            mode = "anytime" if pick < 0.45 else "in-write" if pick < 0.9 else "first-run"
            modes[mode] += 1
            new = f"tok-{n}"
            round_name = f"round {n} ({mode})"
            sim.control("DELETE", f"/devices/{name}")
            configure(new)
            if mode == "first-run":
                for path in (store.current, store.previous):
                    if os.path.exists(path):
                        os.unlink(path)
                current = None
                argv = agent_argv(binaries, board, "run")
            else:
                argv = agent_argv(binaries, board, "provision", "--force")
            round_began = time.time_ns()
            process = Process(workspace, "agent", argv)
            started = time.monotonic()
            if mode == "in-write":
                seen = wait_until(lambda: any(os.path.exists(p) for p in store.temps) or not process.alive(),
                                  timeout=full * 4 + 5, interval=0)
                time.sleep(rng.uniform(0, 0.004))
            elif mode == "anytime":
                time.sleep(max(0.0, rng.uniform(0, full) - (time.monotonic() - started)))
            else:
                time.sleep(max(0.0, rng.uniform(0, full * 1.3) - (time.monotonic() - started)))
            finished = not process.alive()
            process.kill()
            code = process.returncode()
            if finished and mode != "first-run":
                check(code == 0, f"{round_name}: provision ended with {code} before the kill: {process.stderr()}")
            if any(os.path.exists(p) and os.stat(p).st_mtime_ns >= round_began for p in store.temps):
                outcomes["temp-left"] += 1
            found = verify_store(binaries, board, store, {current, new}, round_name)
            if finished:
                outcomes["finished"] += 1
                check(found == new, f"{round_name}: provision finished but the store holds {found}")
            elif found is None:
                outcomes["none"] += 1
            else:
                outcomes["old" if found == current else "new"] += 1
            current = found
            if current is None:
                # The next round needs credentials to replace: store this round's token for good.
                code, out, err, _ = run(agent_argv(binaries, board, "provision"))
                if code != 0:
                    sim.control("DELETE", f"/devices/{name}")
                    code, out, err, _ = run(agent_argv(binaries, board, "provision"))
                check(code == 0, f"{round_name}: provisioning after the kill failed ({code}): {err}")
                current = verify_store(binaries, board, store, {new}, round_name + " (re-provisioned)")

        # After all that, a normal run still works and cleans up any temporary file.
        sim.control("DELETE", f"/devices/{name}")
        configure("tok-final")
        code, out, err, _ = run(agent_argv(binaries, board, "provision", "--force"))
        check(code == 0, f"provisioning after the kills failed ({code}): {err}")
        check(verify_store(binaries, board, store, {"tok-final"}, "final") == "tok-final", "final store")
        check(not any(os.path.exists(p) for p in store.temps), "a temporary credentials file was left behind")

        report(f"{rounds} kills (anytime {modes['anytime']}, during the write {modes['in-write']}, "
               f"first run {modes['first-run']}; a full provision takes {full * 1000:.0f} ms): store held the old "
               f"credentials {outcomes['old']}x, the new {outcomes['new']}x, none (first run) {outcomes['none']}x, "
               f"finished before the kill {outcomes['finished']}x; killed mid-write (temporary file left) "
               f"{outcomes['temp-left']}x; never unreadable")
        failed = False
    finally:
        workspace.close(failed)

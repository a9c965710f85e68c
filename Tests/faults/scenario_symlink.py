"""Links planted in the state directory: the agent must never write through one (issue 10, finding 5).

Someone who could write in the state directory (before it was refused, a foreign-owned or group-writable one
was only a warning) could plant a symbolic link where the agent is about to create a file, pointing at a file the
agent's user may write (a configuration, another service's data), and have it truncated. Each round plants links
to a victim file, with its content recorded, under the names the agent creates next:
  - "first start": in an empty state directory, before `tb-agent run` provisions: credentials.json.tmp,
    credentials.previous.json.tmp, agent.sock, spool/state.json.tmp, the first spool segments,
    counters/rain.count.tmp;
  - "running": while the agent runs (a random moment), under spool/state.json.tmp, counters/rain.count.tmp and the
    names of the next spool segments;
  - "restart": while it is stopped, then it starts again (a new segment, the state, the counter);
and then stops the agent with SIGTERM (the spool state and the counter are written at shutdown) or SIGKILL.
Every round: the victim keeps its content; the agent ran (readings reached tb-sim) and SIGTERM ended it with 0;
nothing the agent wrote is a link.
"""

import hashlib
import json
import os
import random
import time

from harness import (Board, Process, TBSim, Workspace, agent_argv, check, device_name, scan_records, sim_config,
                     wait_until)

VICTIM_TEXT = b"a file the agent must never truncate or write\n" * 4


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def segment_name(sequence):
    return f"{sequence:020d}.seg"


def next_sequence(spool):
    """The sequence the agent's next reading gets, as far as the files tell."""
    highest = 0
    try:
        names = os.listdir(spool)
    except FileNotFoundError:
        return 1
    for name in names:
        if name.endswith(".seg") and not os.path.islink(os.path.join(spool, name)):
            with open(os.path.join(spool, name), "rb") as f:
                records = scan_records(f.read())
            if records:
                highest = max(highest, records[-1][2])
    try:
        with open(os.path.join(spool, "state.json")) as f:
            highest = max(highest, json.load(f).get("acked", 0))
    except (OSError, ValueError):
        pass
    return highest + 1


def plant(path, victim):
    """A symbolic link at `path` to `victim` (replacing a stale one); False when a real file is there already."""
    if os.path.lexists(path):
        if not os.path.islink(path):
            return False
        os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(victim, path)
    return True


def plant_all(board, victim, which, ahead=120):
    spool = os.path.join(board.state, "spool")
    counters = os.path.join(board.state, "counters")
    names = [os.path.join(spool, "state.json.tmp"), os.path.join(counters, "rain.count.tmp")]
    if which == "first start":
        names += [os.path.join(board.state, n) for n in
                  ("credentials.json.tmp", "credentials.previous.json.tmp", "agent.sock")]
    first = next_sequence(spool)
    names += [os.path.join(spool, segment_name(s)) for s in range(first, first + ahead)]
    return sum(1 for name in names if plant(name, victim))


def links_written(board):
    """Files the agent reads as its own that are links (a planted one it used instead of replacing)."""
    out = []
    for path in (os.path.join(board.state, "credentials.json"), os.path.join(board.state, "spool", "state.json"),
                 os.path.join(board.state, "counters", "rain.count")):
        if os.path.islink(path):
            out.append(path)
    return out


def write_config(board, port):
    board.write_config(port, sensors="thermal", interval="200ms",
                       spool='[spool]\nsync_interval = "200ms"\n')
    with open(board.config, "a") as f:
        f.write('[[sensors]]\nname = "rain"\nkind = "counter"\nline = "GPIO23"\nbias = "pull-down"\ndebounce = "2ms"\n'
                'interval = "200ms"\n')


def run_scenario(binaries, rounds, report):
    workspace = Workspace("symlink")
    failed = True
    rng = random.Random(int(os.environ["TB_FAULTS_SEED"]) ^ 0x5EED)
    try:
        sim = TBSim(workspace, binaries, sim_config())
        victim = workspace.file("victim")
        counts = {"first start": 0, "running": 0, "restart": 0}
        planted_total = 0
        board = None
        for n in range(rounds):
            with open(victim, "wb") as f:
                f.write(VICTIM_TEXT)
            os.chmod(victim, 0o644)
            wanted = digest(victim)
            kind = "first start" if board is None or n % 5 == 0 else rng.choice(["running", "restart"])
            label = f"round {n + 1} ({kind})"
            if kind == "first start":
                board = Board(workspace, f"board-{n}")
                write_config(board, sim.mqtt_port)
                os.makedirs(board.state, mode=0o700)
                sim.control("DELETE", f"/devices/{device_name(binaries, board)}")
            if kind in ("first start", "restart"):
                planted_total += plant_all(board, victim, kind)
            since = time.time() * 1000
            name = device_name(binaries, board)
            agent = Process(workspace, f"agent-{n}", agent_argv(binaries, board, "run"))
            if kind == "running":
                time.sleep(rng.uniform(0, 1.5))
                planted_total += plant_all(board, victim, kind)
            # Pulses for the counter, so that it has something to save.
            for level in (1, 0, 1, 0):
                board.set_line("GPIO23", level)
                time.sleep(0.01)
            check(wait_until(lambda: any(ts >= since for _, _, ts, v in sim.telemetry(name) if "cpu_temperature" in v)
                             or not agent.alive(), 20, 0.1) and agent.alive(),
                  f"{label}: no readings from the agent (alive: {agent.alive()}):\n{agent.stderr()[-2000:]}")
            time.sleep(rng.uniform(0.3, 1.5))
            check(digest(victim) == wanted, f"{label}: the victim file was changed while the agent ran; log:\n"
                                            f"{agent.stderr()[-2000:]}")
            if rng.random() < 0.75:
                code = agent.terminate()
                check(code == 0, f"{label}: SIGTERM ended the agent with {code}:\n{agent.stderr()[-2000:]}")
            else:
                agent.kill()
            check(digest(victim) == wanted, f"{label}: the victim file was changed at shutdown")
            check(not links_written(board), f"{label}: the agent kept a planted link as its file: {links_written(board)}")
            counts[kind] += 1
        report(f"{rounds} rounds ({', '.join(f'{v} {k}' for k, v in counts.items())}), {planted_total} links planted "
               f"under the names of credentials, the status socket, spool segments and state, counters: the victim "
               f"file never changed, the agent published every round and stopped with 0 on SIGTERM")
        failed = False
    finally:
        workspace.close(failed)

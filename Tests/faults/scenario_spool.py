"""The offline spool truncated and corrupted at random offsets.

A spool is filled once while tb-sim is down (a thermal sensor every 100 ms and a burst of door changes, in 4 KiB
segments so that there are several). Each round copies it, damages it at a random offset of a random segment
(truncation, flipped bytes, a run of zeros, garbage appended, or a garbage state.json), and starts `tb-agent run`
on it against tb-sim. Every complete record before the damage (and every record of the other segments) must
reach tb-sim, nothing that was not in the spool may appear, new readings must follow (the agent runs on), the
agent must log the damage, and after a SIGTERM (exit 0) the spool's acknowledged watermark must cover every
record that was delivered, so that a restart re-sends nothing.
"""

import json
import os
import random
import shutil
import signal
import time

from harness import (Board, Failure, Process, TBSim, Workspace, agent_argv, check, device_name, record_timestamps,
                     run, scan_records, sim_config, status_json, wait_until)


def read_spool(directory):
    """{segment name: [(offset, size, sequence, [(ts, key)])]} of a spool folder."""
    out = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".seg"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        records = []
        for offset, size, sequence, payload in scan_records(data):
            keys = []
            for entry in json.loads(payload):
                keys += [(entry["ts"], key) for key in entry["values"]]
            records.append((offset, size, sequence, keys))
        out[name] = (len(data), records)
    return out


def damage(spool_dir, pristine, rng):
    """Damages the spool in place; returns (description, {(ts, key)} that must survive, last surviving sequence)."""
    kind = rng.choice(["truncate", "truncate", "flip", "zeros", "append", "state"])
    names = sorted(pristine)
    survivors = set()
    for name in names:
        for _, _, _, keys in pristine[name][1]:
            survivors |= set(keys)
    if kind == "state":
        with open(os.path.join(spool_dir, "state.json"), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
        return "garbage state.json", survivors
    # A segment chosen in proportion to its size, so that every byte of the spool is as likely to be hit.
    weights = [pristine[n][0] for n in names]
    name = rng.choices(names, weights=weights)[0]
    size, records = pristine[name]
    path = os.path.join(spool_dir, name)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        first_damaged = size
        what = f"{len(data) - size} garbage bytes appended to {name}"
    elif kind == "truncate":
        first_damaged = rng.randrange(size)
        del data[first_damaged:]
        what = f"{name} truncated at {first_damaged}/{size}"
    else:
        offset = rng.randrange(size)
        length = rng.randrange(1, 17 if kind == "flip" else 65)
        before = bytes(data[offset:offset + length])
        for i in range(offset, min(size, offset + length)):
            data[i] = data[i] ^ rng.randrange(1, 256) if kind == "flip" else 0
        changed = [i for i in range(offset, min(size, offset + length)) if data[i] != before[i - offset]]
        first_damaged = changed[0] if changed else size
        what = f"{name}: {len(changed)} bytes {'flipped' if kind == 'flip' else 'zeroed'} at {offset}/{size}"
    with open(path, "wb") as f:
        f.write(data)
    for offset, record_size, _, keys in records:
        if offset + record_size > first_damaged:
            survivors -= set(keys)
    return what, survivors


def run_scenario(binaries, rounds, report):
    workspace = Workspace("spool")
    failed = True
    try:
        sim = TBSim(workspace, binaries, sim_config())
        board = Board(workspace)
        spool_settings = '[spool]\nsegment_size = "4KiB"\nsync_interval = "0s"\n'
        board.write_config(sim.mqtt_port, sensors="door", interval="100ms", spool=spool_settings)
        name = device_name(binaries, board)
        code, out, err, _ = run(agent_argv(binaries, board, "provision"))
        check(code == 0, f"provisioning failed ({code}): {err}")

        # Fill the spool with the server down: 5 s of samples and 150 door changes.
        sim.stop()
        agent = Process(workspace, "filler", agent_argv(binaries, board, "run"))
        level = 1
        time.sleep(1)
        for _ in range(150):
            level ^= 1
            board.set_line("GPIO17", level)
            time.sleep(0.012)
        time.sleep(3)
        code = agent.terminate()
        check(code == 0, f"the agent did not stop cleanly after filling the spool ({code}): {agent.stderr()[-2000:]}")
        sim.start()
        spool_dir = os.path.join(board.state, "spool")
        pristine_dir = workspace.file("pristine-spool")
        shutil.copytree(spool_dir, pristine_dir)
        pristine = read_spool(pristine_dir)
        all_keys = set()
        for _, records in pristine.values():
            for _, _, _, keys in records:
                all_keys |= set(keys)
        record_count = sum(len(records) for _, records in pristine.values())
        check(len(pristine) >= 3 and record_count >= 100,
              f"the filled spool is too small to damage usefully: {len(pristine)} segments, {record_count} records")

        # Faster sampling for the rounds: new readings show quickly that the agent runs on.
        board.write_config(sim.mqtt_port, sensors="door", interval="200ms", spool=spool_settings)
        rng = random.Random(int(os.environ.get("TB_FAULTS_SEED", time.time_ns())))
        kinds = {}
        lost_total = 0
        for n in range(1, rounds + 1):
            shutil.rmtree(spool_dir)
            shutil.copytree(pristine_dir, spool_dir)
            what, survivors = damage(spool_dir, pristine, rng)
            kind = what.split(" ")[1] if what.startswith("garbage") else what.split(" ")[-3] if ":" in what else (
                "truncated" if "truncated" in what else "appended")
            kinds[kind] = kinds.get(kind, 0) + 1
            lost_total += len(all_keys) - len(survivors)
            round_name = f"round {n} ({what})"
            offset = sim.events_offset()
            began = time.time() * 1000
            agent = Process(workspace, "agent", agent_argv(binaries, board, "run"))

            def delivered():
                got = {(ts, key) for _, _, ts, values in sim.telemetry(name, offset) for key in values}
                return got

            def done():
                got = delivered()
                return survivors <= got and any(ts >= began for ts, key in got if key == "cpu_temperature")

            if not wait_until(done, 30, 0.1):
                got = delivered()
                missing = sorted(survivors - got)[:5]
                raise Failure(f"{round_name}: {len(survivors - got)} intact records never reached tb-sim "
                              f"(e.g. {missing}); agent alive: {agent.alive()}; log: {agent.stderr()[-1500:]}")
            got = delivered()
            foreign = {(ts, key) for ts, key in got if ts < began - 1000 and (ts, key) not in all_keys}
            check(not foreign, f"{round_name}: published readings that were never spooled: {sorted(foreign)[:5]}")
            check(agent.alive(), f"{round_name}: the agent exited: {agent.stderr()[-1500:]}")
            # Wait for the PUBACKs of what was delivered, then stop.
            wait_until(lambda: status_json(binaries, board).get("spoolDepth", 99) <= 2, 10, 0.1)
            code = agent.terminate()
            check(code == 0, f"{round_name}: SIGTERM ended the agent with {code}: {agent.stderr()[-1500:]}")
            log = agent.stderr()
            if "truncated" in what or "flipped" in what or "zeroed" in what or "appended" in what:
                check("spool" in log and "damage" in log,
                      f"{round_name}: the agent did not log the damage it cut off:\n{log[-1500:]}")
            # Every delivered old record is acknowledged: a restart must not send it again.
            with open(os.path.join(spool_dir, "state.json")) as f:
                acked = json.load(f)["acked"]
            left = read_spool(spool_dir)
            resend = [keys for _, records in left.values() for _, _, seq, keys in records
                      if seq > acked and any(k in survivors for k in keys)]
            check(not resend, f"{round_name}: {len(resend)} delivered records are still unacknowledged in the "
                              f"spool (watermark {acked}); a restart would send them again")
        report(f"{rounds} damaged spools ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}) of "
               f"{record_count} records in {len(pristine)} segments: every intact record before the damage was "
               f"delivered, {lost_total} readings after damage lost as expected, nothing foreign published, the "
               f"agent ran on, logged the damage and stopped cleanly each time")
        failed = False
    finally:
        workspace.close(failed)

"""Two agents on one state directory (issue 10, finding 6).

Two agents on one device would evict each other's session (ThingsBoard keeps one per device), write one spool, and
the second one's exit used to delete the first one's status socket. One agent runs; each round, at random:
  - "second run": another `tb-agent run` on the same configuration, after a random delay;
  - "provision": `tb-agent provision --force` on it;
  - "race": the agent is stopped, then two are started at the same instant;
  - "after kill -9": the agent is killed (its lock is the kernel's, gone with it) and a new one must start.
The one that finds the lock taken must exit within 5 s with 78, naming the holder's PID, having changed nothing:
the running agent keeps its status socket (the same inode), stays online, and tb-sim sees no new device session
and no provisioning request from the second one; exactly one agent runs afterwards.
"""

import os
import random
import signal
import time

from harness import (Board, Process, TBSim, Workspace, agent_argv, check, run, sim_config, status_json, wait_until)


def online(binaries, board, timeout=30):
    return wait_until(lambda: status_json(binaries, board).get("state") == "online", timeout, 0.2)


def device_sessions(sim):
    return [e for e in sim.events(kind="connect") if e.get("kind") != "provision"]


def expect_refused(process, holder_pid, label):
    code = process.wait(5)
    check(code is not None, f"{label}: the second agent still runs after 5 s:\n{process.stderr()[-2000:]}")
    check(code == 78, f"{label}: the second agent exited {code}, expected 78:\n{process.stderr()[-2000:]}")
    text = process.stderr()
    check(f"PID {holder_pid}" in text, f"{label}: the refusal does not name PID {holder_pid}:\n{text[-2000:]}")
    process.kill()


def run_scenario(binaries, rounds, report):
    workspace = Workspace("lock")
    failed = True
    rng = random.Random(int(os.environ["TB_FAULTS_SEED"]) ^ 0x10C)
    try:
        sim = TBSim(workspace, binaries, sim_config())
        board = Board(workspace)
        board.write_config(sim.mqtt_port, sensors="thermal", interval="500ms")
        socket_path = os.path.join(board.state, "agent.sock")
        agent = Process(workspace, "agent-0", agent_argv(binaries, board, "run"))
        check(online(binaries, board), f"the first agent did not come online:\n{agent.stderr()[-2000:]}")
        counts = {}
        for n in range(rounds):
            kind = rng.choice(["second run", "second run", "provision", "race", "after kill -9"])
            label = f"round {n + 1} ({kind})"
            counts[kind] = counts.get(kind, 0) + 1
            if kind in ("second run", "provision"):
                inode = os.lstat(socket_path).st_ino
                sessions = len(device_sessions(sim))
                requests = len(sim.events(kind="provision_request"))
                time.sleep(rng.uniform(0, 0.5))
                if kind == "second run":
                    second = Process(workspace, f"second-{n}", agent_argv(binaries, board, "run"))
                    expect_refused(second, agent.pid, label)
                else:
                    code, out, err, seconds = run(agent_argv(binaries, board, "provision", "--force"), timeout=30)
                    check(code == 78 and f"PID {agent.pid}" in err,
                          f"{label}: provision --force beside a running agent exited {code}: {err[-1500:]}")
                    check(seconds < 5, f"{label}: provision --force took {seconds:.1f} s to refuse")
                time.sleep(0.3)
                check(agent.alive(), f"{label}: the running agent stopped:\n{agent.stderr()[-2000:]}")
                check(os.path.exists(socket_path) and os.lstat(socket_path).st_ino == inode,
                      f"{label}: the running agent's status socket was removed or replaced")
                check(status_json(binaries, board).get("state") == "online",
                      f"{label}: the running agent is not online any more: {status_json(binaries, board)}")
                check(len(device_sessions(sim)) == sessions,
                      f"{label}: tb-sim saw {len(device_sessions(sim)) - sessions} new device session(s)")
                check(len(sim.events(kind="provision_request")) == requests, f"{label}: tb-sim was asked to provision")
            elif kind == "race":
                check(agent.terminate() == 0, f"{label}: SIGTERM did not end the agent with 0")
                pair = [Process(workspace, f"race-{n}-{i}", agent_argv(binaries, board, "run")) for i in range(2)]
                check(wait_until(lambda: sum(p.alive() for p in pair) <= 1, 10, 0.05),
                      f"{label}: both agents still run:\n" + "\n---\n".join(p.stderr()[-1500:] for p in pair))
                time.sleep(1)
                alive = [p for p in pair if p.alive()]
                check(len(alive) == 1, f"{label}: {len(alive)} agents run after the race:\n"
                                       + "\n---\n".join(p.stderr()[-1500:] for p in pair))
                loser = next(p for p in pair if not p.alive())
                check(loser.returncode() == 78, f"{label}: the loser exited {loser.returncode()}, expected 78:\n"
                                                f"{loser.stderr()[-1500:]}")
                loser.kill()
                agent = alive[0]
                check(online(binaries, board), f"{label}: the winner did not come online:\n{agent.stderr()[-2000:]}")
            else:
                agent.signal(signal.SIGKILL)
                agent.wait(5)
                agent = Process(workspace, f"agent-{n + 1}", agent_argv(binaries, board, "run"))
                check(online(binaries, board), f"{label}: no agent could start after kill -9 (a stale lock?):\n"
                                               f"{agent.stderr()[-2000:]}")
        check(agent.terminate() == 0, "the last agent did not stop with 0")
        report(f"{rounds} rounds ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}): every second agent "
               f"and provision exited 78 within 5 s naming the holder's PID; the running agent kept its socket, its "
               f"session and stayed online; races left exactly one agent; kill -9 left no stale lock")
        failed = False
    finally:
        workspace.close(failed)

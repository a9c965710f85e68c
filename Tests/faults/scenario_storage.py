"""A full disk and a read-only state directory.

Full disk: the state directory is a small tmpfs. The agent runs and publishes; the file system is then filled
up. The agent must keep running, keep its credentials (unchanged, still loading), keep publishing readings (from
memory while the spool cannot take them), say so in its log and in `tb-agent status`, and recover by itself once
space is freed. `tb-agent provision --force` on the full disk must fail with a clear message and leave the old
credentials in place.

Read-only state directory: the provisioned state directory is bind-mounted read-only over itself (chmod does
not stop root, which runs these tests), once with no spool yet and once with readings spooled while offline. The
agent must start, connect, publish (the spooled readings it can read, and new ones), and report the condition.

Both need mount(2) (root with CAP_SYS_ADMIN). Without it, the full disk falls back to RLIMIT_FSIZE (`ulimit -f`,
with SIGXFSZ ignored so that writes fail with EFBIG as they would on a full disk) and the read-only case is
skipped with a message.
"""

import errno
import os
import resource
import signal
import subprocess
import time

from harness import (Board, Failure, Process, TBSim, Workspace, agent_argv, check, device_name, mount_available,
                     run, sim_config, status_json, wait_until)


def mount(workspace, *argv):
    done = subprocess.run(["mount", *argv], capture_output=True, text=True)
    check(done.returncode == 0, f"mount {' '.join(argv)} failed: {done.stderr}")
    workspace.mounts.append(argv[-1])


def unmount(workspace, target):
    subprocess.run(["umount", target], check=True)
    workspace.mounts.remove(target)


def fill(directory):
    """Writes a filler file until the file system is full; returns its path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            check(e.errno == errno.ENOSPC, f"filling {directory} failed with {e}")
    # Every last byte: small writes until nothing fits.
    with open(path, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return path


def readings_since(sim, name, since_ms):
    return sorted({ts for _, _, ts, values in sim.telemetry(name) if "cpu_temperature" in values and ts >= since_ms})


def status_text(binaries, board):
    code, out, err, _ = run(agent_argv(binaries, board, "status"), timeout=20)
    return code, out + err


def full_disk(workspace, binaries, sim, use_mount, report):
    board = Board(workspace, "board-full")
    os.makedirs(board.state, mode=0o700)
    if use_mount:
        mount(workspace, "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", board.state)
    board.write_config(sim.mqtt_port, sensors="thermal", interval="200ms",
                       spool='[spool]\nsync_interval = "200ms"\n')
    name = device_name(binaries, board)
    code, out, err, _ = run(agent_argv(binaries, board, "provision"))
    check(code == 0, f"provisioning failed ({code}): {err}")
    credentials = os.path.join(board.state, "credentials.json")
    with open(credentials, "rb") as f:
        stored = f.read()

    preexec = None
    if not use_mount:
        def preexec():
            # Files of the agent may not grow past 16 KiB: the spool's segments hit the limit like a full disk.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))
    agent = Process(workspace, "agent-full", agent_argv(binaries, board, "run"), preexec_fn=preexec)
    check(wait_until(lambda: status_json(binaries, board).get("state") == "online", 30, 0.2),
          f"the agent did not come online: {agent.stderr()[-2000:]}")
    time.sleep(1)

    filled_at = time.time() * 1000
    filler = fill(board.state) if use_mount else None
    if not use_mount:
        time.sleep(0.5)
    time.sleep(3)
    check(agent.alive(), f"the agent died on a full disk: {agent.stderr()[-2000:]}")
    published = readings_since(sim, name, filled_at + 500)
    check(len(published) >= 5, f"the agent published {len(published)} readings in 2.5 s with the disk full; it "
                               f"should keep publishing from memory. Log:\n{agent.stderr()[-2000:]}")
    log = agent.stderr()
    wanted = "full" if use_mount else "File too large"
    check(wanted in log, f"the agent's log does not say the file system is full:\n{log[-2000:]}")
    lines_about_it = sum(1 for line in log.splitlines() if wanted in line)
    check(lines_about_it <= 4, f"the agent logged the full disk {lines_about_it} times in 3 s (once per write?):\n"
                               f"{log[-2000:]}")
    code, text = status_text(binaries, board)
    check(code == 0, f"tb-agent status failed on a full disk ({code}): {text}")
    check("storage:" in text and wanted in text, f"tb-agent status does not report the full disk:\n{text}")
    with open(credentials, "rb") as f:
        check(f.read() == stored, "the credentials changed on a full disk")

    if use_mount:
        # Space again: the spool works again and the status clears by itself.
        os.unlink(filler)
        check(wait_until(lambda: "storage" not in status_json(binaries, board), 10, 0.2),
              f"tb-agent status still reports a storage problem after space was freed: {status_json(binaries, board)}")
        check("works again" in agent.stderr(), f"the agent did not log that the spool works again:\n"
                                               f"{agent.stderr()[-1500:]}")
        freed_at = time.time() * 1000
        check(wait_until(lambda: len(readings_since(sim, name, freed_at)) >= 3, 10, 0.2),
              "no readings after space was freed")
    code = agent.terminate()
    check(code == 0, f"SIGTERM on a full disk ended the agent with {code}: {agent.stderr()[-2000:]}")

    if use_mount:
        # provision --force on a full disk: a clear error, the old credentials kept.
        filler = fill(board.state)
        sim.control("DELETE", f"/devices/{name}")
        code, out, err, _ = run(agent_argv(binaries, board, "provision", "--force"))
        check(code == 74, f"provision --force on a full disk exited {code}, expected 74: {err}")
        check("free space" in err, f"provision --force on a full disk does not say what to do: {err}")
        with open(credentials, "rb") as f:
            check(f.read() == stored, "provision --force on a full disk changed the stored credentials")
        code, text = status_text(binaries, board)
        check(code == 0 and "damaged" not in text, f"the credentials do not load after a failed provision: {text}")
        os.unlink(filler)
    report(f"full disk ({'tmpfs of 256 KiB' if use_mount else 'RLIMIT_FSIZE 16 KiB, no mount here'}): agent kept "
           f"running and its credentials, published {len(published)} readings from memory in 2.5 s, logged it "
           f"({lines_about_it} log lines), status showed it" + (
               "; recovered by itself when space was freed; provision --force exited 74 with the old "
               "credentials kept" if use_mount else ""))


def read_only(workspace, binaries, sim, report):
    for variant in ("no spool yet", "spooled readings"):
        board = Board(workspace, "board-ro-" + variant.split()[0])
        board.write_config(sim.mqtt_port, sensors="thermal", interval="200ms")
        name = device_name(binaries, board)
        sim.control("DELETE", f"/devices/{name}")
        code, out, err, _ = run(agent_argv(binaries, board, "provision"))
        check(code == 0, f"provisioning failed ({code}): {err}")
        spooled = []
        if variant == "spooled readings":
            # Readings spooled while the server is unreachable (a port nobody listens on, same credentials).
            sim.stop()
            filler = Process(workspace, "agent-ro-filler", agent_argv(binaries, board, "run"))
            time.sleep(2)
            check(filler.terminate() == 0, "the agent did not stop cleanly")
            sim.start()
            from harness import scan_records, record_timestamps
            spool_dir = os.path.join(board.state, "spool")
            for segment in sorted(os.listdir(spool_dir)):
                if segment.endswith(".seg"):
                    with open(os.path.join(spool_dir, segment), "rb") as f:
                        for _, _, _, payload in scan_records(f.read()):
                            spooled += record_timestamps(payload)
            check(len(spooled) >= 5, f"only {len(spooled)} readings were spooled")
        mount(workspace, "--bind", board.state, board.state)
        subprocess.run(["mount", "-o", "remount,bind,ro", board.state], check=True)
        check(subprocess.run(["touch", os.path.join(board.state, "probe")], capture_output=True).returncode != 0,
              "the read-only bind mount is writable")
        started = time.time() * 1000
        agent = Process(workspace, "agent-ro", agent_argv(binaries, board, "run"))
        check(wait_until(lambda: len(readings_since(sim, name, started)) >= 5 or not agent.alive(), 20, 0.2)
              and agent.alive(),
              f"read-only state directory ({variant}): the agent did not publish; alive: {agent.alive()}; log:\n"
              f"{agent.stderr()[-2000:]}")
        if spooled:
            got = {ts for _, _, ts, values in sim.telemetry(name) if "cpu_temperature" in values}
            check(wait_until(lambda: set(spooled) <= {ts for _, _, ts, v in sim.telemetry(name)}, 10, 0.2),
                  f"read-only state directory: {len(set(spooled) - got)} spooled readings were not published")
        log = agent.stderr()
        check("read-only" in log, f"read-only state directory ({variant}): the log does not say so:\n{log[-2000:]}")
        code, text = status_text(binaries, board)
        check(code == 0, f"tb-agent status failed with a read-only state directory ({code}): {text}")
        check("storage:" in text and "read-only" in text, f"tb-agent status does not report it:\n{text}")
        code = agent.terminate()
        check(code == 0, f"SIGTERM with a read-only state directory ended the agent with {code}: {log[-2000:]}")
        unmount(workspace, board.state)
    report("read-only state directory (bind mount), with no spool yet and with spooled readings: the agent started, "
           "published the spooled and new readings, logged and showed the condition, stopped cleanly")


def run_scenario(binaries, _size, report):
    workspace = Workspace("storage")
    failed = True
    try:
        sim = TBSim(workspace, binaries, sim_config())
        use_mount = mount_available()
        full_disk(workspace, binaries, sim, use_mount, report)
        if use_mount:
            read_only(workspace, binaries, sim, report)
        else:
            report("SKIPPED read-only state directory: mount(2) is not permitted here (root ignores chmod, so "
                   "only a read-only mount can make the directory read-only)")
        failed = False
    finally:
        workspace.close(failed)

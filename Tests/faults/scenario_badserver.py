"""A server that sends garbage, oversized packets, wrong statuses or nothing at all (Tests/faults/fakeserver.py).

One-shot commands, for every way of misbehaving: `tb-agent provision` against each broken provisioning answer
and `tb-agent connect-test` against each broken device session must exit non-zero (never by a signal) within
their timeout plus a margin, with one clear `tb-agent: ...` message naming the server or its reply, and store nothing.

The service: `tb-agent run` against each broken server must stay alive, log the problem and try again (the fake
server sees a second connection), or, when the server refused provisioning (or issued credentials MQTT cannot
carry), wait for a person and say so in `tb-agent status`; then SIGTERM must stop it with exit 0 (no hang). A device session that receives a 2 MiB
attribute update, a payload that is not JSON and a garbage RPC must stay up.
"""

import os
import signal
import socket
import threading
import time

from fakeserver import DEVICE_MODES, PROVISION_MODES, FakeServer, mqtt_string, packet
from harness import (Board, Failure, Process, Workspace, agent_argv, check, run, status_json, wait_until)

TIMEOUT = 2  # [provisioning] timeout, also connect-test's connect timeout
# A refusal: the server said no, or said SUCCESS with credentials MQTT cannot carry (stored nowhere; the server has
# created the device with them, so a person must act). A 2 MiB answer is not among them: it is dropped as oversized
# before it is read (no usable answer, tried again).
REFUSED = {"status-failure", "status-not-found", "control-token", "noncharacter-token"}

# The service's runs in the short form; the long form runs every mode (a silent device server takes the
# 30 s device connect timeout to be retried).
SHORT_RUN_PROVISION = ["garbage", "oversized", "silence", "not-json", "status-weird", "status-failure",
                       "huge-response", "control-token", "close-after-request", "suback-failure"]
SHORT_RUN_DEVICE = ["garbage", "oversized", "close", "connack-5", "connack-128", "connack-malformed",
                    "silence-after-connack", "junk-after-connack", "big-publishes"]


def parallel(jobs):
    """Runs callables in threads; returns the list of exceptions they raised."""
    errors = []
    lock = threading.Lock()

    def wrap(job):
        try:
            job()
        except Exception as e:  # noqa: BLE001 (collected and reported)
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=wrap, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def clear_message(err, port, what):
    lines = [line for line in err.splitlines() if line.startswith("tb-agent:")]
    check(lines, f"{what}: no `tb-agent: ...` error message on stderr:\n{err[-1500:]}")
    # It names the server, or the reply it could not use.
    check(any(f"127.0.0.1:{port}" in line or "/provision/response" in line or "server" in line for line in lines),
          f"{what}: the message names neither the server 127.0.0.1:{port} nor its reply:\n{lines}")
    check("Fatal error" not in err, f"{what}: crashed:\n{err[-1500:]}")
    return lines[-1]


def check_stop_is_final():
    """The fake server itself: once stop() has returned, its port refuses connections and a connection it held
    is ended. (stop() used to close the listener under the thread blocked in accept(); Linux kept that socket
    listening, and the stopped server accepted and answered the next CONNECT.)"""
    connect = packet(0x10, mqtt_string("MQTT") + bytes([4, 0x82, 0, 60]) + mqtt_string("probe") + mqtt_string("provision"))
    s = FakeServer(provision_mode="silence")
    held = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    try:
        held.sendall(connect)
        check(wait_until(lambda: len(s.attempts("provision")) == 1, 5, 0.01), "the fake server did not see the CONNECT")
        s.stop()
        check(not s.accept_thread.is_alive(), "FakeServer.stop() returned with its accept thread still running")
        try:
            check(held.recv(16) == b"", "a connection held by a stopped fake server received data")
        except socket.timeout:
            raise Failure("a connection held by a stopped fake server is still open 5 s later") from None
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(5)
        try:
            probe.connect(("127.0.0.1", s.port))
            probe.sendall(connect)
            try:
                answer = repr(probe.recv(16))
            except socket.timeout:
                answer = "nothing"
            raise Failure(f"a stopped fake server accepted a connection on port {s.port} (and answered {answer})")
        except ConnectionRefusedError:
            pass
        finally:
            probe.close()
    finally:
        held.close()
        s.stop()


def run_scenario(binaries, rounds, report):
    check_stop_is_final()
    workspace = Workspace("badserver")
    failed = True
    servers = []
    try:
        def board_for(name, server):
            board = Board(workspace, name)
            board.write_config(server.port, sensors="thermal", interval="500ms", timeout=f"{TIMEOUT}s")
            return board

        def server(provision_mode="ok", device_mode="ok", seed=None):
            s = FakeServer(provision_mode, device_mode, seed=seed)
            servers.append(s)
            return s

        messages = {}

        # One-shot: provision against every broken provisioning answer.
        def provision_case(mode, seed):
            s = server(provision_mode=mode, seed=seed)
            board = board_for(f"prov-{mode}-{seed}", s)
            code, out, err, seconds = run(agent_argv(binaries, board, "provision"), timeout=TIMEOUT + 20)
            what = f"provision against '{mode}'"
            check(code is not None, f"{what}: hung (no exit after {TIMEOUT + 20} s)")
            check(code > 0, f"{what}: exited with {code} (a signal?):\n{err[-1500:]}")
            check(seconds < TIMEOUT + 10, f"{what}: took {seconds:.1f} s with a {TIMEOUT} s timeout")
            messages[f"provision/{mode}"] = (code, clear_message(err, s.port, what))
            check(not os.path.exists(os.path.join(board.state, "credentials.json")),
                  f"{what}: credentials were stored")

        # One-shot: connect-test against every broken device session (credentials from a good provisioning).
        def connect_case(mode, seed):
            s = server(device_mode=mode, seed=seed)
            board = board_for(f"conn-{mode}-{seed}", s)
            code, out, err, _ = run(agent_argv(binaries, board, "provision"), timeout=30)
            check(code == 0, f"provisioning against the fake server failed ({code}): {err}")
            code, out, err, seconds = run(agent_argv(binaries, board, "connect-test"), timeout=TIMEOUT + 20)
            what = f"connect-test against '{mode}'"
            check(code is not None, f"{what}: hung (no exit after {TIMEOUT + 20} s)")
            if mode in ("big-publishes", "silence-after-connack", "junk-after-connack"):
                # CONNACK 0 is an accepted connection: what comes after is for the service to handle.
                check(code == 0, f"{what}: a server that accepts the connection was not accepted ({code}): {err}")
                return
            check(code > 0, f"{what}: exited with {code} (a signal?):\n{err[-1500:]}")
            check(seconds < TIMEOUT + 10, f"{what}: took {seconds:.1f} s with a {TIMEOUT} s timeout")
            messages[f"connect/{mode}"] = (code, clear_message(err, s.port, what))

        seeds = range(rounds)
        jobs = []
        for seed in seeds:
            for mode in PROVISION_MODES:
                if mode != "ok" and (seed == 0 or mode in ("garbage", "oversized")):
                    jobs.append(lambda m=mode, sd=seed: provision_case(m, sd))
            for mode in DEVICE_MODES:
                if mode != "ok" and (seed == 0 or mode in ("garbage", "junk-after-connack")):
                    jobs.append(lambda m=mode, sd=seed: connect_case(m, sd))
        one_shots = len(jobs)
        # A few at a time: 2 cores.
        errors = []
        for i in range(0, len(jobs), 6):
            errors += parallel(jobs[i:i + 6])
        if errors:
            raise Failure("; ".join(str(e) for e in errors[:5]))

        # The service against each broken server, all at once.
        long_form = rounds > 1
        provision_modes = [m for m in PROVISION_MODES if m != "ok"] if long_form else SHORT_RUN_PROVISION
        device_modes = [m for m in DEVICE_MODES if m != "ok"] if long_form else SHORT_RUN_DEVICE
        cases = []
        for mode in provision_modes:
            s = server(provision_mode=mode, seed=1)
            board = board_for(f"run-prov-{mode}", s)
            cases.append(("provision", mode, s, board))
        for mode in device_modes:
            s = server(device_mode=mode, seed=1)
            board = board_for(f"run-dev-{mode}", s)
            code, out, err, _ = run(agent_argv(binaries, board, "provision"), timeout=30)
            check(code == 0, f"provisioning against the fake server failed ({code}): {err}")
            cases.append(("device", mode, s, board))
        agents = {}
        for kind, mode, s, board in cases:
            agents[(kind, mode)] = Process(workspace, f"agent-{kind}-{mode}", agent_argv(binaries, board, "run"))

        def observe(kind, mode, s, board):
            agent = agents[(kind, mode)]
            what = f"run against a {kind} server answering '{mode}'"
            if kind == "provision" and mode in REFUSED:
                ok = wait_until(lambda: status_json(binaries, board).get("state") == "needs-attention"
                                or not agent.alive(), 20, 0.3)
                check(agent.alive(), f"{what}: the agent exited ({agent.returncode()}):\n{agent.stderr()[-1500:]}")
                check(ok, f"{what}: tb-agent status does not say a person must act: {status_json(binaries, board)}")
            elif mode == "big-publishes":
                time.sleep(6)
                check(agent.alive(), f"{what}: the agent exited ({agent.returncode()}):\n{agent.stderr()[-1500:]}")
                check(len(s.attempts(kind)) == 1,
                      f"{what}: the session did not stay up ({len(s.attempts(kind))} connections):\n"
                      f"{agent.stderr()[-1500:]}")
                check(status_json(binaries, board).get("state") == "online", f"{what}: not online")
            else:
                limit = 45 if mode == "silence" else 25
                retried = wait_until(lambda: len(s.attempts(kind)) >= 2 or not agent.alive(), limit, 0.2)
                check(agent.alive(), f"{what}: the agent exited ({agent.returncode()}):\n{agent.stderr()[-1500:]}")
                check(retried, f"{what}: no second attempt within {limit} s ({len(s.attempts(kind))} connections)"
                               f":\n{agent.stderr()[-1500:]}")
            log = agent.stderr()
            check("Fatal error" not in log, f"{what}: crashed:\n{log[-1500:]}")
            if mode != "big-publishes":
                check(any(" error " in line or " warning " in line for line in log.splitlines()),
                      f"{what}: nothing logged about it:\n{log[-1500:]}")
            code = agent.terminate(10)
            check(code == 0, f"{what}: SIGTERM gave {code} (None: still running after 10 s):\n{log[-1500:]}")

        errors = parallel([lambda c=c: observe(*c) for c in cases])
        if errors:
            raise Failure("; ".join(str(e) for e in errors[:5]))

        codes = {}
        for key, (code, _) in messages.items():
            codes.setdefault(code, []).append(key.split("/", 1)[1])
        report(f"{one_shots} one-shot commands against broken servers ({len(PROVISION_MODES) - 1} provisioning "
               f"faults, {len(DEVICE_MODES) - 1} device-session faults"
               f"{', garbage and oversized with ' + str(rounds) + ' seeds' if rounds > 1 else ''}): all exited "
               f"non-zero in time with a clear message (exit "
               f"{', '.join(f'{c}: {len(v)}' for c, v in sorted(codes.items()))})")
        report(f"tb-agent run against {len(cases)} broken servers: stayed alive, logged, retried (or waited for a "
               f"person on a refusal), stopped with exit 0 on SIGTERM")
        if os.environ.get("TB_FAULTS_VERBOSE") == "1":
            for key, (code, message) in sorted(messages.items()):
                report(f"  {key}: exit {code}: {message[:300]}")
        failed = False
    finally:
        for s in servers:
            s.stop()
        workspace.close(failed)

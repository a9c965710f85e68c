"""Secrets stay secret: the main scenarios run with known, distinctive secrets, and none may appear anywhere the
agent writes or shows.

Secrets: the provision secret (in the config file, and in a secret file), a wrong provision secret, the
requested ACCESS_TOKEN, the MQTT_BASIC password, and the token tb-sim generates when none is requested.
Scenarios, all at --log-level trace: setup (secret on stdin), check-config, identity, provision (token, MQTT_BASIC,
server-generated token), status (stored and from the running agent, text and JSON), connect-test, run (while
running: /proc/PID/cmdline and environ of every process on the machine, the getStatus RPC answer, the client
attributes it published), a failing provision (NOT_FOUND, in `provision` and in `run`), and a rejected connect
(credentials revoked on tb-sim: connect-test, and run until it re-provisions and is refused).
Searched: every stdout and stderr, status outputs, RPC answers, attributes, process arguments and environments,
for each secret whole and for every 12-character piece of its random part.
Also checked: credential files 0600, the state and spool folders 0700, spool files 0600, setup's config 0600.
"""

import glob
import json
import os
import secrets
import signal
import stat
import time

from harness import (Board, Failure, Process, TBSim, Workspace, agent_argv, check, device_name, run, status_json,
                     wait_until)


def make_secret(label):
    return f"{label}-{secrets.token_hex(12)}"


class Scanner:
    def __init__(self):
        self.secrets = {}
        self.texts = 0

    def add(self, name, value, random_part=None):
        """random_part: the part no ordinary text contains (default: all of it)."""
        self.secrets[name] = (value, random_part or value)

    @staticmethod
    def pieces(value, random_part):
        return [value] + [random_part[i:i + 12] for i in range(len(random_part) - 11)]

    def scan(self, label, text):
        self.texts += 1
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        for name, (value, random_part) in self.secrets.items():
            for piece in self.pieces(value, random_part):
                if piece in text:
                    at = text.index(piece)
                    raise Failure(f"the {name} appears in {label}: …{text[max(0, at - 120):at + 40]!r}…")


def all_processes():
    """(pid, cmdline, environ) of every process readable now."""
    out = []
    for path in glob.glob("/proc/[0-9]*"):
        try:
            with open(path + "/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")
            try:
                with open(path + "/environ", "rb") as f:
                    environ = f.read().replace(b"\0", b" ")
            except OSError:
                environ = b""
            out.append((path.rsplit("/", 1)[1], cmdline, environ))
        except OSError:
            continue
    return out


def check_modes(state, label):
    """Credential files 0600, the state and spool folders 0700, spool files 0600."""
    checked = 0

    def expect(path, wanted):
        nonlocal checked
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        check(mode == wanted, f"{label}: {path} has mode {mode:o}, expected {wanted:o}")
        checked += 1

    expect(state, 0o700)
    for name in ("credentials.json", "credentials.previous.json", "credentials.lock"):
        if os.path.exists(os.path.join(state, name)):
            expect(os.path.join(state, name), 0o600)
    spool = os.path.join(state, "spool")
    if os.path.isdir(spool):
        expect(spool, 0o700)
        for name in os.listdir(spool):
            expect(os.path.join(spool, name), 0o600)
    for uid in {os.stat(os.path.join(state, n)).st_uid for n in os.listdir(state)}:
        check(uid == os.getuid(), f"{label}: a file in {state} belongs to uid {uid}, not to the agent's user")
    return checked


def run_scenario(binaries, _size, report):
    workspace = Workspace("secrets")
    failed = True
    scanner = Scanner()
    try:
        key = "SECRETS-PROVISION-KEY"
        provision_secret = make_secret("provsecret")
        wrong_secret = make_secret("wrongsecret")
        token = make_secret("tokensecret")
        password = make_secret("mqttpassword")
        for name, value in (("provision secret", provision_secret), ("wrong provision secret", wrong_secret),
                            ("access token", token), ("MQTT_BASIC password", password)):
            scanner.add(name, value, value.split("-", 1)[1])
        sim = TBSim(workspace, binaries, f"""
[[profiles]]
name = "secrets"
provision_key = "{key}"
provision_secret = "{provision_secret}"
strategy = "ALLOW_CREATE_NEW_DEVICES"
""")
        outputs = []  # (label, text)

        def command(board, label, *argv, expect=None, stdin=None):
            if stdin is None:
                code, out, err, _ = run(agent_argv(binaries, board, *argv, log_level="trace") if argv[0] not in (
                    "status", "identity") else agent_argv(binaries, board, *argv), timeout=60)
            else:
                import subprocess
                done = subprocess.run(agent_argv(binaries, board, *argv, log_level="trace"), input=stdin.encode(),
                                      capture_output=True, timeout=60)
                code, out, err = done.returncode, done.stdout.decode(), done.stderr.decode()
            if expect is not None:
                check(code == expect, f"{label}: exit {code}, expected {expect}: {err[-1500:]}")
            outputs.append((label + " stdout", out))
            outputs.append((label + " stderr", err))
            return code, out, err

        processes_seen = 0

        def while_running(board, label, seconds, name):
            nonlocal processes_seen
            agent = Process(workspace, f"agent-{label}", agent_argv(binaries, board, "run", log_level="trace"))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and agent.alive():
                for pid, cmdline, environ in all_processes():
                    scanner.scan(f"the arguments of process {pid} ({cmdline[:80]!r}) during {label}", cmdline)
                    scanner.scan(f"the environment of process {pid} during {label}", environ)
                    processes_seen += 1
                time.sleep(0.5)
            check(agent.alive(), f"{label}: the agent exited: {agent.stderr()[-1500:]}")
            command(board, f"status ({label}, running)", "status")
            command(board, f"status --json ({label}, running)", "status", "--json")
            if name:
                code, reply = sim.control("POST", f"/devices/{name}/rpc", {"method": "getStatus", "timeout": 5})
                outputs.append((f"the getStatus RPC answer ({label})", json.dumps(reply)))
                code, attributes = sim.control("GET", f"/devices/{name}/attributes")
                outputs.append((f"the client attributes ({label})", json.dumps(attributes)))
            code = agent.terminate()
            check(code == 0, f"{label}: SIGTERM gave {code}")
            outputs.append((f"run ({label}) stdout", agent.stdout()))
            outputs.append((f"run ({label}) stderr", agent.stderr()))

        # setup: the secret on standard input, the file it writes 0600.
        board = Board(workspace, "board-setup")
        setup_config = os.path.join(board.dir, "setup.toml")
        board.config = setup_config
        command(board, "setup", "setup", "--device-key", key, "--device-secret-stdin", "--host", "127.0.0.1",
                "--port", str(sim.mqtt_port), "--sysroot", os.path.join(board.dir, "sysroot"), expect=0,
                stdin=provision_secret + "\n")
        mode = stat.S_IMODE(os.stat(setup_config).st_mode)
        check(mode == 0o600, f"setup wrote {setup_config} with mode {mode:o}, expected 600")

        # ACCESS_TOKEN asked for, the provision secret inline in the config.
        board = Board(workspace, "board-token")
        board.write_config(sim.mqtt_port, key=key, secret=provision_secret, secret_inline=True, sensors="thermal",
                           interval="500ms", provisioning_extra=f'credentials_type = "ACCESS_TOKEN"\ntoken = "{token}"')
        name = device_name(binaries, board)
        command(board, "check-config", "check-config", expect=0)
        command(board, "identity --explain", "identity", "--explain", expect=0)
        command(board, "provision (token)", "provision", "--verify", expect=0)
        with open(os.path.join(board.state, "credentials.json")) as f:
            check(token in f.read(), "the requested token is not what was stored: the test would prove nothing")
        command(board, "status (token)", "status", expect=0)
        command(board, "connect-test (token)", "connect-test", expect=0)
        while_running(board, "token", 3, name)
        modes = check_modes(board.state, "token")

        # A rejected connect: the credentials revoked on the server.
        sim.control("POST", f"/devices/{name}/revoke")
        command(board, "connect-test (revoked)", "connect-test", expect=77)
        # run: rejected three times (5 s apart), then provisions again and is refused (the name exists).
        agent = Process(workspace, "agent-revoked", agent_argv(binaries, board, "run", log_level="trace"))
        refused = wait_until(lambda: "FAILURE" in agent.stderr() or not agent.alive(), 40, 0.5)
        check(agent.alive() and refused, f"run with revoked credentials: no re-provisioning seen; alive "
                                         f"{agent.alive()}:\n{agent.stderr()[-1500:]}")
        command(board, "status (revoked, running)", "status")
        check(agent.terminate() == 0, "run with revoked credentials did not stop cleanly")
        outputs.append(("run (revoked) stderr", agent.stderr()))
        outputs.append(("run (revoked) stdout", agent.stdout()))

        # MQTT_BASIC with a password, the provision secret in a file.
        sim.control("DELETE", f"/devices/{name}")
        board = Board(workspace, "board-basic")
        board.write_config(sim.mqtt_port, key=key, secret=provision_secret, sensors="thermal", interval="500ms",
                           provisioning_extra='credentials_type = "MQTT_BASIC"\nclient_id = "secrets-client"\n'
                                              f'username = "secrets-user"\npassword = "{password}"')
        command(board, "check-config (basic)", "check-config", expect=0)
        command(board, "provision (basic)", "provision", expect=0)
        command(board, "status (basic)", "status", expect=0)
        command(board, "connect-test (basic)", "connect-test", expect=0)
        while_running(board, "basic", 3, name)
        modes += check_modes(board.state, "basic")

        # A token tb-sim generates (the server's choice): learnt from tb-sim, then searched for too.
        sim.control("DELETE", f"/devices/{name}")
        board = Board(workspace, "board-generated")
        board.write_config(sim.mqtt_port, key=key, secret=provision_secret, sensors="thermal", interval="500ms")
        command(board, "provision (generated token)", "provision", expect=0)
        code, device = sim.control("GET", f"/devices/{name}")
        generated = json.dumps(device)
        with open(os.path.join(board.state, "credentials.json")) as f:
            stored = json.load(f)["payload"]["credentials"]["token"]
        check(stored in generated, "the generated token was not found on tb-sim")
        scanner.add("server-generated token", stored)
        command(board, "status (generated)", "status", expect=0)
        command(board, "connect-test (generated)", "connect-test", expect=0)
        while_running(board, "generated", 2, name)
        # A second provisioning while one is stored: the previous generation is written too.
        sim.control("DELETE", f"/devices/{name}")
        command(board, "provision --force (generated)", "provision", "--force", expect=0)
        modes += check_modes(board.state, "generated")

        # A failing provision: a wrong secret (NOT_FOUND), in provision and in run.
        sim.control("DELETE", f"/devices/{name}")
        board = Board(workspace, "board-wrong")
        board.write_config(sim.mqtt_port, key=key, secret=wrong_secret, sensors="thermal")
        command(board, "provision (wrong secret)", "provision", expect=69)
        agent = Process(workspace, "agent-wrong", agent_argv(binaries, board, "run", log_level="trace"))
        check(wait_until(lambda: status_json(binaries, board).get("state") == "needs-attention", 20, 0.3),
              f"run with a wrong secret does not wait for a person: {agent.stderr()[-1500:]}")
        for pid, cmdline, environ in all_processes():
            scanner.scan(f"the arguments of process {pid} (wrong secret)", cmdline)
            scanner.scan(f"the environment of process {pid} (wrong secret)", environ)
        command(board, "status (wrong secret, running)", "status")
        command(board, "status --json (wrong secret, running)", "status", "--json")
        check(agent.terminate() == 0, "run with a wrong secret did not stop cleanly")
        outputs.append(("run (wrong secret) stderr", agent.stderr()))

        # The scanner itself finds a secret where one is (the stored credentials hold the token in the clear).
        try:
            with open(workspace.file("board-token", "state", "credentials.json")) as f:
                scanner.scan("credentials.json", f.read())
            raise Failure("the scanner did not find the token in credentials.json")
        except Failure as e:
            check("access token" in str(e), f"the scanner's self-check: {e}")
        for label, text in outputs:
            scanner.scan(label, text)
        # The secrets really were used: the test would prove nothing otherwise.
        check(any("provisioned as" in text for _, text in outputs), "nothing was provisioned")
        report(f"{len(scanner.secrets)} secrets searched (whole and in 12-character pieces) in {len(outputs)} "
               f"outputs (stdout/stderr at trace level, status text and JSON, getStatus RPC answers, client "
               f"attributes) and {processes_seen} process argument lists and environments: none found; "
               f"{modes} file modes as expected (credentials 0600, state and spool 0700)")
        failed = False
    finally:
        workspace.close(failed)

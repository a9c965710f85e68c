"""What the fault scenarios share: tb-sim and tb-agent processes started and stopped by PID, free loopback
ports, simulated-board copies with a generated configuration, the tb-sim event log, the spool record format.

Standard library only, so the suite runs on a bare Debian 12 with python3.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Failure(Exception):
    """A fault scenario found the agent misbehaving."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Workspace:
    """A temporary folder removed at the end (kept with TB_FAULTS_KEEP=1 or when a scenario failed)."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f"tb-faults-{name}.")
        self.keep = os.environ.get("TB_FAULTS_KEEP") == "1"
        self.processes = []
        self.mounts = []

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    def close(self, failed):
        for process in reversed(self.processes):
            process.kill()
        for mount in reversed(self.mounts):
            subprocess.run(["umount", "-l", mount], stderr=subprocess.DEVNULL)
        if failed or self.keep:
            print(f"    files kept in {self.path}", flush=True)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


class Process:
    """A child process with its output in files, stopped by PID."""

    def __init__(self, workspace, name, argv, preexec_fn=None, env=None):
        self.name = name
        self.argv = argv
        self.stdout_path = workspace.file(f"{name}.stdout")
        self.stderr_path = workspace.file(f"{name}.stderr")
        self.out = open(self.stdout_path, "ab")
        self.err = open(self.stderr_path, "ab")
        self.popen = subprocess.Popen(
            argv, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn, env=env)
        self.pid = self.popen.pid
        workspace.processes.append(self)

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def signal(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout=10):
        """SIGTERM and wait; returns the exit status, or None if it had to be killed (a hang)."""
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
        return code

    def kill(self):
        self.signal(signal.SIGKILL)
        self.wait(5)
        self.out.close()
        self.err.close()

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Binaries:
    def __init__(self, directory):
        self.agent = os.path.join(directory, "tb-agent")
        self.sim = os.path.join(directory, "tb-sim")
        for path in (self.agent, self.sim):
            if not os.access(path, os.X_OK):
                raise SystemExit(f"{path} is missing: build with `swift build` or set TB_BIN_DIR")


def run(argv, timeout=60, **kwargs):
    """Runs a command to completion; returns (exit status, stdout, stderr, seconds)."""
    started = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        err = (e.stderr or b"").decode("utf-8", "replace")
        return None, out, err, time.monotonic() - started
    return (done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"),
            time.monotonic() - started)


# MARK: tb-sim

class TBSim:
    """tb-sim on free ports (or given ones, to restart it where it was), with a registry and an event log that
    survive restarts."""

    def __init__(self, workspace, binaries, config_text, arguments=(), port=0, control_port=0, name="tb-sim"):
        self.workspace = workspace
        self.binaries = binaries
        self.config_path = workspace.file(f"{name}.toml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.registry = workspace.file(f"{name}-registry.json")
        self.events_path = workspace.file(f"{name}-events.jsonl")
        self.arguments = list(arguments)
        self.name = name
        self.mqtt_port = port
        self.control_port = control_port
        self.process = None
        self.restarts = 0
        self.start()

    def start(self):
        ready = self.workspace.file(f"{self.name}.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        argv = [self.binaries.sim, "--config", self.config_path, "--port", str(self.mqtt_port),
                "--control-port", str(self.control_port), "--ready-file", ready, "--event-log", self.events_path,
                "--registry", self.registry] + self.arguments
        for attempt in range(50):
            self.process = Process(self.workspace, f"{self.name}-{self.restarts}-{attempt}", argv)
            if wait_until(lambda: os.path.exists(ready) or not self.process.alive(), 20) and self.process.alive():
                break
            # Restarting on a fixed port: the old socket may linger for a moment.
            self.process.kill()
            if self.mqtt_port == 0:
                raise Failure(f"tb-sim did not start: {self.process.stderr()}")
            time.sleep(0.1)
        else:
            raise Failure(f"tb-sim did not restart on port {self.mqtt_port}: {self.process.stderr()}")
        wait_until(lambda: os.path.getsize(ready) > 0, 5)
        with open(ready) as f:
            info = json.load(f)
        self.mqtt_port = info["mqttPort"]
        self.control_port = info["controlPort"]

    def stop(self, sig=signal.SIGTERM):
        if sig == signal.SIGKILL:
            self.process.kill()
        else:
            self.process.terminate()

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        self.restarts += 1
        self.start()

    def control(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def events_offset(self):
        return os.path.getsize(self.events_path) if os.path.exists(self.events_path) else 0

    def events(self, offset=0, kind=None):
        if not os.path.exists(self.events_path):
            return []
        with open(self.events_path, "rb") as f:
            f.seek(offset)
            data = f.read()
        out = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if kind is None or event.get("event") == kind:
                out.append(event)
        return out

    def telemetry(self, device, offset=0):
        """[(receive time ms, session, entry ts, {key: value})] in arrival order."""
        out = []
        for event in self.events(offset, "telemetry"):
            if event.get("device") != device:
                continue
            for entry in event.get("entries", []):
                out.append((event.get("ts"), event.get("session"), entry.get("ts"), entry.get("values", {})))
        return out


def sim_config(key="FAULTS-KEY", secret="faults-secret", strategy="ALLOW_CREATE_NEW_DEVICES", devices=""):
    return f"""
[[profiles]]
name = "faults"
provision_key = "{key}"
provision_secret = "{secret}"
strategy = "{strategy}"
{devices}
"""


# MARK: the simulated board

class Board:
    """A writable copy of board/simulated/ with a generated config.toml (relative paths resolve against it)."""

    def __init__(self, workspace, name="board"):
        self.dir = workspace.file(name)
        shutil.copytree(os.path.join(ROOT, "board", "simulated"), self.dir, symlinks=True)
        self.config = os.path.join(self.dir, "config.toml")
        self.state = os.path.join(self.dir, "state")
        self.secret_file = os.path.join(self.dir, "provision-secret")

    def write_config(self, port, secret="faults-secret", key="FAULTS-KEY", host="127.0.0.1", provisioning_extra="",
                     interval="1s", sensors="thermal", timeout="5s", spool="", state=None, secret_inline=False):
        """sensors: "thermal" (one file sensor sampled each interval), "door" (plus a GPIO input reporting each
        change, sampled only once a day so that every reading of it is a change), "none"."""
        if not secret_inline:
            with open(self.secret_file, "w") as f:
                f.write(secret + "\n")
            os.chmod(self.secret_file, 0o600)
            secret_line = 'device_secret_file = "provision-secret"'
        else:
            secret_line = f'device_secret = "{secret}"'
        blocks = []
        if sensors in ("thermal", "door"):
            blocks.append('[[sensors]]\nname = "cpu_temperature"\nkind = "thermal"\nzone = "thermal_zone0"\n')
        if sensors == "door":
            blocks.append('[[sensors]]\nname = "door"\nkind = "gpio"\nline = "GPIO17"\nbias = "pull-up"\n'
                          'debounce = "2ms"\nreport_as = "number"\ninterval = "24h"\n')
        gpio = '[gpio]\nbackend = "simulated"\nsimulated_dir = "gpio"\n' if sensors != "none" else ""
        text = f"""# written by the fault suite
[server]
host = "{host}"
port = {port}
keepalive = "5s"

[provisioning]
device_key = "{key}"
{secret_line}
timeout = "{timeout}"
{provisioning_extra}

[device]
name_template = "sim-{{id}}"
sysroot = "sysroot"
state_dir = "{state or self.state}"

[telemetry]
interval = "{interval}"

{spool}
{gpio}
{chr(10).join(blocks)}
"""
        with open(self.config, "w") as f:
            f.write(text)
        return self.config

    def set_line(self, name, level):
        path = os.path.join(self.dir, "gpio", name)
        with open(path + ".tmp", "w") as f:
            f.write(f"{level}\n")
        os.rename(path + ".tmp", path)


def agent_argv(binaries, board, *command, log_level=None):
    argv = [binaries.agent, *command, "--config", board.config]
    if log_level:
        argv += ["--log-level", log_level]
    return argv


def device_name(binaries, board):
    code, out, err, _ = run(agent_argv(binaries, board, "identity"))
    check(code == 0, f"tb-agent identity failed ({code}): {err}")
    return out.strip().splitlines()[0]


def status_json(binaries, board):
    code, out, err, _ = run(agent_argv(binaries, board, "status", "--json"), timeout=15)
    try:
        return json.loads(out)
    except ValueError:
        return {}


def stored_credentials(state_dir):
    """The credentials.json document, or None."""
    path = os.path.join(state_dir, "credentials.json")
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


# MARK: the spool's record format (Sources/AgentCore/Spool/SpoolRecord.swift)

HEADER = 19


def scan_records(data):
    """[(offset, size, sequence, payload bytes)] of the valid records from the start of a segment's bytes."""
    out = []
    offset = 0
    while len(data) - offset >= HEADER:
        if data[offset:offset + 3] != b"tb\x01":
            break
        length, sequence, stored = struct.unpack_from("<IQI", data, offset + 3)
        if length > (1 << 20) or len(data) - offset - HEADER < length:
            break
        payload = data[offset + HEADER:offset + HEADER + length]
        if zlib.crc32(payload, zlib.crc32(data[offset + 2:offset + 15])) != stored:
            break
        out.append((offset, HEADER + length, sequence, payload))
        offset += HEADER + length
    return out


def record_timestamps(payload):
    """The entry timestamps of a spooled payload (a JSON array of {ts, values})."""
    return [entry["ts"] for entry in json.loads(payload)]


def mount_available():
    """True when a tmpfs can be mounted here (root with CAP_SYS_ADMIN)."""
    target = tempfile.mkdtemp(prefix="tb-faults-mount-probe.")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", target],
                              capture_output=True)
        if done.returncode != 0:
            return False
        subprocess.run(["umount", target])
        return True
    except FileNotFoundError:
        return False
    finally:
        os.rmdir(target)

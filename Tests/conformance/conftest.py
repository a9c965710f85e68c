"""Fixtures for the tb-sim conformance tests: a tb-sim process on free ports, its event log and control interface.

The tests drive tb-sim with clients nobody here wrote: paho-mqtt (this virtual environment), ThingsBoard's Python SDK
tb-mqtt-client (a second virtual environment, TB_SDK_PYTHON, because its tb-paho-mqtt-client installs a `paho` package
that clashes with paho-mqtt), and mosquitto_pub.
"""
import json
import os
import pathlib
import signal
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("TB_BIN_DIR", ROOT / ".build" / "debug"))
SDK_PYTHON = pathlib.Path(os.environ.get("TB_SDK_PYTHON", ROOT / ".build" / "venv-sdk" / "bin" / "python"))
HERE = pathlib.Path(__file__).resolve().parent

PROVISION_KEY = "conformance-key"
PROVISION_SECRET = "conformance-secret"

CONFIG = f"""
[server]
mqtt_port = 0
control_port = 0

[timings]
provision_close_delay = "5s"
client_rpc_timeout = "5s"

[[profiles]]
name = "sensors"
provision_key = "{PROVISION_KEY}"
provision_secret = "{PROVISION_SECRET}"
strategy = "ALLOW_CREATE_NEW_DEVICES"

[[profiles]]
name = "fleet"
provision_key = "fleet-key"
provision_secret = "fleet-secret"
strategy = "CHECK_PRE_PROVISIONED_DEVICES"

[[devices]]
name = "pre-board-1"
profile = "fleet"
credentials_type = "ACCESS_TOKEN"
token = "pre-board-1-token"

[[devices]]
name = "bulk-board"
profile = "sensors"
token = "bulk-board-token"
"""


class Sim:
    """A running tb-sim."""

    def __init__(self, directory: pathlib.Path, extra_config: str = "", arguments=()):
        self.directory = directory
        self.events_path = directory / "events.jsonl"
        config = directory / "tb-sim.toml"
        config.write_text(CONFIG + extra_config)
        ready = directory / "ready.json"
        binary = BIN_DIR / "tb-sim"
        assert binary.exists(), f"{binary} is missing: build first (scripts/test.sh builds it)"
        self.stderr = open(directory / "stderr.txt", "w")
        self.process = subprocess.Popen(
            [str(binary), "--config", str(config), "--ready-file", str(ready), "--event-log", str(self.events_path),
             "--registry", str(directory / "registry.json"), *arguments],
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"tb-sim exited with {self.process.returncode}: {(directory / 'stderr.txt').read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError("tb-sim did not write its ready file within 20 s")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.host = "127.0.0.1"
        self.mqtt_port = info["mqttPort"]
        self.control_port = info["controlPort"]
        self.mqtts_port = info.get("mqttsPort")  # with --mqtts-port (the TLS listener)

    def stop(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.stderr.close()

    def events(self, kind=None, device=None):
        """Events from the log, optionally of one kind and one device."""
        if not self.events_path.exists():
            return []
        result = []
        for line in self.events_path.read_text().splitlines():
            event = json.loads(line)
            if kind is not None and event["event"] != kind:
                continue
            if device is not None and event.get("device") != device:
                continue
            result.append(event)
        return result

    def wait_for(self, predicate, timeout=15.0, what="a condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def control(self, method, path, body=None, timeout=30):
        """Calls the control interface; returns (status, parsed JSON)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture
def sim(tmp_path):
    simulator = Sim(tmp_path)
    yield simulator
    simulator.stop()


@pytest.fixture
def make_sim(tmp_path):
    """A factory: make_sim(extra_toml, arguments) starts a tb-sim whose configuration is CONFIG plus extra_toml, with
    more command-line flags."""
    started = []

    def make(extra_config="", arguments=()):
        directory = tmp_path / f"sim{len(started)}"
        directory.mkdir()
        simulator = Sim(directory, extra_config, arguments)
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


def run_sdk_script(name, *args, timeout=90):
    """Runs one of the SDK scripts under the tb-mqtt-client virtual environment; returns the completed process."""
    assert SDK_PYTHON.exists(), f"{SDK_PYTHON} is missing: scripts/test.sh creates the tb-mqtt-client environment"
    return subprocess.run([str(SDK_PYTHON), str(HERE / name), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def start_sdk_script(name, *args):
    assert SDK_PYTHON.exists(), f"{SDK_PYTHON} is missing: scripts/test.sh creates the tb-mqtt-client environment"
    return subprocess.Popen([str(SDK_PYTHON), str(HERE / name), *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

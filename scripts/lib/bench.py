#!/usr/bin/env python3
"""The measurements behind scripts/bench.sh: tb-agent beside ThingsBoard's Python SDK and mosquitto_pub.

Run through scripts/bench.sh, which installs what is needed and builds the release binaries. Everything talks to
127.0.0.1 on free ports: a mosquitto broker for the throughput figures, tb-sim for the rest. Prints a Markdown
report on standard output; progress goes to standard error.
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOPIC = "v1/devices/me/telemetry"
SECRET = "bench-provision-secret"
KEY = "bench-provision-key"
MB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")


def log(*parts):
    print("bench:", *parts, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def stop(proc, sig=signal.SIGTERM, timeout=15):
    """Stops one process we started, by its PID."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed(argv, **kwargs):
    """Runs argv under /usr/bin/time: (completed process, wall s, CPU s, peak RSS KiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", f.name] + argv, **kwargs)
        wall = time.perf_counter() - start
        lines = [line for line in open(f.name).read().splitlines() if line.strip()]
        user, system, rss = lines[-1].split()
    return done, wall, float(user) + float(system), int(rss)


def proc_cpu_seconds(pid):
    """CPU time of every thread of a running process, in nanosecond resolution (schedstat), as seconds."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just ended
    return total / 1e9


def proc_rss_kib(pid, key="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def proc_pss_kib(pid):
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def rss_by_mapping(pid):
    """The process's resident memory by what is mapped, from /proc/PID/smaps: {label: KiB}. Labels: the executable's
    and each shared library's file name (libcrypto.so.3 → libcrypto), "anonymous" (heap, stacks, anonymous maps) and
    "other" (the kernel's [vdso] and [vvar], other files)."""
    exe = os.path.realpath(f"/proc/{pid}/exe")
    out, label = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
                path = head[5].strip() if len(head) > 5 else ""
                path = path.removesuffix(" (deleted)")
                if path == "" or path in ("[heap]", "[stack]") or path.startswith(("[anon:", "[stack:")):
                    label = "anonymous"
                elif path == exe:
                    label = os.path.basename(exe)
                elif ".so" in os.path.basename(path):
                    label = os.path.basename(path).split(".so")[0]
                else:
                    label = "other"
            elif line.startswith("Rss:") and label is not None:
                out[label] = out.get(label, 0) + int(line.split()[1])
    return out


def format_mapping(mapping):
    """"tb-agent 11.9 MB, libc 1.6 MB, …, anonymous 0.8 MB": largest first, then anonymous and other."""
    if not mapping:
        return "n/a"
    last = ("anonymous", "other")
    named = sorted(((k, v) for k, v in mapping.items() if k not in last), key=lambda kv: -kv[1])
    parts = [f"{k} {v / 1024:.1f} MB" for k, v in named if v >= 51]  # under 0.05 MB: counted in "other"
    small = sum(v for k, v in named if v < 51)
    for k in last:
        v = mapping.get(k, 0) + (small if k == "other" else 0)
        if v >= 51:
            parts.append(f"{k} {v / 1024:.1f} MB")
    return f"total {sum(mapping.values()) / 1024:.1f} MB: " + ", ".join(parts)


def child_pid(pid):
    """The first child of a process (the client that /usr/bin/time started), or None."""
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def peak_mapping(argv, interval=0.01, **kwargs):
    """Runs argv under /usr/bin/time (as timed() does) while sampling its client's smaps every `interval` seconds;
    returns (completed process, the breakdown at the sample with the most resident memory). A run of its own,
    kept out of the timed rounds: reading smaps takes the process's memory map lock."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%U %S %M", "-o", f.name] + argv, **kwargs)
        best = {}
        while proc.poll() is None:
            pid = child_pid(proc.pid)
            if pid is not None:
                try:
                    sample = rss_by_mapping(pid)
                except (OSError, ValueError):
                    sample = {}  # it just ended
                if sum(sample.values()) > sum(best.values()):
                    best = sample
            time.sleep(interval)
        return proc, best


# ---------------------------------------------------------------------------------------------------------------
# Servers


class Mosquitto:
    def __init__(self, workdir):
        self.port = free_port()
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"log_dest file {workdir}/mosquitto.log\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "mosquitto")

    def close(self):
        stop(self.proc)


class TBSim:
    def __init__(self, bin_dir, workdir, devices=(), extra=(), profile_extra=""):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.events = os.path.join(workdir, "events.jsonl")
        ready = os.path.join(workdir, "tb-sim.ready")
        conf = os.path.join(workdir, "tb-sim.toml")
        with open(conf, "w") as f:
            f.write(f'[[profiles]]\nname = "bench"\nprovision_key = "{KEY}"\nprovision_secret = "{SECRET}"\n'
                    'strategy = "ALLOW_CREATE_NEW_DEVICES"\n' + profile_extra)
            for name, token in devices:
                f.write(f'\n[[devices]]\nname = "{name}"\nprofile = "bench"\ncredentials_type = "ACCESS_TOKEN"\n'
                        f'token = "{token}"\n')
        self.out = open(os.path.join(workdir, "tb-sim.out"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(bin_dir, "tb-sim"), "--config", conf, "--port", "0", "--ready-file", ready,
             "--event-log", self.events, "--provision-close-delay", "1s", *extra],
            stdout=self.out, stderr=subprocess.STDOUT)
        info = json.loads(wait_for(lambda: os.path.exists(ready) and open(ready).read().strip(), 20, "tb-sim"))
        self.port, self.control = info["mqttPort"], info["controlPort"]
        self.offset = 0

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def read_events(self):
        """Every event written so far."""
        with open(self.events, "rb") as f:
            return [json.loads(line) for line in f.read().splitlines() if line.strip()]

    def close(self):
        stop(self.proc)
        self.out.close()


# ---------------------------------------------------------------------------------------------------------------
# Configurations


def agent_config(path, port, state_dir, name, sysroot, gpio_dir, sensors="five", interval="1s", debounce="20ms"):
    """A tb-agent configuration on the simulated board (paths absolute)."""
    text = f"""[server]
host = "127.0.0.1"
port = {port}

[provisioning]
device_key = "{KEY}"
device_secret = "{SECRET}"

[device]
name_template = "{name}"
sysroot = "{sysroot}"
state_dir = "{state_dir}"

[telemetry]
interval = "{interval}"

[gpio]
backend = "simulated"
simulated_dir = "{gpio_dir}"
"""
    door = f"""
[[sensors]]
name = "door_closed"
kind = "gpio"
line = "GPIO17"
bias = "pull-up"
debounce = "{debounce}"
"""
    files = """
[[sensors]]
name = "temperature"
kind = "ds18b20"

[[sensors]]
name = "cpu_temperature"
kind = "thermal"
zone = "thermal_zone0"

[[sensors]]
name = "air_temperature"
kind = "iio"
device = "dht11"
channel = "in_temp_input"
scale = 0.001

[[sensors]]
name = "humidity"
kind = "iio"
device = "dht11"
channel = "in_humidityrelative_input"
scale = 0.001
"""
    with open(path, "w") as f:
        f.write(text + door + (files if sensors == "five" else ""))
    return path


class Board:
    """A small copy of board/simulated: the sysroot shared (symlinked), the gpio files its own."""

    def __init__(self, root, workdir, shared_sysroot=None):
        os.makedirs(workdir, exist_ok=True)
        self.dir = workdir
        self.gpio = os.path.join(workdir, "gpio")
        shutil.copytree(os.path.join(root, "board/simulated/gpio"), self.gpio)
        self.sysroot = os.path.join(workdir, "sysroot")
        if shared_sysroot:
            os.symlink(shared_sysroot, self.sysroot)
        else:
            shutil.copytree(os.path.join(root, "board/simulated/sysroot"), self.sysroot, symlinks=True)
        self.state = os.path.join(workdir, "state")


# ---------------------------------------------------------------------------------------------------------------
# 1. Telemetry throughput (mosquitto)

SDK_THROUGHPUT = r"""
import json, logging, resource, sys, time
logging.disable(logging.CRITICAL)
from tb_device_mqtt import TBDeviceMqttClient
port, n = int(sys.argv[1]), int(sys.argv[2])
client = TBDeviceMqttClient("127.0.0.1", port=port, username="bench-token")
client.connect()
deadline = time.time() + 30
while not client.is_connected():
    if time.time() > deadline: sys.exit("not connected")
    time.sleep(0.005)
ts = int(time.time() * 1000)
start = time.perf_counter()
infos = [client.send_telemetry({"ts": ts, "values": {"bench": i}}, quality_of_service=1) for i in range(n)]
for info in infos:
    parts = info.message_info if isinstance(info.message_info, list) else [info.message_info]
    for part in parts:
        part.wait_for_publish()
        if not part.is_published(): sys.exit("not acknowledged")
elapsed = time.perf_counter() - start
print(json.dumps({"readings": n, "seconds": elapsed}))
client.disconnect()
client.stop()
"""


def throughput(args, work, results):
    n = args.readings
    broker = Mosquitto(work)
    ts = int(time.time() * 1000)
    lines = os.path.join(work, "readings.txt")
    with open(lines, "w") as f:
        for i in range(n):
            # The payload tb-agent sends for one reading.
            f.write(f'[{{"ts":{ts},"values":{{"bench":{i}}}}}]\n')
    sdk_script = os.path.join(work, "sdk_throughput.py")
    open(sdk_script, "w").write(SDK_THROUGHPUT)

    def mosquitto_pub_argv(client_id):
        return ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", TOPIC,
                "-u", "bench-token", "-i", client_id, "-l"]

    def agent_argv(who):
        """tb-agent bench-publish with a fresh state directory: (argv, state directory)."""
        state = tempfile.mkdtemp(dir=work, prefix="agent-")
        cfg = os.path.join(state, "config.toml")
        with open(cfg, "w") as f:
            f.write(f'[server]\nhost = "127.0.0.1"\nport = {broker.port}\n\n[provisioning]\n'
                    f'device_key = "{KEY}"\ndevice_secret = "{SECRET}"\n\n[device]\nstate_dir = "{state}/state"\n')
        argv = [args.agent, "bench-publish", "--config", cfg, "--readings", str(n), "--log-level", "error"]
        if who == "tb-agent-1":
            argv += ["--records-per-publish", "1"]
        return argv, state

    try:
        for r in range(args.rounds):
            order = ["mosquitto_pub", "tb-agent", "tb-agent-1", "sdk"]
            random.shuffle(order)  # no client always runs first on a cold cache
            for who in order:
                if who == "mosquitto_pub":
                    with open(lines) as stdin:
                        done, wall, cpu, rss = timed(mosquitto_pub_argv(f"bench-pub-{r}"), stdin=stdin,
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    if done.returncode != 0:
                        raise RuntimeError(f"mosquitto_pub failed: {done.stderr.decode()}")
                    seconds = wall  # the whole process: its start-up is a few milliseconds
                elif who.startswith("tb-agent"):
                    argv, state = agent_argv(who)
                    done, wall, cpu, rss = timed(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    if done.returncode != 0:
                        raise RuntimeError(f"tb-agent bench-publish failed: {done.stderr.decode()}")
                    seconds = json.loads(done.stdout.decode().strip().splitlines()[-1])["seconds"]
                    shutil.rmtree(state, ignore_errors=True)
                else:
                    done, wall, cpu, rss = timed([args.sdk_python, sdk_script, str(broker.port), str(n)],
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    if done.returncode != 0:
                        raise RuntimeError(f"the SDK script failed: {done.stderr.decode()[-2000:]}")
                    seconds = json.loads(done.stdout.decode().strip().splitlines()[-1])["seconds"]
                row = {"rate": n / seconds, "cpu10k": cpu / n * 10000, "rss": rss / 1024, "wall": wall}
                results.setdefault("throughput", {}).setdefault(who, []).append(row)
                log(f"throughput round {r + 1} {who}: {row['rate']:.0f} readings/s, {row['cpu10k']:.3f} CPU-s/10k, "
                    f"{row['rss']:.1f} MB")
        # Where the memory is while publishing: one more run of each, its smaps sampled (not a timed round).
        mapping = results.setdefault("throughput_mapping", {})
        for who in ("tb-agent", "tb-agent-1", "mosquitto_pub"):
            if who == "mosquitto_pub":
                with open(lines) as stdin:
                    done, mapping[who] = peak_mapping(mosquitto_pub_argv("bench-pub-smaps"), stdin=stdin,
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            else:
                argv, state = agent_argv(who)
                done, mapping[who] = peak_mapping(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                shutil.rmtree(state, ignore_errors=True)
            if done.returncode != 0:
                raise RuntimeError(f"{who} failed in the smaps run (exit {done.returncode})")
            log(f"publishing RSS by mapping, {who}: {format_mapping(mapping[who])}")
    finally:
        broker.close()


# ---------------------------------------------------------------------------------------------------------------
# 2. Idle cost (tb-sim): five sensors once a second

SDK_IDLE = r"""
import logging, sys, time
logging.disable(logging.CRITICAL)
from tb_device_mqtt import TBDeviceMqttClient
port, token, sysroot, gpio = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def text(path):
    with open(path) as f: return f.read()
def w1():
    lines = text(f"{sysroot}/sys/bus/w1/devices/28-00000a1b2c3d/w1_slave").splitlines()
    if not lines[0].strip().endswith("YES"): return None
    return int(lines[1].split("t=")[1]) / 1000
client = TBDeviceMqttClient("127.0.0.1", port=port, username=token)
client.connect()
next_round = time.monotonic()
while True:
    values = {
        "door_closed": text(f"{gpio}/GPIO17").strip() == "1",
        "temperature": w1(),
        "cpu_temperature": int(text(f"{sysroot}/sys/class/thermal/thermal_zone0/temp")) / 1000,
        "air_temperature": int(text(f"{sysroot}/sys/bus/iio/devices/iio:device0/in_temp_input")) * 0.001,
        "humidity": int(text(f"{sysroot}/sys/bus/iio/devices/iio:device0/in_humidityrelative_input")) * 0.001,
    }
    client.send_telemetry({"ts": int(time.time() * 1000), "values": values}, quality_of_service=1)
    next_round += 1
    time.sleep(max(0, next_round - time.monotonic()))
"""


def provision_agent(args, cfg):
    done = subprocess.run([args.agent, "provision", "--config", cfg, "--log-level", "error"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"tb-agent provision failed: {done.stderr.decode()}")


def telemetry_count(sim, device):
    return sum(1 for e in sim.read_events() if e.get("event") == "telemetry" and e.get("device") == device)


def idle(args, work, results):
    window = 15 if args.quick else 60
    sim = TBSim(args.bin, os.path.join(work, "sim"), devices=[("bench-sdk-idle", "bench-sdk-idle-token")])
    sdk_script = os.path.join(work, "sdk_idle.py")
    open(sdk_script, "w").write(SDK_IDLE)
    try:
        for r in range(args.rounds):
            board = Board(args.root, os.path.join(work, f"idle-{r}"))
            name = f"bench-idle-{r}"
            cfg = agent_config(os.path.join(board.dir, "config.toml"), sim.port, board.state, name, board.sysroot,
                               board.gpio)
            provision_agent(args, cfg)
            agent = subprocess.Popen([args.agent, "run", "--config", cfg, "--log-level", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(board.dir, "agent.log"), "w"))
            sdk = subprocess.Popen([args.sdk_python, sdk_script, str(sim.port), "bench-sdk-idle-token", board.sysroot,
                                    board.gpio], stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(board.dir, "sdk.log"), "w"))
            try:
                wait_for(lambda: telemetry_count(sim, name) >= 2 and telemetry_count(sim, "bench-sdk-idle") >= 2,
                         60, "both idle clients to publish")
                time.sleep(3)  # past start-up
                before = {p.pid: proc_cpu_seconds(p.pid) for p in (agent, sdk)}
                sent_before = {d: telemetry_count(sim, d) for d in (name, "bench-sdk-idle")}
                peak = {agent.pid: 0, sdk.pid: 0}
                start = time.time()
                while time.time() - start < window:
                    for p in (agent, sdk):
                        if p.poll() is not None:
                            raise RuntimeError(f"an idle client exited ({p.args[0]})")
                        peak[p.pid] = max(peak[p.pid], proc_rss_kib(p.pid))
                    time.sleep(0.5)
                elapsed = time.time() - start
                for who, p, device in (("tb-agent", agent, name), ("sdk", sdk, "bench-sdk-idle")):
                    row = {"cpu": (proc_cpu_seconds(p.pid) - before[p.pid]) / elapsed * 100,
                           "rss": peak[p.pid] / 1024, "hwm": proc_rss_kib(p.pid, "VmHWM") / 1024,
                           "anon": proc_rss_kib(p.pid, "RssAnon") / 1024,
                           "messages": telemetry_count(sim, device) - sent_before[device],
                           "mapping": rss_by_mapping(p.pid)}  # after the window: CPU is read first
                    results.setdefault("idle", {}).setdefault(who, []).append(row)
                    log(f"idle round {r + 1} {who}: {row['cpu']:.3f} % CPU, RSS {row['rss']:.1f} MB "
                        f"(peak {row['hwm']:.1f} MB, anonymous {row['anon']:.1f} MB), {row['messages']} messages in "
                        f"{elapsed:.0f} s")
                    log(f"idle RSS by mapping, {who}: {format_mapping(row['mapping'])}")
            finally:
                stop(agent)
                stop(sdk)
    finally:
        sim.close()


# ---------------------------------------------------------------------------------------------------------------
# 3. Provisioning latency (tb-sim)

SDK_PROVISION = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
from tb_device_mqtt import TBDeviceMqttClient
port, key, secret, runs, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
times = []
for i in range(runs):
    start = time.perf_counter()
    credentials = TBDeviceMqttClient.provision("127.0.0.1", key, secret, port=port, device_name=f"{prefix}-{i}")
    times.append(time.perf_counter() - start)
    if not credentials: sys.exit(f"run {i}: no credentials")
print(json.dumps(times))
"""


def provisioning(args, work, results):
    runs = args.provision_runs
    sim = TBSim(args.bin, os.path.join(work, "sim"))
    try:
        board = Board(args.root, os.path.join(work, "board"))
        walls = []
        for i in range(runs):
            state = os.path.join(work, f"state-{i}")
            cfg = agent_config(os.path.join(work, f"config-{i}.toml"), sim.port, state, f"bench-prov-{i}",
                               board.sysroot, board.gpio, sensors="none")
            start = time.perf_counter()
            provision_agent(args, cfg)
            walls.append((time.perf_counter() - start) * 1000)
            shutil.rmtree(state, ignore_errors=True)
        # The protocol part, from tb-sim's event log: CONNECT received → response sent, per provision session.
        connects, protocol = {}, []
        for e in sim.read_events():
            if e.get("event") == "connect" and e.get("kind") == "provision":
                connects[e.get("session")] = e["ts"]
            elif e.get("event") == "provision_response" and e.get("session") in connects:
                protocol.append(e["ts"] - connects[e["session"]])
        results["provision"] = {"tb-agent": {"wall": walls, "protocol": protocol}}
        log(f"provisioning tb-agent: median {median(walls):.1f} ms command, {median(protocol)} ms protocol")

        script = os.path.join(work, "sdk_provision.py")
        open(script, "w").write(SDK_PROVISION)
        before = len(sim.read_events())
        done = subprocess.run([args.sdk_python, script, str(sim.port), KEY, SECRET, str(runs), "bench-sdk-prov"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise RuntimeError(f"SDK provisioning failed: {done.stderr.decode()[-2000:]}")
        sdk = [t * 1000 for t in json.loads(done.stdout)]
        connects, protocol = {}, []
        for e in sim.read_events()[before:]:
            if e.get("event") == "connect" and e.get("kind") == "provision":
                connects[e.get("session")] = e["ts"]
            elif e.get("event") == "provision_response" and e.get("session") in connects:
                protocol.append(e["ts"] - connects[e["session"]])
        results["provision"]["sdk"] = {"wall": sdk, "protocol": protocol}
        log(f"provisioning SDK: median {median(sdk):.1f} ms call, {median(protocol)} ms protocol")
    finally:
        sim.close()


# ---------------------------------------------------------------------------------------------------------------
# 4. Cold start to the first acknowledged telemetry

def cold_start(args, work, results):
    sim = TBSim(args.bin, os.path.join(work, "sim"))
    times = []
    try:
        board = Board(args.root, os.path.join(work, "board"))
        name = "bench-cold"
        cfg = agent_config(os.path.join(work, "config.toml"), sim.port, board.state, name, board.sysroot, board.gpio,
                           interval="10s")
        provision_agent(args, cfg)
        for r in range(args.cold_runs):
            shutil.rmtree(os.path.join(board.state, "spool"), ignore_errors=True)
            seen = len(sim.read_events())
            start_ms = time.time() * 1000
            agent = subprocess.Popen([args.agent, "run", "--config", cfg, "--log-level", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                def first():
                    for e in sim.read_events()[seen:]:
                        if e.get("event") == "telemetry" and e.get("device") == name:
                            return e["ts"]
                    return None
                ts = wait_for(first, 30, "the first telemetry", interval=0.01)
                times.append(ts - start_ms)
            finally:
                stop(agent)
            time.sleep(0.2)
        results["cold"] = times
        log(f"cold start: median {median(times):.0f} ms over {len(times)} runs")
    finally:
        sim.close()


# ---------------------------------------------------------------------------------------------------------------
# 5. GPIO edge (simulated backend) → PUBLISH on the wire

SO_TIMESTAMPNS = 35
ETH_P_IP = 0x0800


class Sniffer(threading.Thread):
    """Loopback packets to `port` whose TCP payload contains `needle`, with the kernel's receive timestamp."""

    def __init__(self, port, needle):
        super().__init__(daemon=True)
        self.port, self.needle = port, needle
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.seen = []  # (timestamp ns, payload)
        self.lock = threading.Lock()
        self.running = True

    def run(self):
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            ts = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec * 1_000_000_000 + nsec
            if ts is None or len(data) < 40 or data[9] != 6:
                continue
            ihl = (data[0] & 0x0F) * 4
            dport = struct.unpack("!H", data[ihl + 2:ihl + 4])[0]
            if dport != self.port:
                continue
            doff = (data[ihl + 12] >> 4) * 4
            payload = data[ihl + doff:]
            if self.needle in payload:
                with self.lock:
                    self.seen.append((ts, bytes(payload)))

    def first_after(self, t0, marker):
        with self.lock:
            hits = [ts for ts, payload in self.seen if ts >= t0 and marker in payload]
        return min(hits) if hits else None

    def close(self):
        self.running = False
        self.join(2)
        self.sock.close()


def write_level(path, level):
    """Writes the line's file in place (same length, no truncate) and returns the time just before the write."""
    fd = os.open(path, os.O_WRONLY)
    try:
        t0 = time.time_ns()
        os.pwrite(fd, b"1\n" if level else b"0\n", 0)
    finally:
        os.close(fd)
    return t0


def inotify_latency(work, samples):
    """write → inotify event, as seen by a Python reader: what the simulated backend's wake-up costs at least."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = libc.inotify_init1(0o4000)  # IN_NONBLOCK
    directory = os.path.join(work, "inotify")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "GPIO17")
    open(path, "w").write("1\n")
    libc.inotify_add_watch(fd, directory.encode(), 0x2 | 0x8 | 0x80 | 0x100)
    out = []
    for i in range(samples):
        t0 = write_level(path, i % 2)
        select.select([fd], [], [], 1)
        t1 = time.time_ns()
        try:
            os.read(fd, 4096)
        except BlockingIOError:
            continue
        out.append((t1 - t0) / 1e6)
        time.sleep(0.005)
    os.close(fd)
    return out


def edge(args, work, results):
    sim = TBSim(args.bin, os.path.join(work, "sim"))
    try:
        board = Board(args.root, os.path.join(work, "board"))
        name = "bench-edge"
        cfg = agent_config(os.path.join(work, "config.toml"), sim.port, board.state, name, board.sysroot, board.gpio,
                           sensors="none", interval="3600s", debounce="0ms")
        provision_agent(args, cfg)
        line = os.path.join(board.gpio, "GPIO17")
        sniffer = Sniffer(sim.port, b"door_closed")
        sniffer.start()
        agent = subprocess.Popen([args.agent, "run", "--config", cfg, "--log-level", "warning"],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "agent.log"), "w"))
        latencies, missed = [], 0
        try:
            wait_for(lambda: telemetry_count(sim, name) >= 1, 30, "the edge agent online")
            time.sleep(1)
            level = 1
            for i in range(args.edges):
                level = 1 - level
                marker = b'"door_closed":true' if level else b'"door_closed":false'
                t0 = write_level(line, level)
                deadline = time.time() + 2
                ts = None
                while ts is None and time.time() < deadline:
                    time.sleep(0.002)
                    ts = sniffer.first_after(t0, marker)
                if ts is None:
                    missed += 1
                else:
                    latencies.append((ts - t0) / 1e6)
                time.sleep(0.02 + random.random() * 0.03)
        finally:
            stop(agent)
            sniffer.close()
        results["edge"] = {"latencies": latencies, "missed": missed,
                           "inotify": inotify_latency(work, args.edges)}
        log(f"edge → PUBLISH: p50 {percentile(latencies, 50):.2f} ms, p99 {percentile(latencies, 99):.2f} ms, "
            f"{missed} missed")
    finally:
        sim.close()


# ---------------------------------------------------------------------------------------------------------------
# 6. Binary size

def stripped_size(binary, work, strip_tool="strip"):
    stripped = os.path.join(work, os.path.basename(binary) + f".{len(os.listdir(work))}.stripped")
    subprocess.run([strip_tool, "-o", stripped, binary], check=True)
    size = os.path.getsize(stripped)
    os.unlink(stripped)
    return size


def binary_size(args, work, results):
    results["size"] = {"unstripped": os.path.getsize(args.agent), "stripped": stripped_size(args.agent, work)}
    log(f"binary: {results['size']['stripped'] / MB:.2f} MB stripped")
    # The aarch64 builds of scripts/cross-build.sh (.build-aarch64-TARGET/release/tb-agent), when there are any: not
    # built here (that needs root and a sid chroot), so the figure says when it was built.
    try:
        head = int(subprocess.run(["git", "-C", args.root, "log", "-1", "--format=%ct", "--", "Sources", "Package.swift"], capture_output=True,
                                  text=True, check=True).stdout.strip())
    except (subprocess.CalledProcessError, ValueError, OSError):
        head = None
    for path in args.aarch64:
        built = os.path.getmtime(path)
        row = {"path": path, "unstripped": os.path.getsize(path),
               "stripped": stripped_size(path, work, "aarch64-linux-gnu-strip"),
               "built": time.strftime("%Y-%m-%d %H:%M", time.localtime(built)),
               "stale": head is not None and built < head}
        results.setdefault("size_aarch64", []).append(row)
        log(f"aarch64 binary {path}: {row['stripped'] / MB:.2f} MB stripped, built {row['built']}"
            + (" (before the last commit to Sources or Package.swift: may be stale)" if row["stale"] else ""))


# ---------------------------------------------------------------------------------------------------------------
# 7. Fleet: N agents, a 30 s outage

def fleet(args, work, results):
    n = args.agents
    outage = 30
    cap = 300  # the agent's default backoff cap
    sim = TBSim(args.bin, os.path.join(work, "sim"))
    shared = os.path.join(work, "sysroot")
    shutil.copytree(os.path.join(args.root, "board/simulated/sysroot"), shared, symlinks=True)
    agents, names = [], []
    try:
        configs = []
        for i in range(n):
            board = Board(args.root, os.path.join(work, f"agent-{i:03d}"), shared_sysroot=shared)
            name = f"bench-fleet-{i:03d}"
            cfg = agent_config(os.path.join(board.dir, "config.toml"), sim.port, board.state, name, board.sysroot,
                               board.gpio, interval="5s")
            provision_agent(args, cfg)  # once, sequentially: no provisioning storm
            configs.append((board, cfg))
            names.append(name)
        log(f"fleet: {n} agents provisioned")
        provisioned = sum(1 for e in sim.read_events() if e.get("event") == "provision_request")
        for board, cfg in configs:
            agents.append(subprocess.Popen([args.agent, "run", "--config", cfg, "--log-level", "warning"],
                                           stdout=subprocess.DEVNULL,
                                           stderr=open(os.path.join(board.dir, "agent.log"), "w")))

        def all_publishing(since_ms):
            seen = {e.get("device") for e in sim.read_events()
                    if e.get("event") == "telemetry" and e["ts"] >= since_ms}
            return all(name in seen for name in names)
        wait_for(lambda: all_publishing(0), 120, "every agent to publish", interval=1)
        time.sleep(5)
        rss = [proc_rss_kib(p.pid) / 1024 for p in agents if p.poll() is None]
        anon = [proc_rss_kib(p.pid, "RssAnon") / 1024 for p in agents if p.poll() is None]
        pss = sum(proc_pss_kib(p.pid) for p in agents if p.poll() is None) / 1024
        log(f"fleet: all {n} online; RSS median {median(rss):.1f} MB (anonymous {median(anon):.1f} MB), PSS total "
            f"{pss:.0f} MB; outage {outage} s")
        sim.request("POST", "/outage", {"seconds": outage})
        start_ms = None
        for e in sim.read_events():
            if e.get("event") == "outage_started":
                start_ms = e["ts"]
        end_ms = start_ms + outage * 1000
        wait_for(lambda: all_publishing(end_ms), outage + cap + 30, "every agent to publish after the outage", interval=1)
        events = sim.read_events()
        alive = sum(1 for p in agents if p.poll() is None)
    finally:
        for p in agents:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in agents:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        sim.close()

    reconnect = {}  # device → seconds after the outage ended
    back = {}  # device → first telemetry after the outage ended
    attempts = {}  # second after the outage started → TCP connections tb-sim accepted
    connects_per_second = {}
    for e in events:
        if e["ts"] < start_ms:
            continue
        sec = int((e["ts"] - start_ms) // 1000)
        kind = e.get("event")
        if kind == "connect" or (kind == "disconnect" and "outage" in (e.get("reason") or "")
                                 and e.get("device") is None):
            attempts[sec] = attempts.get(sec, 0) + 1
        if kind == "connect" and e.get("kind") == "device" and e.get("returnCode") == 0 and e["ts"] >= end_ms:
            connects_per_second[sec] = connects_per_second.get(sec, 0) + 1
            reconnect.setdefault(e.get("device"), (e["ts"] - end_ms) / 1000)
        if kind == "telemetry" and e["ts"] >= end_ms:
            back.setdefault(e.get("device"), (e["ts"] - end_ms) / 1000)
    provisions_after = sum(1 for e in events if e.get("event") == "provision_request") - provisioned
    bins = {}
    for t in reconnect.values():
        b = int(t // 5) * 5
        bins[b] = bins.get(b, 0) + 1
    results["fleet"] = {
        "agents": n, "alive": alive, "outage": outage, "cap": cap, "reconnect": reconnect, "bins": bins,
        "peak_reconnects": max(connects_per_second.values() or [0]),
        "peak_attempts": max(attempts.values() or [0]),
        "all_back": max(back.values()) if len(back) == n else None, "back": len(back),
        "provisions_after": provisions_after, "rss_median": median(rss), "anon_median": median(anon), "pss_total": pss,
    }
    log(f"fleet: all back after {results['fleet']['all_back']} s; peak {results['fleet']['peak_reconnects']} "
        f"reconnects/s; {provisions_after} provisioned again")


# ---------------------------------------------------------------------------------------------------------------
# 8. A backlog drained under the server's rate limits (issue 12)

# (label, telemetry data-point limit, readings, readings with --quick). Every reading is one data point; the backlog
# is handed to the agent at once (`tb-agent bench-publish`), as a reconnect after an outage finds it in the spool.
# ThingsBoard's usual 10:1,300:60 allows 5 a second on average: a day's backlog (432,000 readings, five sensors a
# second) would take 30 hours, so that set drains a shorter backlog; a generous set drains the whole day.
REPLAY_SETS = [
    ("10:1,300:60", "10:1,300:60", 1200, 300),
    ("generous", "2000:1,60000:60", 432_000, 43_200),
]


SDK_REPLAY = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
from tb_device_mqtt import TBDeviceMqttClient
port, token, n, timeout = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
client = TBDeviceMqttClient("127.0.0.1", port=port, username=token)
client.connect()
deadline = time.time() + 30
while not (client.is_connected() and client.rate_limits_received):
    if time.time() > deadline: sys.exit("not connected, or no getSessionLimits answer, within 30 s")
    time.sleep(0.01)
ts = int(time.time() * 1000) - n
start = time.perf_counter()
# The whole backlog in one call: the SDK splits it by its smallest data-point window and paces itself.
info = client.send_telemetry([{"ts": ts + i, "values": {"bench": i}} for i in range(n)], quality_of_service=1)
parts = info.message_info if isinstance(info.message_info, list) else [info.message_info]
deadline = time.time() + timeout
published = 0
for part in parts:
    part.wait_for_publish(timeout=max(0.1, deadline - time.time()))
    published += part.is_published()
elapsed = time.perf_counter() - start
print(json.dumps({"readings": n, "seconds": elapsed, "messages": len(parts), "published": published}))
client.disconnect()
client.stop()
"""


def window_rate(limit):
    """The average rate a limit string allows: its slowest window (capacity ÷ seconds)."""
    return min(int(c) / int(s) for c, s in (pair.split(":") for pair in limit.split(",")))


def replay(args, work, results):
    rows = []
    for label, limit, full, quick in REPLAY_SETS:
        n = quick if args.quick else full
        token = f"bench-replay-{label.replace(':', '-').replace(',', '-')}"
        profile = (f'[profiles.rate_limits]\nmessages = "20:1,600:60"\ntelemetry_messages = "{limit}"\n'
                   f'telemetry_data_points = "{limit}"\n')
        sim = TBSim(args.bin, os.path.join(work, f"sim-{len(rows)}"), devices=[("bench-replay", token)],
                    profile_extra=profile)
        try:
            state = os.path.join(work, f"agent-{len(rows)}")
            os.makedirs(state, exist_ok=True)
            cfg = os.path.join(state, "config.toml")
            with open(cfg, "w") as f:
                f.write(f'[server]\nhost = "127.0.0.1"\nport = {sim.port}\n\n[provisioning]\n'
                        f'device_key = "{KEY}"\ndevice_secret = "{SECRET}"\n\n[device]\nstate_dir = "{state}/state"\n')
            rate = window_rate(limit)
            timeout = int(n / (0.7 * rate)) + 120
            argv = [args.agent, "bench-publish", "--config", cfg, "--readings", str(n), "--token", token,
                    "--timeout", str(timeout), "--log-level", "error"]
            log(f"replay {label}: {n:,} readings under telemetry_data_points {limit} (at most {timeout} s)")
            done, wall, cpu, rss = timed(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if done.returncode != 0:
                raise RuntimeError(f"tb-agent bench-publish failed: {done.stderr.decode()[-2000:]}")
            out = json.loads(done.stdout.decode().strip().splitlines()[-1])
            drops = sim.request("GET", "/devices/bench-replay")["droppedForRateLimits"]["total"]
        finally:
            sim.close()
        row = {"label": label, "limit": limit, "readings": n, "seconds": out["seconds"],
               "share": n / out["seconds"] / rate, "rate_limited": out.get("rateLimited"), "drops": drops,
               "reconnects": out.get("reconnects"), "cpu": cpu, "rss": rss / 1024}
        rows.append(row)
        log(f"replay {label}: {n:,} readings in {row['seconds']:.1f} s, {100 * row['share']:.0f} % of the data-point "
            f"limit, {drops} dropped by tb-sim, {row['rate_limited']} rate-limit disconnects")
        rows.append(replay_sdk(args, work, label, limit, n, profile, len(rows)))
    results["replay"] = rows


def replay_sdk(args, work, label, limit, n, profile, index):
    """The same backlog through ThingsBoard's Python SDK, which paces itself from getSessionLimits."""
    token = f"bench-replay-sdk-{index}"
    script = os.path.join(work, "sdk_replay.py")
    open(script, "w").write(SDK_REPLAY)
    sim = TBSim(args.bin, os.path.join(work, f"sim-sdk-{index}"), devices=[("bench-replay-sdk", token)],
                profile_extra=profile)
    try:
        rate = window_rate(limit)
        timeout = int(n / (0.5 * rate)) + 120
        log(f"replay {label}, Python SDK: {n:,} readings (at most {timeout} s)")
        done, wall, cpu, rss = timed([args.sdk_python, script, str(sim.port), token, str(n), str(timeout)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 60)
        if done.returncode != 0:
            raise RuntimeError(f"the SDK's replay failed: {done.stderr.decode()[-2000:]}")
        out = json.loads(done.stdout.decode().strip().splitlines()[-1])
        drops = sim.request("GET", "/devices/bench-replay-sdk")["droppedForRateLimits"]["total"]
        events = sim.read_events()
    finally:
        sim.close()
    closed = sum(1 for e in events if e.get("event") == "rate_limited")
    row = {"label": f"{label}, Python SDK", "limit": limit, "readings": n, "seconds": out["seconds"],
           "share": n / out["seconds"] / rate, "rate_limited": closed, "drops": drops,
           "unacknowledged": out["messages"] - out["published"], "cpu": cpu, "rss": rss / 1024, "sdk": True}
    log(f"replay {label}, Python SDK: {n:,} readings in {row['seconds']:.1f} s, {100 * row['share']:.0f} % of the "
        f"data-point limit, {drops} dropped by tb-sim, {closed} rate-limit disconnects, "
        f"{row['unacknowledged']} messages unacknowledged")
    return row


# ---------------------------------------------------------------------------------------------------------------
# The report

def fmt(value, digits=1, unit=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.{digits}f}×"


def report(args, results, started, load_before, load_after):
    out = []
    t = results.get("throughput", {})

    def med(who, key, section=t):
        return median([row[key] for row in section.get(who, [])])
    targets = []

    out.append(f"Medians over {args.rounds} rounds; {args.readings:,} readings at QoS 1 for throughput. "
               "Ratios are tb-agent ÷ peer (above 1 is better for rates, below 1 for costs).\n")
    out.append("| measure | tb-agent | ThingsBoard Python SDK | mosquitto_pub | vs SDK | vs mosquitto_pub |")
    out.append("|---|---:|---:|---:|---:|---:|")
    if t:
        a, a1, s, m = (med(w, "rate") for w in ("tb-agent", "tb-agent-1", "sdk", "mosquitto_pub"))
        out.append(f"| throughput, readings/s (agent batches its backlog, ≤ 64 per PUBLISH) | {fmt(a, 0)} | {fmt(s, 0)} | "
                   f"{fmt(m, 0)} | {ratio(a, s)} | {ratio(a, m)} |")
        out.append(f"| throughput, messages/s (one reading per PUBLISH) | {fmt(a1, 0)} | {fmt(s, 0)} | {fmt(m, 0)} | "
                   f"{ratio(a1, s)} | {ratio(a1, m)} |")
        c, c1, cs, cm = (med(w, "cpu10k") for w in ("tb-agent", "tb-agent-1", "sdk", "mosquitto_pub"))
        out.append(f"| CPU-seconds per 10 000 readings (batched / one per PUBLISH; ratios for the latter) | {fmt(c, 3)} / {fmt(c1, 3)} | "
                   f"{fmt(cs, 3)} | {fmt(cm, 3)} | {ratio(c1, cs)} | {ratio(c1, cm)} |")
        r, r1, rs, rm = (med(w, "rss") for w in ("tb-agent", "tb-agent-1", "sdk", "mosquitto_pub"))
        out.append(f"| peak RSS while publishing, MB (batched / one per PUBLISH; ratios for the larger) | {fmt(r)} / {fmt(r1)} | {fmt(rs)} | "
                   f"{fmt(rm)} | {ratio(max(r, r1), rs)} | {ratio(max(r, r1), rm)} |")
        targets.append(("one reading per PUBLISH: rate ≥ 1.0 × mosquitto_pub's", a1 >= 1.0 * m,
                        f"{ratio(a1, m)} ({fmt(a1, 0)} vs {fmt(m, 0)} messages/s)"))
        targets.append(("one reading per PUBLISH: CPU per message ≤ 1.3 × mosquitto_pub's", c1 <= 1.3 * cm,
                        f"{ratio(c1, cm)} ({fmt(c1, 3)} vs {fmt(cm, 3)} CPU-s per 10 000)"))
        targets.append(("batched backlog: rate ≥ 2.5 × mosquitto_pub's", a >= 2.5 * m,
                        f"{ratio(a, m)} ({fmt(a, 0)} vs {fmt(m, 0)} readings/s)"))
        targets.append(("peak RSS while publishing ≤ 10 MB (batched and one per PUBLISH)", max(r, r1) <= 10,
                        f"{fmt(max(r, r1))} MB ({ratio(max(r, r1), rm)} mosquitto_pub's {fmt(rm)} MB)"))
    i = results.get("idle", {})
    if i:
        window = 15 if args.quick else 60
        ac, sc = med("tb-agent", "cpu", i), med("sdk", "cpu", i)
        ar, sr = med("tb-agent", "rss", i), med("sdk", "rss", i)
        ah, sh = med("tb-agent", "hwm", i), med("sdk", "hwm", i)
        out.append(f"| idle: CPU, % of one core (5 sensors at 1 s, {window} s window) | {fmt(ac, 3)} | {fmt(sc, 3)} | — | "
                   f"{ratio(ac, sc)} | — |")
        out.append(f"| idle: RSS, MB (highest sample in the window; VmHWM, start-up included) | {fmt(ar)} ({fmt(ah)}) | "
                   f"{fmt(sr)} ({fmt(sh)}) | — | {ratio(ar, sr)} | — |")
        aa, sa = med("tb-agent", "anon", i), med("sdk", "anon", i)
        out.append(f"| idle: … of which anonymous (heap, stacks), MB | {fmt(aa)} | {fmt(sa)} | — | {ratio(aa, sa)} | — |")
        targets.append(("idle CPU ≤ 0.3 % of one core (five sensors a second)", ac <= 0.3, f"{fmt(ac, 3)} %"))
        targets.append(("idle RSS ≤ 9 MB (highest sample in the window)", ar <= 9, f"{fmt(ar)} MB"))
    p = results.get("provision")
    if p:
        aw, ap = median(p["tb-agent"]["wall"]), median(p["tb-agent"]["protocol"])
        sw, sp = median(p.get("sdk", {}).get("wall", [])), median(p.get("sdk", {}).get("protocol", []))
        out.append(f"| provisioning, ms ({args.provision_runs} runs; whole command / SDK call) | {fmt(aw)} | {fmt(sw)} | — | "
                   f"{ratio(aw, sw, 3)} | — |")
        def ms(v):
            return "< 1" if v is not None and v < 1 else fmt(v, 0)
        out.append(f"| provisioning, ms, protocol part (tb-sim's log, 1 ms steps: CONNECT → response) | {ms(ap)} | "
                   f"{ms(sp)} | — | — | — |")
        out.append(f"| provisioning p95, ms (command / SDK call) | {fmt(percentile(p['tb-agent']['wall'], 95))} | "
                   f"{fmt(percentile(p.get('sdk', {}).get('wall', []), 95))} | — | — | — |")
    if "cold" in results:
        out.append(f"| cold start → first acknowledged telemetry, ms ({len(results['cold'])} runs) | "
                   f"{fmt(median(results['cold']), 0)} | — | — | — | — |")
    e = results.get("edge")
    if e:
        p50, p99 = percentile(e["latencies"], 50), percentile(e["latencies"], 99)
        out.append(f"| GPIO edge → PUBLISH on the wire, ms p50 / p99 ({len(e['latencies'])} edges, {e['missed']} missed) | "
                   f"{fmt(p50, 2)} / {fmt(p99, 2)} | — | — | — | — |")
        out.append(f"| … of which write → inotify event (Python reader), ms p50 / p99 | "
                   f"{fmt(percentile(e['inotify'], 50), 3)} / {fmt(percentile(e['inotify'], 99), 3)} | — | — | — | — |")
    sz = results.get("size")
    if sz:
        out.append(f"| binary, release, --static-swift-stdlib, stripped (unstripped), MB, x86_64 | {sz['stripped'] / MB:.2f} "
                   f"({sz['unstripped'] / MB:.2f}) | — | — | — | — |")
        targets.append(("static release binary, stripped, x86_64 ≤ 10 MB", sz["stripped"] <= 10 * MB,
                        f"{sz['stripped'] / MB:.2f} MB"))
        for row in results.get("size_aarch64", []):
            where = row["path"]
            if where.startswith(args.root.rstrip("/") + "/"):
                where = os.path.relpath(where, args.root)
            note = f"{where}, built {row['built']}" + (", before the last commit to the sources: may be stale" if row["stale"] else "")
            out.append(f"| binary, aarch64 ({note}), stripped (unstripped), MB | {row['stripped'] / MB:.2f} "
                       f"({row['unstripped'] / MB:.2f}) | — | — | — | — |")
            targets.append((f"static release binary, stripped, aarch64 ≤ 12 MB ({where})", row["stripped"] <= 12 * MB,
                            f"{row['stripped'] / MB:.2f} MB"))
        if not results.get("size_aarch64"):
            targets.append(("static release binary, stripped, aarch64 ≤ 12 MB", None,
                            "no aarch64 build here (scripts/cross-build.sh makes one)"))
    f = results.get("fleet")
    if f:
        n = f["agents"]
        out.append("")
        out.append(f"Fleet: {n} `tb-agent run` processes (RSS median {fmt(f['rss_median'])} MB, of which anonymous "
                   f"{fmt(f['anon_median'])} MB; all together {fmt(f['pss_total'], 0)} MB PSS, the binary's pages being "
                   f"shared) against one tb-sim, then a {f['outage']} s outage:\n")
        out.append("| fleet measure | value |")
        out.append("|---|---:|")
        hist = ", ".join(f"{b}–{b + 5} s: {c}" for b, c in sorted(f["bins"].items()))
        out.append(f"| reconnects after the outage ended (5 s bins) | {hist} |")
        out.append(f"| peak successful reconnects in one second | {f['peak_reconnects']} (limit {n // 10}) |")
        out.append(f"| tb-sim's peak connections per second (incl. refused during the outage) | {f['peak_attempts']} |")
        out.append(f"| all {n} publishing again, s after the outage ended (backoff cap {f['cap']} s) | "
                   f"{fmt(f['all_back'])} ({f['back']}/{n} back, {f['alive']} running) |")
        out.append(f"| provisioned again | {f['provisions_after']} |")
    rp = results.get("replay")
    if rp:
        out.append("")
        out.append("A backlog drained through tb-sim enforcing ThingsBoard's per-device limits (`telemetry_messages` and "
                   "`telemetry_data_points` as given, messages 20:1,600:60), one data point per reading:\n")
        out.append("| limits | readings | drain time, s | share of the data-point limit | dropped by tb-sim | rate-limit disconnects |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for row in rp:
            out.append(f"| {row['label']} ({row['limit']}) | {row['readings']:,} | {fmt(row['seconds'])} | "
                       f"{fmt(100 * row['share'], 0)} % | {row['drops']} | {row['rate_limited']} |")
            if row.get("sdk"):
                continue  # the SDK's figures are for comparison, not a goal of tb-agent's
            targets.append((f"replay under {row['limit']}: ≥ 75 % of the data-point limit, no rate-limit disconnect",
                            row["share"] >= 0.75 and row["drops"] == 0 and row["rate_limited"] == 0,
                            f"{fmt(100 * row['share'], 0)} %, {row['drops']} dropped, {row['rate_limited']} disconnects"))
    out.append("")
    out.append("| target | result | measured |")
    out.append("|---|---|---|")
    for what, ok, measured in targets:
        out.append(f"| {what} | {'—' if ok is None else 'PASS' if ok else 'MISS'} | {measured} |")
    mappings = []
    if i.get("tb-agent"):
        # The round whose RSS is the median one.
        rows = sorted(i["tb-agent"], key=lambda row: row["rss"])
        mappings.append(f"idle RSS by mapping, tb-agent: {format_mapping(rows[len(rows) // 2].get('mapping'))}")
    for who, label in (("tb-agent", "tb-agent batched"), ("tb-agent-1", "tb-agent one per PUBLISH"),
                       ("mosquitto_pub", "mosquitto_pub")):
        if who in results.get("throughput_mapping", {}):
            mappings.append(f"publishing RSS by mapping (at the largest sample), {label}: "
                            f"{format_mapping(results['throughput_mapping'][who])}")
    if mappings:
        out.append("")
        out.extend(f"- {line}" for line in mappings)
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    out.append("")
    out.append(f"Machine: {os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}; "
               f"{time.strftime('%Y-%m-%d', time.gmtime(started))}; load average {load_before} before, "
               f"{load_after} after (the machine was shared).")
    return "\n".join(out)


SECTIONS = {"throughput": throughput, "idle": idle, "provision": provisioning, "cold": cold_start, "edge": edge,
            "size": binary_size, "fleet": fleet, "replay": replay}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin", required=True, help="folder with the release tb-agent and tb-sim")
    parser.add_argument("--root", required=True)
    parser.add_argument("--sdk-python", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--agents", type=int)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--aarch64", action="append", default=[],
                        help="an aarch64 release tb-agent whose stripped size to report (repeatable)")
    args = parser.parse_args()
    args.agent = os.path.join(args.bin, "tb-agent")
    args.readings = 20000
    args.agents = args.agents or (50 if args.quick else 200)
    args.provision_runs = 50
    args.cold_runs = 10
    args.edges = 200 if args.quick else 500
    started = time.time()
    load_before = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    results = {}
    base = tempfile.mkdtemp(prefix="tb-agent-bench.")
    try:
        for name in args.only.split(","):
            work = os.path.join(base, name)
            os.makedirs(work, exist_ok=True)
            log(f"--- {name}")
            SECTIONS[name](args, work, results)
    finally:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        shutil.rmtree(base, ignore_errors=True)
    load_after = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(report(args, results, started, load_before, load_after))


if __name__ == "__main__":
    main()

"""Power cuts on a real kernel (scripts/powercut.sh drives this; issue 14).

  powercut.py modules MODULES_DIR NAME...   the .ko files NAME needs, dependencies first (from each module's
                                            .modinfo `depends=`), as paths relative to MODULES_DIR
  powercut.py run --cuts N ...              the cuts themselves (arguments: see main())
  powercut.py logwrites --rounds N ...      the stronger form for the credential store: every write the disk
                                            gets while the agent provisions N times is recorded with the kernel's
                                            dm-log-writes target, then replayed here to every flush point, where
                                            the store must hold the old or the new credentials

A cut: tb-sim runs on the host's loopback, a qemu VM (Debian's kernel, scripts/lib/powercut-init.sh as /init)
boots on an ext4 disk image holding the agent's state directory, the agent provisions or publishes, and qemu is
killed with SIGKILL at a random moment of one of these phases:
  provision  the device is deleted on tb-sim and `tb-agent provision --force` runs with a new token: cut at a
             random moment of it (or of the `run` after it);
  outage     the agent is online, then tb-sim has an outage: cut while it spools readings;
  replay     the agent is online, tb-sim has an outage of 1-3 s, then the agent reconnects: cut while it
             replays, acknowledges and trims the spool.
After each cut the image is checked with `e2fsck -f -p` and read with debugfs (no mount), and the next VM boots on
it. Checks (each failure is a violation, listed at the end):
  - the credentials load (the host's reading and `tb-agent status` in the next VM agree): the old or the new
    ones, never neither once there were some; after `provision` finished or the agent logged that new credentials
    were stored, the new ones;
  - every reading the spool held on disk after a cut is later delivered to tb-sim or still in the spool: none lost;
  - every reading older than the cut minus `sync_interval` (minus a margin for sampling) is on disk or delivered
    (the cut's moment in the guest's clock: the last `PC CLOCK` line it printed, so the check never blames the
    agent for the clock or for a guest qemu did not run);
  - in each MQTT session tb-sim saw, the readings' timestamps strictly increase (never out of order), and a
    reading delivered twice has the same value both times;
  - the agent comes online by itself after every cut (a CONNECT accepted by tb-sim), timed from the cut.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "Tests", "faults"))

from harness import Binaries, TBSim, Workspace, scan_records, sim_config, wait_until  # noqa: E402

KEY, SECRET = "PC-KEY", "pc-secret"
INTERVAL_MS = 200        # [telemetry] interval in the guest's config
COUNTER = "pulses"       # the guest's pulse counter sensor
SAMPLING_SLACK_MS = 1500  # between a sample's timestamp and its append to the spool, under TCG emulation


# MARK: kernel modules

def modinfo(path):
    with open(path, "rb") as f:
        data = f.read()
    fields = {}
    for match in re.finditer(rb"(?:^|\x00)(depends|name)=([^\x00]*)", data):
        fields.setdefault(match.group(1).decode(), match.group(2).decode())
    return fields


def module_order(directory, names):
    files = {}
    for base, _, entries in os.walk(directory):
        for entry in entries:
            if entry.endswith((".ko", ".ko.xz")):
                files[entry.split(".ko")[0].replace("-", "_")] = os.path.relpath(os.path.join(base, entry), directory)
    order = []

    def visit(name):
        name = name.replace("-", "_")
        if name in order:
            return
        if name not in files:
            raise SystemExit(f"powercut: module {name} is not in {directory} (built into the kernel? then drop it)")
        for dep in filter(None, modinfo(os.path.join(directory, files[name])).get("depends", "").split(",")):
            visit(dep)
        order.append(name)

    for name in names:
        visit(name)
    return [files[name] for name in order]


# MARK: the VM

class VM:
    """qemu on the disk image, its serial console read line by line with the host time each line arrived."""

    def __init__(self, args, params, log_path, disks=None):
        """The guest reaches the host's loopback at 10.0.2.2 (qemu's user network); the agent is configured for
        tb-sim there and nothing else. The serial line is the guest's stdin too (`answer`)."""
        cmdline = "console=ttyS0 quiet panic=-1 " + " ".join(f"pc.{k}={v}" for k, v in params.items())
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1", "-nographic",
                "-no-reboot", "-kernel", args.kernel, "-initrd", args.initrd, "-append", cmdline,
                "-netdev", "user,id=n0,ipv6=off",
                "-device", "virtio-net-pci,netdev=n0"]
        for disk in disks or [args.image]:
            argv += ["-drive", f"file={disk},format=raw,if=virtio"]
        self.lines = []  # (host ms, text)
        self.log = open(log_path, "a")
        self.log.write(f"=== {' '.join(argv)}\n")
        self.started = now_ms()
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.popen.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append((now_ms(), text))
            self.log.write(text + "\n")
            self.log.flush()

    def find(self, prefix, after=0):
        for t, text in self.lines[after:]:
            if text.startswith(prefix):
                return t, text
        return None

    def wait_line(self, prefix, timeout):
        found = wait_until(lambda: self.find(prefix) or self.popen.poll() is not None, timeout)
        failure = self.find("PC FAIL")
        if failure:
            raise SystemExit(f"powercut: the VM reported a failure: {failure[1]}")
        return self.find(prefix)

    def answer(self, text):
        """A line on the guest's serial console (its init reads it with `read`)."""
        self.popen.stdin.write(text.encode() + b"\n")
        self.popen.stdin.flush()

    def cut(self):
        """SIGKILL: the guest's page cache is gone, as in a power cut. Returns the host time of the kill."""
        at = now_ms()
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self.reader.join(5)
        self.log.write(f"=== SIGKILL at {at}\n")
        self.log.close()
        return at

    def guest_clock_reached(self):
        """The latest guest time (ms) the guest printed before the cut: it ran at least until then. (Not the cut's
        host time plus an offset: a guest that qemu did not run for a while, on a busy machine, did not get
        there; one such stall of 18 s made that bound fail once in 200 cuts.)"""
        times = [int(text.split()[2]) for _, text in self.lines if text.startswith("PC CLOCK ")]
        return max(times) if times else None

    def text(self):
        return "\n".join(text for _, text in self.lines)


def now_ms():
    return time.time_ns() // 1_000_000


# MARK: the disk, read without mounting it

def fsck(image):
    done = subprocess.run(["e2fsck", "-f", "-p", image], capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr).strip()


def dump_state(image, target):
    """Copies /state from the image to `target`/state (debugfs rdump); returns False when there is none yet."""
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    listing = subprocess.run(["debugfs", "-R", "ls -l /", image], capture_output=True, text=True).stdout
    if not re.search(r"\sstate\s*$", listing, re.M):
        return False
    done = subprocess.run(["debugfs", "-R", f"rdump /state {target}", image], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"powercut: debugfs rdump failed: {done.stderr}")
    return True


def credential_file(path):
    """(token or None when the file is absent, problem or None) of one generation of the credential store."""
    if not os.path.exists(path):
        return None, None
    try:
        with open(path, "rb") as f:
            document = json.loads(f.read())
        payload = json.dumps(document["payload"], separators=(",", ":"), ensure_ascii=False)
        if hashlib.sha256(payload.encode()).hexdigest() != document["sha256"]:
            return None, f"{os.path.basename(path)} fails its checksum"
        return document["payload"]["credentials"]["token"], None
    except (ValueError, KeyError, TypeError) as e:
        return None, f"{os.path.basename(path)} is unreadable: {e}"


def credentials_token(state):
    """(token of credentials.json or None, problem or None). The store's design: credentials.json is never
    damaged (the agent would fall back to the previous generation, but that is a failure of the crash-safe
    write), and the previous generation, when there is one, is intact too."""
    token, problem = credential_file(os.path.join(state, "credentials.json"))
    _, previous_problem = credential_file(os.path.join(state, "credentials.previous.json"))
    return token, problem or previous_problem


def counter_on_disk(state):
    """The pulse counter's saved total (state_dir/counters/pulses.count), or None."""
    try:
        with open(os.path.join(state, "counters", f"{COUNTER}.count")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def spool_readings(state, totals=None):
    """({ts: value} of every record in the spool's segments, {ts} of the unacknowledged ones, acked watermark);
    `totals` gets {ts: pulse total} of the records that carry one."""
    directory = os.path.join(state, "spool")
    everything, unacked, acked = {}, set(), 0
    if not os.path.isdir(directory):
        return everything, unacked, acked
    try:
        with open(os.path.join(directory, "state.json")) as f:
            acked = json.load(f)["acked"]
    except (OSError, ValueError, KeyError):
        acked = 0
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".seg"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        for _, _, sequence, payload in scan_records(data):
            for entry in json.loads(payload):
                if totals is not None and COUNTER in entry["values"]:
                    totals[entry["ts"]] = entry["values"][COUNTER]
                value = entry["values"].get("cpu_temperature")
                if value is None:
                    continue
                everything[entry["ts"]] = value
                if sequence > acked:
                    unacked.add(entry["ts"])
    return everything, unacked, acked


# MARK: dm-log-writes (Documentation/admin-guide/device-mapper/log-writes.rst)

LOG_FLUSH, LOG_FUA, LOG_DISCARD, LOG_MARK = 1, 2, 4, 8
LOG_MAGIC = 0x6A736677736872


def log_entries(log_path):
    """The entries of a dm-log-writes log, in order: (flags, sector, sectors, data offset in the log, mark text).
    The log: a super block (magic, version, entry count, sector size) in its first sector; from the second
    sector on, each entry is one sector (sector, nr_sectors, flags, data_len, then a mark's text) followed by
    its data (nr_sectors sectors, none for a discard). Sectors are the device's logical block size."""
    with open(log_path, "rb") as f:
        magic, version, count, sectorsize = struct.unpack("<QQQI", f.read(28))
        if magic != LOG_MAGIC or version != 1:
            raise SystemExit(f"powercut: {log_path} is not a dm-log-writes log (magic {magic:#x}, version {version})")
        position = sectorsize
        for _ in range(count):
            f.seek(position)
            header = f.read(sectorsize)
            sector, sectors, flags, data_len = struct.unpack_from("<QQQQ", header)
            mark = header[32:32 + data_len].split(b"\0")[0].decode() if flags & LOG_MARK else None
            position += sectorsize
            data = position
            if not flags & LOG_DISCARD:
                position += sectors * sectorsize
            yield flags, sector * sectorsize, sectors * sectorsize, data, mark


def replay_to_flush_points(log_path, base_image, work, check):
    """Applies the log to a copy of `base_image` and calls check(image copy, marks so far) at every flush or FUA
    point where something was written since the last one, and at every mark. Returns (entries, writes, points
    checked)."""
    replay = os.path.join(work, "replay.img")
    probe = os.path.join(work, "probe.img")
    shutil.copyfile(base_image, replay)
    marks, entries, writes, points, dirty = [], 0, 0, 0, False
    with open(log_path, "rb") as log, open(replay, "r+b") as disk:
        for flags, offset, length, data, mark in log_entries(log_path):
            entries += 1
            if mark is not None:
                marks.append(mark)
            elif flags & LOG_DISCARD:
                disk.seek(offset)
                disk.write(b"\0" * length)
                dirty = True
            elif length:
                log.seek(data)
                disk.seek(offset)
                disk.write(log.read(length))
                writes += 1
                dirty = True
            # A mark is checked too, dirty or not: the writes logged before it are the ones that were on the disk
            # when the guest made it (dm-log-writes logs a write once it is flushed), so `stored-N` right after
            # `provision` exited must find the new credentials without waiting for a later journal commit.
            if (flags & (LOG_FLUSH | LOG_FUA) and dirty) or mark is not None:
                disk.flush()
                shutil.copyfile(replay, probe)
                check(probe, list(marks))
                points += 1
                dirty = False
    return entries, writes, points


def log_writes_run(args):
    """Records every write while the agent provisions `--rounds` times and checks the credential store at every
    flush point of the recording."""
    workspace = Workspace("powercut-logwrites")
    failed = True
    try:
        binaries = Binaries(args.bin_dir)
        sim = TBSim(workspace, binaries, sim_config(key=KEY, secret=SECRET))
        base = os.path.join(args.work, "lw-base.img")
        image = os.path.join(args.work, "lw-disk.img")
        log = os.path.join(args.work, "lw-log.img")
        for path, size in ((base, 32 << 20), (log, 256 << 20)):
            with open(path, "wb") as f:
                f.truncate(size)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", base], check=True)
        shutil.copyfile(base, image)
        console = os.path.join(args.work, "lw-console.log")
        args.image = image
        vm = VM(args, {"port": sim.mqtt_port, "mode": "logwrites", "rounds": args.rounds, "token": "unused",
                       "sync": "1s"}, console, disks=[image, log])
        deadline = time.monotonic() + args.rounds * 60 + 60
        for i in range(1, args.rounds + 1):
            # Before each provisioning the guest asks for its device to be deleted (so that tb-sim provisions it
            # again with the new token) and waits for the answer.
            asked = wait_until(lambda: vm.find(f"PC LW-DELETE {i} ") or vm.popen.poll() is not None
                               or vm.find("PC FAIL"), max(1, deadline - time.monotonic()), 0.1)
            if not asked or not vm.find(f"PC LW-DELETE {i} "):
                break
            sim.control("DELETE", f"/devices/{vm.find(f'PC LW-DELETE {i} ')[1].split()[3]}")
            vm.answer(f"deleted {i}")
        finished = wait_until(lambda: vm.popen.poll() is not None or vm.find("PC FAIL"),
                              max(1, deadline - time.monotonic()), 0.2)
        failure = vm.find("PC FAIL")
        if not finished or failure:
            vm.cut()
        if not finished:
            raise SystemExit(f"powercut: the dm-log-writes VM did not finish: see {console}")
        if failure or not vm.find("PC LW-DONE"):
            raise SystemExit(f"powercut: the dm-log-writes VM failed: {failure[1] if failure else 'no PC LW-DONE'}; "
                             f"see {console}")
        states = {}
        violations = []
        fsck_codes = {}

        def check(probe, marks):
            done = [int(m.split("-")[1]) for m in marks if m.startswith("stored-")]
            last = max(done, default=0)
            code, _ = fsck(probe)
            fsck_codes[code] = fsck_codes.get(code, 0) + 1
            if code not in (0, 1):
                violations.append(f"after mark {marks[-1] if marks else '(none)'}: e2fsck -f -p exited {code}")
            dump = os.path.join(args.work, "lw-dump")
            dump_state(probe, dump)
            token, problem = credentials_token(os.path.join(dump, "state"))
            where = f"flush point after {len(marks)} mark(s) (last: {marks[-1] if marks else 'none'})"
            if problem:
                violations.append(f"{where}: {problem}")
            allowed = {f"tok-lw-{last}", f"tok-lw-{last + 1}"} if last < args.rounds else {f"tok-lw-{last}"}
            if token is None and last > 0:
                violations.append(f"{where}: no credentials (tok-lw-{last} was stored)")
            elif token is not None and token not in allowed:
                violations.append(f"{where}: the store holds {token}, expected one of {sorted(allowed)}")
            kind = "none" if token is None else "new" if token == f"tok-lw-{last + 1}" else "old"
            states[kind] = states.get(kind, 0) + 1

        entries, writes, points = replay_to_flush_points(log, base, args.work, check)
        summary = {"rounds": args.rounds, "log_entries": entries, "writes": writes, "flush_points_checked": points,
                   "credentials": states, "e2fsck_exit_codes": fsck_codes, "violations": len(violations)}
        print("POWERCUT-LOGWRITES " + json.dumps(summary), flush=True)
        for v in violations[:20]:
            print(f"VIOLATION {v}", flush=True)
        if points < args.rounds * 2:
            raise SystemExit(f"powercut: only {points} flush points in the log of {args.rounds} provisionings")
        failed = bool(violations)
        return 0 if not violations else 1
    finally:
        workspace.close(failed)


# MARK: the run

class Run:
    def __init__(self, args):
        self.args = args
        self.workspace = Workspace("powercut")
        self.binaries = Binaries(args.bin_dir)
        self.sim = TBSim(self.workspace, self.binaries, sim_config(key=KEY, secret=SECRET))
        self.console = os.path.join(args.work, "console.log")
        self.rng = random.Random(args.seed)
        self.sync_ms = parse_ms(args.sync)
        self.violations = []
        self.states = {"old": 0, "new": 0, "none": 0}
        self.phases = {"provision": 0, "outage": 0, "replay": 0}
        self.fsck_repairs = 0
        self.journal_replays = 0
        self.tail_checks = 0
        self.counter_saved = None    # the pulse total on disk after the last cut
        self.counter_backwards = []  # per cut: how far the next boot started below the saved total
        self.counter_lag = []        # per cut: newest known total minus the saved one
        self.spool_repairs = 0
        self.online_ms = []
        self.token = None        # what the store holds
        self.device = None
        self.on_disk = {}        # ts → value of every reading ever found in the spool after a cut
        self.unacked = set()     # the spool's unacknowledged readings after the last cut
        self.provision_ms = 8000
        self.turn = -1           # which phase is next (forced provisionings aside)
        self.last_cut = None

    def violation(self, cut, text):
        print(f"  VIOLATION cut {cut}: {text}", flush=True)
        self.violations.append(f"cut {cut}: {text}")

    def delivered(self):
        """{ts: [values]} of every cpu_temperature reading tb-sim received."""
        out = {}
        for _, _, ts, values in self.sim.telemetry(self.device) if self.device else []:
            if "cpu_temperature" in values:
                out.setdefault(ts, []).append(values["cpu_temperature"])
        return out

    def delivered_totals(self):
        """{ts: pulse total} of every reading of the counter tb-sim received."""
        return {ts: values[COUNTER] for _, _, ts, values in (self.sim.telemetry(self.device) if self.device else [])
                if COUNTER in values}

    def check_counter(self, n, state, totals, run_start):
        """Counters never go backwards by more than one save interval: the total saved on disk is at least the
        newest total known (on disk in the spool or delivered) minus one interval's pulses, and the next boot
        starts from the saved total."""
        boot = sorted((ts, total) for ts, total in totals.items() if run_start is not None and ts >= run_start)
        saved = counter_on_disk(state)
        if boot and self.counter_saved is not None:
            first = boot[0][1]
            self.counter_backwards.append(max(0, self.counter_saved - first))
            if first < self.counter_saved:
                self.violation(n, f"the pulse counter started this boot at {first}, below the {self.counter_saved} "
                                  f"saved on disk after the previous cut")
        if boot and saved is not None:
            step = max([b[1] - a[1] for a, b in zip(boot, boot[1:])] + [1])
            newest = boot[-1][1]
            self.counter_lag.append(max(0, newest - saved))
            if saved < newest - step:
                self.violation(n, f"the pulse counter saved on disk is {saved}, but a total of {newest} had been "
                                  f"spooled or delivered (one interval is at most {step} pulses)")
        if saved is not None:
            self.counter_saved = saved

    def online_since(self, offset):
        """The host ms of the first accepted device CONNECT in tb-sim's log after `offset`, or None."""
        for event in self.sim.events(offset, "connect"):
            if event.get("returnCode") == 0 and event.get("kind") != "provision" and event.get("device"):
                self.device = self.device or event["device"]
                if event["device"] == self.device:
                    return event["ts"]
        return None

    def outage(self, seconds):
        code, body = self.sim.control("POST", "/outage", {"seconds": seconds})
        if code != 200:
            raise SystemExit(f"powercut: tb-sim's outage endpoint answered {code}: {body}")

    def boot(self, token, mode):
        params = {"port": self.sim.mqtt_port, "token": token, "mode": mode, "sync": self.args.sync}
        return VM(self.args, params, self.console)

    def come_online(self, vm, cut, offset):
        online = wait_until(lambda: self.online_since(offset) or vm.popen.poll() is not None, self.args.online_timeout)
        online = self.online_since(offset)
        if online is None:
            self.violation(cut, f"the agent did not come online within {self.args.online_timeout} s of booting; "
                                f"console: {self.console}")
            return False
        if self.last_cut is not None:
            self.online_ms.append(online - self.last_cut)
        return True

    def one_cut(self, n, need_provision):
        # The phases in turn (so that a short run has each), the moments at random; a re-provisioning cut that
        # kept the old credentials is followed by a provisioning (tb-sim deleted the device they belong to).
        if not need_provision:
            self.turn += 1
        phase = "provision" if need_provision else ["outage", "replay", "provision"][self.turn % 3]
        self.phases[phase] += 1
        new_token = f"tok-{n}" if phase == "provision" else self.token
        if phase == "provision" and self.device:
            self.sim.control("DELETE", f"/devices/{self.device}")
        offset = self.sim.events_offset()
        vm = self.boot(new_token, "provision" if phase == "provision" else "run")
        status = vm.wait_line("PC STATUS ", self.args.boot_timeout)
        if status is None:
            raise SystemExit(f"powercut: the VM did not boot within {self.args.boot_timeout} s: see {self.console}")
        self.check_status(n, status[1])
        if phase == "provision":
            vm.wait_line("PC AGENT-START ", 30)
            time.sleep(self.rng.uniform(0, self.provision_ms * 1.3) / 1000)
            online = self.online_since(offset)
            if online is not None and self.last_cut is not None:
                self.online_ms.append(online - self.last_cut)  # came online (after provisioning) before the cut
        else:
            if not self.come_online(vm, n, offset):
                vm.cut()
                return self.after_cut(n, vm, phase, self.token, None, hard=True)
            # Readings of this boot reach tb-sim before the outage.
            time.sleep(self.rng.uniform(0.5, 2))
            self.outage(3600)
            if phase == "outage":
                time.sleep(self.rng.uniform(0.2, 6))
            else:
                time.sleep(self.rng.uniform(1, 3))
                self.outage(0.001)
                time.sleep(self.rng.uniform(0, 4))
        cut_at = vm.cut()
        self.outage(0.001)
        return self.after_cut(n, vm, phase, self.token, new_token, cut_at=cut_at)

    def check_status(self, n, line):
        # `PC STATUS <exit> <output>`: 0 provisioned, 3 not provisioned; the store must never be "damaged".
        parts = line.split(" ", 3)
        code = int(parts[2])
        out = parts[3] if len(parts) > 3 else ""
        if "damaged" in out or code not in (0, 3):
            self.violation(n, f"tb-agent status after the cut: exit {code}: {out}")
        if code == 3 and self.token is not None:
            self.violation(n, f"tb-agent status finds no credentials after the cut (the store held {self.token}): {out}")
        # `status` masks the token: the host's own reading of the files tells old from new.

    def after_cut(self, n, vm, phase, old, new, cut_at=None, hard=False):
        text = vm.text()
        named = re.search(r"device=(\S+)", text)
        if named and not self.device:
            self.device = named.group(1)
        self.spool_repairs += len(re.findall(r"the spool segment \S+ was damaged", text))
        code, out = fsck(self.args.image)
        # Exit 1 with nothing but "recovering journal" is the journal replayed (what a mount does): not a repair.
        notes = [line for line in out.splitlines()
                 if not re.search(r": (recovering journal|clean, .*|\d+/\d+ files .*)$", line)]
        if "recovering journal" in out:
            self.journal_replays += 1
        if code == 1 and notes:
            self.fsck_repairs += 1
            print(f"  e2fsck repaired the file system after cut {n}: {' | '.join(notes)}", flush=True)
        elif code not in (0, 1):
            raise SystemExit(f"powercut: e2fsck -f -p {self.args.image} exited {code} after cut {n}: {out}")
        dump = os.path.join(self.args.work, "dump")
        dump_state(self.args.image, dump)
        state = os.path.join(dump, "state")
        token, problem = credentials_token(state)
        if problem:
            self.violation(n, problem)
        finished = "PC AGENT-EXIT provision 0" in text
        stored = "the new credentials are stored" in text or "the new credentials replace" in text or finished
        allowed = {old, new}
        if token is None and old is not None:
            self.violation(n, f"no credentials after the cut (old {old}, new {new})")
        elif token not in allowed and token is not None:
            self.violation(n, f"the store holds {token}, neither the old {old} nor the new {new}")
        if stored and new is not None and token != new:
            self.violation(n, f"the agent had stored {new} (`provision` finished or logged it) but the store holds {token}")
        kind = "none" if token is None else "new" if token == new and new != old else "old"
        if phase != "final":
            self.states[kind] += 1
        self.token = token

        # Readings: nothing the spool held on disk may vanish without reaching tb-sim.
        totals = self.delivered_totals()
        everything, unacked, acked = spool_readings(state, totals)
        delivered = self.delivered()
        lost = sorted(ts for ts in self.unacked if ts not in delivered and ts not in everything)
        if lost:
            self.violation(n, f"{len(lost)} readings the spool held on disk after the previous cut are gone and "
                              f"never reached tb-sim (first ts {lost[:3]})")
        for ts, value in everything.items():
            if ts in self.on_disk and self.on_disk[ts] != value:
                self.violation(n, f"the reading at ts {ts} changed its value on disk: {self.on_disk[ts]} -> {value}")
        self.on_disk.update(everything)
        self.unacked = unacked
        # The synced tail: readings older than the cut minus sync_interval are on disk or delivered.
        reached = vm.guest_clock_reached()
        start = vm.find("PC AGENT-START ")
        if cut_at is not None and reached is not None and start is not None and phase in ("outage", "replay"):
            run_start = int(start[1].split()[2])
            bound = reached - self.sync_ms - SAMPLING_SLACK_MS
            known = sorted(ts for ts in set(everything) | set(delivered) if run_start <= ts <= bound)
            # Only once the agent has been sampling for a while before the bound (its first reading of this boot
            # is there): a cut during its start proves nothing here.
            if known and bound > known[0] + INTERVAL_MS * 5:
                self.tail_checks += 1
                newest = known[-1]
                if newest < bound - INTERVAL_MS * 3:
                    self.violation(n, f"readings up to {bound} (the guest's clock reached {reached} before the cut, "
                                      f"minus sync_interval and {SAMPLING_SLACK_MS} ms) should be on disk or "
                                      f"delivered; the newest found is {newest}")
                gaps = [(a, b) for a, b in zip(known, known[1:]) if b - a > 3000]
                if gaps:
                    self.violation(n, f"gaps of more than 3 s among the readings before the synced bound: {gaps[:3]}")
        self.check_counter(n, state, totals, int(start[1].split()[2]) if start else None)
        if phase == "provision" and start is not None:
            exit_line = vm.find("PC AGENT-EXIT provision")
            if exit_line:
                self.provision_ms = max(2000, exit_line[0] - start[0])
        self.last_cut = cut_at
        print(f"  cut {n} ({phase}): credentials {kind} ({token}); spool {len(unacked)} unacknowledged on disk, "
              f"watermark {acked}; pulse counter on disk {self.counter_saved}; e2fsck exit {code}; guest clock reached "
              f"{reached} ms", flush=True)
        # After a re-provisioning cut that kept the old credentials, tb-sim no longer knows them (the device was
        # deleted): provision again.
        return phase == "provision" and token != new

    def final(self, n):
        """A last boot with tb-sim up: the agent comes online and everything it ever spooled reaches tb-sim."""
        offset = self.sim.events_offset()
        vm = self.boot(self.token, "run")
        status = vm.wait_line("PC STATUS ", self.args.boot_timeout)
        if status is None:
            raise SystemExit(f"powercut: the final VM did not boot: see {self.console}")
        self.check_status(n, status[1])
        self.spool_repairs += len(re.findall(r"the spool segment \S+ was damaged", vm.text()))
        if self.come_online(vm, n, offset):
            want = set(self.on_disk)
            wait_until(lambda: want <= set(self.delivered()), 120, 0.5)
            missing = sorted(want - set(self.delivered()))
            if missing:
                self.violation(n, f"{len(missing)} readings that were on disk after a cut never reached tb-sim "
                                  f"(first ts {missing[:3]})")
        # The last cut is checked like the others (credentials, the counter restarted from its saved total), but
        # not counted among the cuts.
        self.after_cut(n, vm, "final", self.token, self.token, cut_at=vm.cut())

    def order_checks(self):
        sessions = {}
        values = {}
        for _, session, ts, v in self.sim.telemetry(self.device):
            if "cpu_temperature" not in v:
                continue
            sessions.setdefault(session, []).append(ts)
            values.setdefault(ts, set()).add(json.dumps(v["cpu_temperature"]))
        for session, stamps in sessions.items():
            bad = [(a, b) for a, b in zip(stamps, stamps[1:]) if b <= a]
            if bad:
                self.violation("all", f"session {session} delivered readings out of order: {bad[:3]}")
        changed = {ts: v for ts, v in values.items() if len(v) > 1}
        if changed:
            self.violation("all", f"readings delivered twice with different values: {list(changed.items())[:3]}")
        total = sum(len(s) for s in sessions.values())
        return total, len(values)

    def run(self):
        need_provision = True
        for n in range(1, self.args.cuts + 1):
            need_provision = self.one_cut(n, need_provision)
        self.final(self.args.cuts + 1)
        total, distinct = self.order_checks()
        delivered = self.delivered()
        lost = sorted(set(self.on_disk) - set(delivered))
        online = sorted(self.online_ms)
        summary = {
            "cuts": self.args.cuts, "phases": self.phases, "credentials": self.states,
            "readings_on_disk_after_cuts": len(self.on_disk), "readings_lost": len(lost),
            "readings_delivered": total, "distinct_readings_delivered": distinct,
            "duplicates_delivered": total - distinct, "fsck_repairs": self.fsck_repairs,
            "journal_replays": self.journal_replays, "synced_tail_checks": self.tail_checks,
            "spool_repairs": self.spool_repairs,
            "counter_checks": len(self.counter_lag) + len(self.counter_backwards),
            "counter_saved_behind_newest_max": max(self.counter_lag, default=None),
            "counter_restart_below_saved_max": max(self.counter_backwards, default=None),
            "online_after_cut_s": {"median": round(statistics.median(online) / 1000, 1) if online else None,
                                   "max": round(online[-1] / 1000, 1) if online else None, "count": len(online)},
            "sync_interval": self.args.sync, "violations": len(self.violations),
        }
        print("POWERCUT " + json.dumps(summary), flush=True)
        for v in self.violations:
            print(f"VIOLATION {v}", flush=True)
        return not self.violations

    def close(self, failed):
        self.workspace.close(failed)


def parse_ms(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", text)
    if not match:
        raise SystemExit(f"powercut: --sync must look like 1s or 500ms, not {text!r}")
    return int(float(match.group(1)) * (1 if match.group(2) == "ms" else 1000))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "modules":
        print("\n".join(module_order(sys.argv[2], sys.argv[3:])))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run", "logwrites"])
    parser.add_argument("--cuts", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=8, help="logwrites: how many provisionings are recorded")
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initrd", required=True)
    parser.add_argument("--image", help="run: the disk image the cuts use")
    parser.add_argument("--bin-dir", required=True, help="holds tb-sim (the agent runs in the VM)")
    parser.add_argument("--work", required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sync", default="1s", help="the spool's sync_interval in the guest")
    parser.add_argument("--boot-timeout", type=float, default=60)
    parser.add_argument("--online-timeout", type=float, default=60)
    args = parser.parse_args()
    if args.command == "logwrites":
        return log_writes_run(args)
    if args.seed is None:
        args.seed = time.time_ns() % 1_000_000
    print(f"  seed {args.seed} (--seed to repeat)", flush=True)
    run = Run(args)
    ok = False
    try:
        ok = run.run()
    finally:
        run.close(not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

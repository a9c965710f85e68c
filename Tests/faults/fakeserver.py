"""A tiny MQTT 3.1.1 server on 127.0.0.1 that misbehaves on purpose, one way per instance.

Provisioning sessions (user name "provision") and device sessions (any other) misbehave independently:
`provision_mode` and `device_mode` name what happens (see PROVISION_MODES and DEVICE_MODES). In mode "ok" it
answers like ThingsBoard: CONNACK 0, SUBACK, PUBACK, PINGRESP, and a SUCCESS provisioning response with an
access token. Every connection is recorded with its kind and time, so a test can tell that a client retried.
"""

import json
import os
import random
import socket
import struct
import threading
import time

PROVISION_MODES = [
    "ok",
    "garbage",             # random bytes instead of a CONNACK
    "oversized",           # a fixed header announcing a 256 MiB packet, then nothing
    "close",               # the connection closed at once
    "silence",             # the connection accepted, nothing ever sent
    "connack-2", "connack-3", "connack-4", "connack-5", "connack-128", "connack-malformed",
    "suback-instead",      # a SUBACK where the CONNACK belongs
    "suback-failure",      # SUBACK 0x80 for /provision/response
    "silence-after-connack",
    "status-weird",        # {"status": "WEIRD"}
    "status-failure",      # ThingsBoard's refusal
    "status-not-found",
    "not-json",            # bytes that are not JSON
    "json-array",
    "empty-payload",
    "success-without-credentials",
    "success-wrong-types",
    "huge-response",       # a 2 MiB "token"
    "control-token",       # a token with a control character (libmosquitto refuses it on every connect)
    "noncharacter-token",  # a token with U+FFFF
    "close-after-request",  # PUBACK the request, then close without an answer
]

DEVICE_MODES = [
    "ok",
    "garbage", "oversized", "close", "silence",
    "connack-1", "connack-2", "connack-3", "connack-4", "connack-5", "connack-128", "connack-malformed",
    "silence-after-connack",  # CONNACK 0, then nothing: no SUBACK, no PUBACK, no PINGRESP
    "junk-after-connack",     # CONNACK 0, then random bytes
    "big-publishes",          # CONNACK 0, then a 2 MiB attribute update, one that is not JSON, a garbage RPC
]


def encode_length(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + encode_length(len(body)) + body


def mqtt_string(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def publish(topic, payload, qos=0, packet_id=1):
    body = mqtt_string(topic) + (struct.pack(">H", packet_id) if qos else b"") + payload
    return packet(0x30 | (qos << 1), body)


class FakeServer:
    def __init__(self, provision_mode="ok", device_mode="ok", port=0, seed=None):
        self.provision_mode = provision_mode
        self.device_mode = device_mode
        self.rng = random.Random(f"{os.environ.get('TB_FAULTS_SEED', '0')}-{seed}")
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.connections = []  # (kind, monotonic time)
        self.tokens = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.sockets = []  # the open connections, each closed by its own thread (under the lock)
        # Called once per device session after its three SUBSCRIBEs, on a thread of its own, with a send function
        # safe beside the session's own replies: how the flood scenario sends what ThingsBoard never would.
        self.on_device_ready = None
        self.send_lock = threading.Lock()
        self.rpc_responses = 0
        self.responded = set()  # the "final…" RPC ids answered
        self.accept_thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.accept_thread.start()

    def attempts(self, kind):
        with self.lock:
            return [t for k, t in self.connections if k == kind]

    def stop(self):
        """Stops accepting and ends every connection; once it returns, nothing of this server answers.

        shutdown() wakes the threads blocked in accept() and recv(); close() from here would not: Linux keeps a
        socket in use by a blocked call open (a closed listener went on accepting, and serving, connections), and
        the number close() frees can go to a new socket while a thread is still on its way to use the old one. So
        the listener is closed after its thread has ended, and each connection by the thread serving it.
        """
        self.stopped = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.accept_thread.join()
        self.listener.close()
        with self.lock:
            for conn in self.sockets:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept_loop(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # stop() shut the listener down
            if self.stopped:
                conn.close()
                return
            with self.lock:
                self.sockets.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    # MARK: reading packets

    @staticmethod
    def read_exact(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def read_packet(self, conn):
        first = self.read_exact(conn, 1)[0]
        length, multiplier = 0, 1
        for _ in range(4):
            byte = self.read_exact(conn, 1)[0]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            if not byte & 0x80:
                break
        return first, self.read_exact(conn, length)

    @staticmethod
    def parse_connect(body):
        offset = 0
        (n,) = struct.unpack_from(">H", body, offset)
        offset += 2 + n
        level, flags = body[offset], body[offset + 1]
        offset += 4
        (n,) = struct.unpack_from(">H", body, offset)
        offset += 2 + n
        username = None
        if flags & 0x04:  # will
            for _ in range(2):
                (n,) = struct.unpack_from(">H", body, offset)
                offset += 2 + n
        if flags & 0x80:
            (n,) = struct.unpack_from(">H", body, offset)
            username = body[offset + 2:offset + 2 + n].decode("utf-8", "replace")
        return username

    # MARK: a session

    def serve(self, conn):
        try:
            conn.settimeout(120)
            first, body = self.read_packet(conn)
            if first >> 4 != 1:
                return
            username = self.parse_connect(body)
            kind = "provision" if username == "provision" else "device"
            with self.lock:
                self.connections.append((kind, time.monotonic()))
            mode = self.provision_mode if kind == "provision" else self.device_mode
            if not self.misbehave_on_connect(conn, mode):
                return
            self.session(conn, kind, mode)
        except (OSError, ConnectionError, struct.error, IndexError):
            pass
        finally:
            with self.lock:
                self.sockets.remove(conn)
                conn.close()

    def misbehave_on_connect(self, conn, mode):
        """Answers the CONNECT; returns True to carry on with the session."""
        if mode == "garbage":
            conn.sendall(bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 200))))
            time.sleep(1)
            return False
        if mode == "oversized":
            conn.sendall(bytes([0x20]) + encode_length(268_435_455) + b"\x00\x00")
            self.hold(conn)
            return False
        if mode == "close":
            return False
        if mode == "silence":
            self.hold(conn)
            return False
        if mode.startswith("connack-") and mode != "connack-malformed":
            conn.sendall(packet(0x20, bytes([0, int(mode.split("-")[1])])))
            time.sleep(0.5)
            return False
        if mode == "connack-malformed":
            conn.sendall(packet(0x20, b"\x00"))  # one byte: no return code
            time.sleep(1)
            return False
        if mode == "suback-instead":
            conn.sendall(packet(0x90, b"\x00\x01\x01"))
            time.sleep(1)
            return False
        conn.sendall(packet(0x20, b"\x00\x00"))
        if mode == "silence-after-connack":
            self.hold(conn)
            return False
        if mode == "junk-after-connack":
            time.sleep(0.2)
            conn.sendall(bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 300))))
            time.sleep(1)
            return False
        return True

    def hold(self, conn):
        """Reads and ignores everything until the client gives up."""
        try:
            while not self.stopped and conn.recv(65536):
                pass
        except OSError:
            pass

    def send(self, conn, data):
        with self.send_lock:
            conn.sendall(data)

    def session(self, conn, kind, mode):
        sent_big = False
        subscribes = 0
        while not self.stopped:
            first, body = self.read_packet(conn)
            kind_code = first >> 4
            if kind_code == 8:  # SUBSCRIBE
                packet_id = body[:2]
                count = 0
                offset = 2
                while offset < len(body):
                    (n,) = struct.unpack_from(">H", body, offset)
                    offset += 2 + n + 1
                    count += 1
                code = 0x80 if mode == "suback-failure" else 0x01
                self.send(conn, packet(0x90, packet_id + bytes([code] * count)))
                subscribes += 1
                if kind == "device" and subscribes == 3 and self.on_device_ready is not None:
                    hook = self.on_device_ready
                    threading.Thread(target=self.run_hook, args=(hook, conn), daemon=True).start()
                if kind == "device" and mode == "big-publishes" and not sent_big:
                    sent_big = True
                    conn.sendall(publish("v1/devices/me/attributes",
                                         json.dumps({"huge": "A" * (2 << 20)}).encode(), qos=1, packet_id=7))
                    conn.sendall(publish("v1/devices/me/attributes", bytes(range(256)) * 8, qos=1, packet_id=8))
                    conn.sendall(publish("v1/devices/me/rpc/request/42", b"\xff{not json", qos=1, packet_id=9))
                    conn.sendall(publish("v1/devices/me/rpc/request/x", b'{"method":"getStatus"}', qos=0))
            elif kind_code == 3:  # PUBLISH
                qos = (first >> 1) & 3
                (n,) = struct.unpack_from(">H", body, 0)
                topic = body[2:2 + n].decode("utf-8", "replace")
                offset = 2 + n
                if qos:
                    self.send(conn, packet(0x40, body[offset:offset + 2]))
                if topic.startswith("v1/devices/me/rpc/response/"):
                    with self.lock:
                        self.rpc_responses += 1
                        rpc_id = topic.rsplit("/", 1)[1]
                        if rpc_id.startswith("final"):
                            self.responded.add(rpc_id)
                if topic == "/provision/request":
                    if mode == "close-after-request":
                        return
                    self.send(conn, publish("/provision/response", self.provision_answer(mode)))
            elif kind_code == 12:  # PINGREQ
                self.send(conn, packet(0xD0, b""))
            elif kind_code == 14:  # DISCONNECT
                return

    def run_hook(self, hook, conn):
        try:
            hook(lambda data: self.send(conn, data))
        except OSError:
            pass  # the session ended under the flood

    def responses(self):
        with self.lock:
            return self.rpc_responses

    def answered_final(self):
        with self.lock:
            return any(rpc_id.startswith("final") for rpc_id in self.responded)

    def provision_answer(self, mode):
        if mode == "status-weird":
            return b'{"status":"WEIRD"}'
        if mode == "status-failure":
            return b'{"status":"FAILURE","errorMsg":"Failed to provision device!"}'
        if mode == "status-not-found":
            return b'{"status":"NOT_FOUND","errorMsg":"Provision data was not found!"}'
        if mode == "not-json":
            return b"\xff\xfe<html>502 Bad Gateway</html>"
        if mode == "json-array":
            return b"[1,2,3]"
        if mode == "empty-payload":
            return b""
        if mode == "success-without-credentials":
            return b'{"status":"SUCCESS","credentialsType":"ACCESS_TOKEN"}'
        if mode == "success-wrong-types":
            return b'{"status":"SUCCESS","credentialsType":"ACCESS_TOKEN","credentialsValue":12345}'
        if mode == "control-token":
            return json.dumps({"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN",
                               "credentialsValue": "fake\u0001token"}).encode()
        if mode == "noncharacter-token":
            return json.dumps({"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN",
                               "credentialsValue": "fake\ufffftoken"}).encode()
        if mode == "huge-response":
            return json.dumps({"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN",
                               "credentialsValue": "T" * (2 << 20)}).encode()
        with self.lock:
            self.tokens += 1
            token = f"fake-token-{os.getpid()}-{self.tokens}"
        return json.dumps({"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": token}).encode()

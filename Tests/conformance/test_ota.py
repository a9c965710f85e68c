"""OTA packages: tb-sim serves them as ThingsBoard does. ThingsBoard's Python SDK (tb-mqtt-client) gets the fw_*
shared attributes (asked for, or pushed on assignment), downloads the package in chunks and passes its own checksum
check for every algorithm it supports; paho-mqtt gets ThingsBoard's answers at the edges (past the end, no package,
a URL package, a chunk size over the payload limit)."""
import base64
import json
import threading
import zlib

import paho.mqtt.client as mqtt
import pytest

from conftest import run_sdk_script, start_sdk_script

# 4321 bytes: chunks of 1000 end with a short one. The SDK writes CRC32 and Murmur hex without leading zeros before
# reversing the bytes, so a hash whose top byte is 0 fails its check against ThingsBoard too; these bytes avoid that
# (CRC32 0xa0781a39, MURMUR3_32 0x4271ebb1, MURMUR3_128 0x9cd9…0fa2).
DATA = bytes((i * 131 + 17) % 251 for i in range(4321))
ALGORITHMS = ["SHA256", "CRC32", "MD5", "SHA384", "SHA512", "MURMUR3_32", "MURMUR3_128"]


def upload(sim, version, algorithm="SHA256", data=DATA, package_type="FIRMWARE", title="sim-board-fw"):
    status, package = sim.control("POST", "/otaPackages", {
        "title": title, "version": version, "type": package_type, "checksumAlgorithm": algorithm,
        "data": base64.b64encode(data).decode()})
    assert status == 201, package
    return package


def fw_states(sim, device):
    return sim.control("GET", f"/devices/{device}/fwStates")[1]["firmware"]["states"]


def chunk_requests(sim, device):
    return [(e["requestId"], e["chunk"], e["chunkSize"], e["bytes"]) for e in sim.events("ota_chunk", device)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sdk_downloads_and_verifies_an_assigned_package(sim, algorithm):
    assert zlib.crc32(DATA) >> 24 != 0
    package = upload(sim, f"2.0-{algorithm.lower()}", algorithm)
    assert sim.control("POST", "/devices/bulk-board/firmware", {"packageId": package["id"]})[0] == 200
    result = run_sdk_script("sdk_ota.py", sim.host, sim.mqtt_port, "bulk-board-token", 1000)
    assert result.returncode == 0, result.stdout + result.stderr
    received = json.loads(result.stdout.strip().splitlines()[-1])
    assert received["version"] == package["version"]
    assert received["size"] == len(DATA)
    # The SDK's callback runs only after its own checksum check passed (else it reports FAILED and starts over).
    assert fw_states(sim, "bulk-board") == [
        "QUEUED", "INITIATED", "IDLE", "DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    assert chunk_requests(sim, "bulk-board") == [
        ("1", 0, 1000, 1000), ("1", 1, 1000, 1000), ("1", 2, 1000, 1000), ("1", 3, 1000, 1000), ("1", 4, 1000, 321)]
    request = [e for e in sim.events("attribute_request", "bulk-board")][0]
    assert request["response"]["shared"] == {
        "fw_title": "sim-board-fw", "fw_version": package["version"], "fw_size": len(DATA),
        "fw_checksum_algorithm": algorithm, "fw_checksum": package["checksum"]}
    history = sim.control("GET", "/devices/bulk-board/fwStates")[1]["firmware"]["history"]
    assert history[-1]["source"] == "device"
    assert history[-1]["values"]["current_fw_version"] == package["version"]


def test_sdk_gets_the_package_pushed_on_assignment_and_downloads_it_whole(sim):
    """The SDK asks first and finds nothing; the assignment's shared-attribute push starts its download. Chunk size
    0 sends an empty payload: ThingsBoard answers with the whole package in one publish."""
    package = upload(sim, "3.0", "CRC32")
    sdk = start_sdk_script("sdk_ota.py", sim.host, sim.mqtt_port, "bulk-board-token", 0)
    try:
        assert json.loads(sdk.stdout.readline()) == {"requested": True}
        sim.wait_for(lambda: sim.events("attribute_request", "bulk-board"), what="the SDK's attribute request")
        assert sim.events("attribute_request", "bulk-board")[0]["response"] == {}
        assert sim.control("POST", "/devices/bulk-board/firmware", {"packageId": package["id"]})[0] == 200
        out, err = sdk.communicate(timeout=90)
    finally:
        if sdk.poll() is None:
            sdk.kill()
            sdk.wait()
    assert sdk.returncode == 0, out + err
    assert json.loads(out.strip().splitlines()[-1])["version"] == "3.0"
    assert chunk_requests(sim, "bulk-board") == [("1", 0, 0, len(DATA))]
    assert fw_states(sim, "bulk-board")[-1] == "UPDATED"


class Paho:
    """A paho-mqtt device session subscribed to the OTA topics, recording what arrives and when it is closed."""

    def __init__(self, sim, token):
        self.messages = []
        self.arrived = threading.Condition()
        self.closed = threading.Event()
        connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311,
                                  reconnect_on_failure=False)
        self.client.username_pw_set(token)
        self.client.on_connect = lambda c, u, f, rc, p: connected.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self.closed.set()
        self.client.on_message = self.on_message
        self.client.connect(sim.host, sim.mqtt_port, keepalive=60)
        self.client.loop_start()
        assert connected.wait(15)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        self.client.subscribe([("v2/fw/response/+/chunk/+", 1), ("v2/fw/error", 1)])
        assert subscribed.wait(15)

    def on_message(self, client, userdata, message):
        with self.arrived:
            self.messages.append((message.topic, bytes(message.payload)))
            self.arrived.notify_all()

    def request(self, topic, size):
        self.client.publish(topic, size, qos=1)

    def wait_messages(self, count, timeout=15):
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= count, timeout), self.messages
        return self.messages[:count]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_paho_edges_past_the_end_and_payload_too_large(sim):
    package = upload(sim, "4.0")
    sim.control("POST", "/devices/pre-board-1/firmware", {"packageId": package["id"]})
    device = Paho(sim, "pre-board-1-token")
    try:
        device.request("v2/fw/request/5/chunk/4", "1000")
        device.request("v2/fw/request/5/chunk/99", "1000")
        device.request("v2/fw/request/6/chunk/0", "0")
        assert device.wait_messages(3) == [
            ("v2/fw/response/5/chunk/4", DATA[4000:]),
            ("v2/fw/response/5/chunk/99", b""),
            ("v2/fw/response/6/chunk/0", DATA),
        ]
        assert not device.closed.is_set()
        device.request("v2/fw/request/7/chunk/0", "65537")
        assert device.wait_messages(4)[3] == ("v2/fw/error", b"PAYLOAD_TOO_LARGE")
        assert device.closed.wait(15), "ThingsBoard closes the session after an OTA error"
    finally:
        device.stop()


@pytest.mark.parametrize("case", ["no package", "url package", "software without package"])
def test_paho_refusals_on_v2_fw_error_then_close(sim, case):
    if case == "url package":
        status, package = sim.control("POST", "/otaPackages", {
            "title": "remote", "version": "1", "type": "FIRMWARE", "url": "https://example.com/fw.bin"})
        assert status == 201
        sim.control("POST", "/devices/pre-board-1/firmware", {"packageId": package["id"]})
        assert sim.control("GET", "/devices/pre-board-1/attributes")[1]["shared"]["fw_url"] == "https://example.com/fw.bin"
    device = Paho(sim, "pre-board-1-token")
    try:
        topic = "v2/sw/request/1/chunk/0" if case.startswith("software") else "v2/fw/request/1/chunk/0"
        device.request(topic, "1000")
        expected = b"FAILURE" if case == "url package" else b"NOT_FOUND"
        assert device.wait_messages(1) == [("v2/fw/error", expected)]
        assert device.closed.wait(15)
    finally:
        device.stop()
    assert sim.events("ota_error", "pre-board-1")[-1]["answer"] == expected.decode()


def test_packages_from_the_toml_file_reach_the_sdk(make_sim, tmp_path):
    """[[ota_packages]] with a file, assigned to the profile at start: the profile's device downloads it."""
    package_file = tmp_path / "fw-5.0.bin"
    package_file.write_bytes(DATA)
    sim = make_sim(f'\n[ota]\nmax_package_size = 100000\n\n[[ota_packages]]\ntitle = "sim-board-fw"\nversion = "5.0"\n'
                   f'file = "{package_file}"\nchecksum_algorithm = "SHA512"\nprofiles = ["sensors"]\n')
    packages = sim.control("GET", "/otaPackages")[1]
    assert [(p["version"], p["dataSize"], p["checksumAlgorithm"]) for p in packages] == [("5.0", len(DATA), "SHA512")]
    result = run_sdk_script("sdk_ota.py", sim.host, sim.mqtt_port, "bulk-board-token", 2048)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["version"] == "5.0"
    firmware = sim.control("GET", "/devices/bulk-board/fwStates")[1]["firmware"]
    assert firmware["assignedTo"] == "profile" and firmware["states"][-1] == "UPDATED"
    assert [c[1] for c in chunk_requests(sim, "bulk-board")] == [0, 1, 2]

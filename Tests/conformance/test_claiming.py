"""Claiming (ThingsBoard's v1/devices/me/claim): ThingsBoard's Python SDK and paho-mqtt register a claim in tb-sim,
which answers with a PUBACK only; a person then claims through the control API's copy of ThingsBoard's
POST /api/customer/device/{deviceName}/claim."""
import json
import threading

import paho.mqtt.client as mqtt

from conftest import run_sdk_script


def test_sdk_claim_registers_a_claim(sim):
    result = run_sdk_script("sdk_claim.py", sim.host, sim.mqtt_port, "bulk-board-token", "sdk-secret-1", 60000)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"claim_rc": 0}
    status, claim = sim.control("GET", "/devices/bulk-board/claim")
    assert status == 200
    pending = claim["pending"]
    assert pending["secretKey"] == "sdk-secret-1"
    assert pending["expiresAt"] - pending["storedAt"] == 60000
    event = sim.wait_for(lambda: sim.events("claim", "bulk-board"), what="the claim event")[0]
    assert event["outcome"] == "stored" and event["durationMs"] == 60000
    assert "sdk-secret-1" not in json.dumps(event), "the event log shows a secret in full"
    # The SDK's default duration (30 s) on a second request changes nothing: put-if-absent.
    again = run_sdk_script("sdk_claim.py", sim.host, sim.mqtt_port, "bulk-board-token", "sdk-secret-2", 30000)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"claim_rc": 0}
    assert sim.control("GET", "/devices/bulk-board/claim")[1]["pending"] == pending
    assert sim.control("POST", "/customer/device/bulk-board/claim", {"secretKey": "sdk-secret-1"})[0] == 200
    assert sim.control("GET", "/devices/bulk-board")[1]["claim"]["customer"] == "Customer A"


def test_paho_claim_gets_a_puback_and_nothing_else(sim):
    published = threading.Event()
    connected = threading.Event()
    received = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    client.username_pw_set("pre-board-1-token")
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.on_publish = lambda c, u, mid, rc, p: published.set()
    client.on_message = lambda c, u, message: received.append(message.topic)
    client.connect(sim.host, sim.mqtt_port, keepalive=60)
    client.loop_start()
    try:
        assert connected.wait(15)
        client.subscribe([("v1/devices/me/attributes", 1), ("v1/devices/me/rpc/request/+", 1)])
        client.publish("v1/devices/me/claim", json.dumps({"secretKey": "paho-secret"}), qos=1)
        assert published.wait(15), "no PUBACK for the claim request"
        threading.Event().wait(0.5)
    finally:
        client.disconnect()
        client.loop_stop()
    assert received == []
    pending = sim.control("GET", "/devices/pre-board-1/claim")[1]["pending"]
    assert pending["secretKey"] == "paho-secret"
    assert pending["expiresAt"] - pending["storedAt"] == 86_400_000, "no durationMs: the server default, 24 h"
    status, body = sim.control("POST", "/customer/device/pre-board-1/claim", {"secretKey": "wrong"})
    assert (status, body) == (400, "FAILURE")
    # The failure evicted the claim: even the right secret now fails until the device asks again.
    assert sim.control("POST", "/customer/device/pre-board-1/claim", {"secretKey": "paho-secret"}) == (400, "FAILURE")


def test_claiming_settings_from_the_toml_file(make_sim):
    sim = make_sim('\n[claiming]\nduration = "90s"\nallow_by_default = false\n')
    result = run_sdk_script("sdk_claim.py", sim.host, sim.mqtt_port, "bulk-board-token", "s-1", 0)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"claim_rc": 0}
    assert sim.control("GET", "/devices/bulk-board/claim")[1]["pending"] is None, "claimingAllowed is not set"
    assert sim.events("claim", "bulk-board")[-1]["outcome"] == "refused"
    assert sim.control("POST", "/devices/bulk-board/claiming-allowed", {"allowed": True})[0] == 200
    run_sdk_script("sdk_claim.py", sim.host, sim.mqtt_port, "bulk-board-token", "s-1", 0)
    pending = sim.control("GET", "/devices/bulk-board/claim")[1]["pending"]
    assert pending["expiresAt"] - pending["storedAt"] == 90000, "durationMs 0: the configured default"

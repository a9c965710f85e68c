"""ThingsBoard's own Python SDK (tb-mqtt-client 1.13.14) against tb-sim, run as scripts in its own environment."""
import json

from conftest import PROVISION_KEY, PROVISION_SECRET, run_sdk_script, start_sdk_script


def test_sdk_provision_returns_credentials(sim):
    result = run_sdk_script("sdk_provision.py", sim.host, sim.mqtt_port, PROVISION_KEY, PROVISION_SECRET, "sdk-board-1")
    assert result.returncode == 0, result.stderr
    credentials = json.loads(result.stdout.strip().splitlines()[-1])
    assert credentials["status"] == "SUCCESS"
    assert credentials["credentialsType"] == "ACCESS_TOKEN"
    assert len(credentials["credentialsValue"]) == 20
    devices = {d["name"]: d for d in sim.control("GET", "/devices")[1]}
    assert devices["sdk-board-1"]["credentials"]["token"] == credentials["credentialsValue"]
    # The SDK connects with MQTT 3.1.1, an empty client id and no password.
    connect = [e for e in sim.events("connect") if e["kind"] == "provision"][-1]
    assert connect["protocol"] == "3.1.1" and connect["clientId"] == "" and connect["hasPassword"] is False

    pre = run_sdk_script("sdk_provision.py", sim.host, sim.mqtt_port, "fleet-key", "fleet-secret", "pre-board-1")
    assert json.loads(pre.stdout.strip().splitlines()[-1]) == {
        "credentialsValue": "pre-board-1-token", "credentialsType": "ACCESS_TOKEN", "status": "SUCCESS"}


def test_sdk_telemetry_attributes_and_server_rpc(sim):
    device = start_sdk_script("sdk_device.py", sim.host, sim.mqtt_port, "pre-board-1-token")
    try:
        line = device.stdout.readline()
        assert line, device.stderr.read()
        ready = json.loads(line)
        assert ready["telemetry_rc"] == 0 and ready["attributes_rc"] == 0

        status, reply = sim.control("POST", "/devices/pre-board-1/rpc",
                                    {"method": "setRelay", "params": {"relay": 2, "on": True}, "timeout": 20})
        assert status == 200, reply
        assert reply["response"] == {"echo": {"relay": 2, "on": True}, "method": "setRelay", "handledBy": "sdk"}

        telemetry = sim.wait_for(lambda: sim.events("telemetry", "pre-board-1"), what="SDK telemetry")
        assert telemetry[0]["entries"][0]["values"] == {"temperature": 21.5, "humidity": 40, "label": "sdk"}
        attributes = sim.wait_for(lambda: sim.events("attributes", "pre-board-1"), what="SDK attributes")
        assert attributes[0]["values"] == {"firmwareVersion": "1.2.3", "model": "sim-board"}
        # The SDK (MQTT 5) subscribes to its four topics and asks for getSessionLimits on connect.
        connect = [e for e in sim.events("connect") if e.get("device") == "pre-board-1"][-1]
        assert connect["protocol"] == "5"
        granted = {f["filter"]: f["returnCode"] for e in sim.events("subscribe", "pre-board-1") for f in e["filters"]}
        assert granted["v1/devices/me/rpc/request/+"] == 1 and granted["v1/devices/me/attributes"] == 1
        limits = sim.wait_for(lambda: [e for e in sim.events("client_rpc_response", "pre-board-1")
                                       if "maxPayloadSize" in e["response"]], what="the getSessionLimits answer")
        assert limits[0]["response"]["maxPayloadSize"] == 65536
    finally:
        device.stdin.close()
        device.wait(timeout=20)

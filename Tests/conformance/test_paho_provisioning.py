"""ThingsBoard's documented MQTT provisioning flow, with paho-mqtt: username `provision`, subscribe to
/provision/response, publish the request, read the token, connect with it, send telemetry."""
import json
import threading

import paho.mqtt.client as mqtt

from conftest import PROVISION_KEY, PROVISION_SECRET


def provision(sim, request, protocol=mqtt.MQTTv311):
    done = threading.Event()
    result = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", protocol=protocol)
    client.username_pw_set("provision")

    def on_connect(client, userdata, flags, reason_code, properties):
        result["connack"] = reason_code.value
        client.subscribe("/provision/response", qos=1)
        client.publish("/provision/request", json.dumps(request), qos=1)

    def on_message(client, userdata, message):
        result["topic"] = message.topic
        result["payload"] = message.payload.decode()
        done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(sim.host, sim.mqtt_port, keepalive=60)
    client.loop_start()
    try:
        assert done.wait(15), "no provision response within 15 s"
    finally:
        client.disconnect()
        client.loop_stop()
    assert result["connack"] == 0
    assert result["topic"] == "/provision/response"
    return result["payload"]


def connect_device(sim, username, password=None, client_id="", protocol=mqtt.MQTTv311):
    connected = threading.Event()
    outcome = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.username_pw_set(username, password)

    def on_connect(client, userdata, flags, reason_code, properties):
        outcome["rc"] = reason_code.value
        connected.set()

    client.on_connect = on_connect
    client.connect(sim.host, sim.mqtt_port, keepalive=60)
    client.loop_start()
    assert connected.wait(10), "no CONNACK within 10 s"
    return client, outcome["rc"]


def test_documented_flow_token_then_telemetry(sim):
    body = provision(sim, {"deviceName": "paho-board-1", "provisionDeviceKey": PROVISION_KEY,
                           "provisionDeviceSecret": PROVISION_SECRET})
    response = json.loads(body)
    assert list(response.keys()) == ["credentialsValue", "credentialsType", "status"]
    assert response["status"] == "SUCCESS" and response["credentialsType"] == "ACCESS_TOKEN"
    token = response["credentialsValue"]
    assert len(token) == 20 and token.isalnum()
    assert body == json.dumps(response, separators=(",", ":"))

    client, rc = connect_device(sim, token)
    try:
        assert rc == 0
        info = client.publish("v1/devices/me/telemetry", json.dumps({"temperature": 22.75, "door": "open"}), qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()

    events = sim.wait_for(lambda: sim.events("telemetry", "paho-board-1"), what="the telemetry event")
    assert events[0]["entries"][0]["values"] == {"temperature": 22.75, "door": "open"}
    assert sim.events("provision_response")[0]["status"] == "SUCCESS"
    assert token not in sim.events_path.read_text(), "the event log must not hold the token in the clear"


def test_mqtt_basic_and_errors(sim):
    body = provision(sim, {"deviceName": "paho-basic", "provisionDeviceKey": PROVISION_KEY,
                           "provisionDeviceSecret": PROVISION_SECRET, "credentialsType": "MQTT_BASIC",
                           "clientId": "paho-basic-cid", "username": "paho-user", "password": "paho-pass"})
    assert body == ('{"credentialsValue":{"clientId":"paho-basic-cid","userName":"paho-user","password":"paho-pass"},'
                    '"credentialsType":"MQTT_BASIC","status":"SUCCESS"}')
    client, rc = connect_device(sim, "paho-user", "paho-pass", client_id="paho-basic-cid", protocol=mqtt.MQTTv5)
    client.disconnect()
    client.loop_stop()
    assert rc == 0

    assert provision(sim, {"deviceName": "paho-board-2", "provisionDeviceKey": PROVISION_KEY,
                           "provisionDeviceSecret": "wrong"}) == \
        '{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}'
    assert provision(sim, {"deviceName": "paho-basic", "provisionDeviceKey": PROVISION_KEY,
                           "provisionDeviceSecret": PROVISION_SECRET}) == \
        '{"errorMsg":"Failed to provision device!","status":"FAILURE"}'

    client, rc = connect_device(sim, "not-a-token")
    client.loop_stop()
    # paho reports MQTT 3.1.1's CONNACK 5 as reason 135 "Not authorized"; CONNACK 4 would be 134.
    assert rc == 135, "an unknown token must get CONNACK 5 (never 4)"

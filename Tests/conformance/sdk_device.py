"""Runs under the tb-mqtt-client environment: a TBDeviceMqttClient that sends telemetry and attributes, answers
server-side RPCs, prints READY, and disconnects when its standard input closes."""
import json
import sys

from tb_device_mqtt import TBDeviceMqttClient

from sdk_support import wait_connected

host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = TBDeviceMqttClient(host, port=port, username=token)


def on_rpc(request_id, body):
    client.send_rpc_reply(request_id, {"echo": body.get("params"), "method": body.get("method"), "handledBy": "sdk"})


client.set_server_side_rpc_request_handler(on_rpc)
client.connect()
wait_connected(client)
telemetry_rc = client.send_telemetry({"temperature": 21.5, "humidity": 40, "label": "sdk"}).get()
attributes_rc = client.send_attributes({"firmwareVersion": "1.2.3", "model": "sim-board"}).get()
print(json.dumps({"ready": True, "telemetry_rc": telemetry_rc, "attributes_rc": attributes_rc}), flush=True)
sys.stdin.read()
client.disconnect()

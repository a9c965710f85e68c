"""Runs under the tb-mqtt-client environment: connects with a token, sends TBDeviceMqttClient.claim(secret, duration),
waits for its PUBACK and prints the result code as JSON."""
import json
import sys

from tb_device_mqtt import TBDeviceMqttClient

from sdk_support import wait_connected

host, port, token, secret, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
client = TBDeviceMqttClient(host, port=port, username=token)
client.connect()
wait_connected(client)
rc = client.claim(secret_key=secret, duration=duration).get()
print(json.dumps({"claim_rc": rc}), flush=True)
client.disconnect()

"""Runs under the tb-mqtt-client environment: TBDeviceMqttClient.provision(...), prints the result as JSON."""
import json
import sys

from tb_device_mqtt import TBDeviceMqttClient

host, port, key, secret, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
token = sys.argv[6] if len(sys.argv) > 6 else None
credentials = TBDeviceMqttClient.provision(host, key, secret, port=port, device_name=name, access_token=token)
print(json.dumps(credentials))

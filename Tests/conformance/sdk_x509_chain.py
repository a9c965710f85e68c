"""Runs under the tb-mqtt-client environment: connects over TLS presenting a certificate chain (no token), as
ThingsBoard's X.509 chain provisioning expects, sends one telemetry message and prints the result code as JSON."""
import json
import sys

from tb_device_mqtt import TBDeviceMqttClient

from sdk_support import wait_connected

host, port, ca, chain, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
client = TBDeviceMqttClient(host, port=port)
client.connect(tls=True, ca_certs=ca, cert_file=chain, key_file=key)
wait_connected(client)
rc = client.send_telemetry({"temperature": 21.5, "source": "tb-mqtt-client"}).get()
print(json.dumps({"telemetry_rc": rc}), flush=True)
client.disconnect()

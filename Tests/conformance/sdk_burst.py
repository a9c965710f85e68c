"""Runs under the tb-mqtt-client environment: a TBDeviceMqttClient that waits for its getSessionLimits answer, then
sends a burst of telemetry: one large list (which the SDK splits by its data-point limit), an optional pause, then
single readings. Prints a JSON summary."""
import json
import sys
import time

from tb_device_mqtt import TBDeviceMqttClient

host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
batch, singles, pause = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
client = TBDeviceMqttClient(host, port=port, username=token)
client.connect()
deadline = time.monotonic() + 20
while not (client.is_connected() and client.rate_limits_received):
    if time.monotonic() > deadline:
        print(json.dumps({"error": "not connected or no session limits within 20 s"}), flush=True)
        sys.exit(2)
    time.sleep(0.05)
started = time.monotonic()
now = int(time.time() * 1000)
infos = []
if batch:
    infos.append(client.send_telemetry([{"ts": now - 1000 + i, "values": {"a": i, "b": i * 2, "c": "x"}}
                                        for i in range(batch)]))
    infos[-1].get()
time.sleep(pause)
for i in range(singles):
    infos.append(client.send_telemetry({"s": i, "t": i + 0.5, "u": True}))
codes = [info.get() for info in infos]
elapsed = time.monotonic() - started
print(json.dumps({"codes": codes, "seconds": elapsed, "connected": client.is_connected()}), flush=True)
client.disconnect()

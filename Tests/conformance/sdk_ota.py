"""Runs under the tb-mqtt-client environment: TBDeviceMqttClient.get_firmware_update() with the given chunk size.
The SDK requests the fw_* shared attributes (or gets them pushed), downloads the package in chunks and verifies its
checksum itself; this script's callback runs only once the SDK's verification passed (a failed check makes the SDK
send FAILED and start over). It then reports UPDATING and UPDATED as the SDK's default callback does, waits for the
last PUBACK and prints one JSON line: {"version", "size", "sha256"} of what it received."""
import hashlib
import json
import sys
import threading

from tb_device_mqtt import TBDeviceMqttClient, TBFirmwareState

from sdk_support import wait_connected

host, port, token, chunk_size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
client = TBDeviceMqttClient(host, port=port, username=token, chunk_size=chunk_size)
done = threading.Event()
result = {}


def on_firmware_received(tb_client, firmware_data, version_to):
    tb_client.update_firmware_info(state=TBFirmwareState.UPDATING)
    info = tb_client.current_firmware_info
    info.update({"current_fw_title": tb_client.firmware_info.get("fw_title"), "current_fw_version": version_to,
                 "fw_state": TBFirmwareState.UPDATED.value, "fw_error": ""})
    tb_client.send_telemetry(info).get()
    result.update({"version": version_to, "size": len(firmware_data),
                   "sha256": hashlib.sha256(firmware_data).hexdigest()})
    done.set()


client.set_on_firmware_received_callback(on_firmware_received)
client.connect()
wait_connected(client)
client.get_firmware_update()
print(json.dumps({"requested": True}), flush=True)
if not done.wait(60):
    print(json.dumps({"timeout": True, "state": client.current_firmware_info}), flush=True)
    sys.exit(3)
print(json.dumps(result), flush=True)
client.stop()
client.disconnect()

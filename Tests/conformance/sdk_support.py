"""Shared by the sdk_*.py scripts (run under the tb-mqtt-client environment, from this folder)."""
import sys
import time


def wait_connected(client, timeout=20):
    """Waits for TBDeviceMqttClient's CONNACK; prints NOT CONNECTED and exits 2 after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        if time.monotonic() > deadline:
            print("NOT CONNECTED", flush=True)
            sys.exit(2)
        time.sleep(0.05)

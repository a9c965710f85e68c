"""Shared by the SDK scripts (run under the tb-mqtt-client environment)."""
import sys
import time


def connect(client, timeout=20):
    """Connects a TBDeviceMqttClient and waits for its CONNACK; prints NOT CONNECTED and exits 2 after `timeout` s."""
    client.connect()
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        if time.monotonic() > deadline:
            print("NOT CONNECTED", flush=True)
            sys.exit(2)
        time.sleep(0.05)

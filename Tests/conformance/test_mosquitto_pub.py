"""mosquitto_pub -l at QoS 1 delivering 2000 telemetry messages, every one of which must reach the event log."""
import json
import shutil
import subprocess


def test_two_thousand_messages(sim):
    binary = shutil.which("mosquitto_pub")
    assert binary, "mosquitto_pub is missing: scripts/test.sh installs mosquitto-clients"
    lines = "".join(json.dumps({"seq": i, "value": i * 0.5}) + "\n" for i in range(2000))
    result = subprocess.run([binary, "-h", sim.host, "-p", str(sim.mqtt_port), "-u", "bulk-board-token", "-i", "bulk",
                             "-t", "v1/devices/me/telemetry", "-q", "1", "-l"],
                            input=lines, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    events = sim.wait_for(lambda: (lambda e: e if len(e) >= 2000 else None)(sim.events("telemetry", "bulk-board")),
                          timeout=30, what="2000 telemetry events")
    seqs = sorted(e["entries"][0]["values"]["seq"] for e in events)
    assert seqs == list(range(2000))
    assert all(e["qos"] == 1 for e in events)
    status, body = sim.control("GET", "/devices/bulk-board/telemetry?limit=1")
    assert status == 200 and body["received"] == 2000

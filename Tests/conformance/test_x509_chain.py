"""X.509 certificate chain provisioning (ThingsBoard >= 3.5): a device connects to the TLS port presenting its leaf
certificate and the intermediates, and tb-sim, like ThingsBoard, creates it from the leaf's CN through a device
profile of type X509_CERTIFICATE_CHAIN whose CA certificate is in the chain. ThingsBoard's Python SDK does this with
TBDeviceMqttClient.connect(tls=True, ca_certs, cert_file, key_file); a paho client with a leaf from a CA no profile
holds gets CONNACK "identifier rejected" (ThingsBoard's refusal with a client id) and no device."""
import json
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest

from conftest import ROOT, run_sdk_script


@pytest.fixture
def pki(tmp_path):
    directory = tmp_path / "pki"
    directory.mkdir()
    subprocess.run(["/bin/sh", str(ROOT / "scripts" / "lib" / "chain-pki.sh"), str(directory),
                    "sdk-board.devices.example.com", "other.devices.example.com", "stranger.devices.example.com"],
                   check=True, capture_output=True)
    return directory


@pytest.fixture
def chain_sim(make_sim, pki):
    profile = f"""
[[profiles]]
name = "chain-boards"
strategy = "X509_CERTIFICATE_CHAIN"
x509_ca_file = "{pki / 'intermediate.crt'}"
x509_cn_regex = '(.*)\\.devices\\.example\\.com'
allow_create = true
"""
    return make_sim(profile, ["--mqtts-port", "0", "--tls-cert-file", str(pki / "server.crt"),
                              "--tls-key-file", str(pki / "server.key")])


def test_sdk_connects_with_a_chain_and_the_device_is_created_from_the_cn(chain_sim, pki):
    sim = chain_sim
    assert sim.mqtts_port
    result = run_sdk_script("sdk_x509_chain.py", sim.host, sim.mqtts_port, pki / "root.crt", pki / "chain.pem",
                            pki / "leaf.key")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"telemetry_rc": 0}
    status, device = sim.control("GET", "/devices/sdk-board")
    assert status == 200, device
    assert device["profile"] == "chain-boards" and device["credentialsType"] == "X509_CERTIFICATE"
    assert device["credentials"]["certificate"] == (pki / "leaf.crt").read_text(), "the leaf is the device's credentials"
    telemetry = sim.wait_for(lambda: sim.events("telemetry", "sdk-board"), what="the SDK's telemetry")
    assert telemetry[0]["entries"][0]["values"] == {"temperature": 21.5, "source": "tb-mqtt-client"}
    created = [e for e in sim.events("x509_chain") if e.get("outcome") == "created"]
    assert [e["device"] for e in created] == ["sdk-board"]
    connect = [e for e in sim.events("connect") if e.get("device") == "sdk-board"][0]
    assert connect["protocol"] == "5" and connect["clientCertificate"] is True and connect["returnCode"] == 0
    # A second connection finds the device the first one created.
    again = run_sdk_script("sdk_x509_chain.py", sim.host, sim.mqtts_port, pki / "root.crt", pki / "chain.pem",
                           pki / "leaf.key")
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"telemetry_rc": 0}
    assert sim.events("x509_chain")[-1]["outcome"] == "existing"
    assert [d["name"] for d in sim.control("GET", "/devices")[1] if d["profile"] == "chain-boards"] == ["sdk-board"]


def test_paho_with_a_leaf_from_an_unknown_ca_is_refused(chain_sim, pki):
    sim = chain_sim
    answered = threading.Event()
    codes = []

    def on_connect(client, userdata, flags, reason_code, properties):
        codes.append(reason_code.value)
        answered.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stranger-board", protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(pki / "root.crt"), certfile=str(pki / "stranger-chain.pem"),
                   keyfile=str(pki / "stranger.key"))
    client.on_connect = on_connect
    client.connect(sim.host, sim.mqtts_port, keepalive=60)
    client.loop_start()
    try:
        assert answered.wait(15), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    # ThingsBoard's onValidateDeviceResponse: no device, a client id and no user name -> 0x85 -> MQTT 3.1.1 code 2
    # (which paho reports as the reason code 0x85).
    assert codes == [0x85]
    assert sim.events("connect")[-1]["returnCode"] == 2
    refused = sim.events("x509_chain")[-1]
    assert refused["outcome"] == "refused" and refused["commonName"] == "stranger.devices.example.com"
    assert sim.control("GET", "/devices/stranger")[0] != 200
    assert sim.events("connect")[-1]["kind"] == "refused"

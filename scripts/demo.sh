#!/usr/bin/env bash
# The README's first command: tb-agent on a simulated board, talking to tb-sim, with no hardware and no server.
#
#   scripts/demo.sh              run until Ctrl-C, with a live view
#   scripts/demo.sh --check      run for a few seconds and exit 0 if the agent provisioned and tb-sim received
#                                telemetry (what the test suite runs)
#
# It installs what is missing (Debian packages), builds, starts tb-sim on a free loopback port and `tb-agent run`
# on a writable copy of board/simulated/ whose sensor values drift, and prints what happens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/lib/fail-loudly.sh
. "$root/scripts/lib/fail-loudly.sh"
check=false
[ "${1:-}" = "--check" ] && check=true

# shellcheck source=scripts/lib/deps.sh
. "$root/scripts/lib/deps.sh"
ensure_swift
ensure_apt_packages $TB_BUILD_PACKAGES python3 curl

echo "building tb-agent and tb-sim (the first build takes a few minutes)..." >&2
mkdir -p .build
if ! swift build --product tb-agent > .build/demo-build.log 2>&1 || ! swift build --product tb-sim >> .build/demo-build.log 2>&1; then
    grep -vE '^\[[0-9]+/[0-9]+\] ' .build/demo-build.log >&2
    echo "the build failed (log above)" >&2
    exit 1
fi
bin="$root/.build/debug"

demo=$(mktemp -d /tmp/tb-agent-demo.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if $check; then rm -rf "$demo"; else echo "demo files kept in $demo" >&2; fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# A writable copy of the simulated board; its secret file travels with it.
cp -r board/simulated "$demo/board"
cp board/examples/provision-secret.example "$demo/provision-secret"
secret=$(cat "$demo/provision-secret")

cat > "$demo/tb-sim.toml" <<TOML
[[profiles]]
name = "simulated boards"
provision_key = "SIMULATED-PROVISION-KEY"
provision_secret = "$secret"
strategy = "ALLOW_CREATE_NEW_DEVICES"
TOML
"$bin/tb-sim" --config "$demo/tb-sim.toml" --port 0 --ready-file "$demo/tb-sim.ready" \
    --event-log "$demo/events.jsonl" --registry "$demo/registry.json" > "$demo/tb-sim.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$demo/tb-sim.ready" ] && break; sleep 0.1; done
[ -s "$demo/tb-sim.ready" ] || { cat "$demo/tb-sim.out" >&2; echo "tb-sim did not start" >&2; exit 1; }
read -r mqtt_port control_port < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["mqttPort"], r["controlPort"])' "$demo/tb-sim.ready")

# Point the board's config at tb-sim, keep its state in the demo folder, and sample every 2 s.
config="$demo/board/config.toml"
sed -i -e "s/^port = .*/port = $mqtt_port/" \
       -e "s#^state_dir = .*#state_dir = \"$demo/state\"#" \
       -e "s#^device_secret_file = .*#device_secret_file = \"../provision-secret\"#" \
       -e "s/^interval = .*/interval = \"2s\"/" "$config"
"$bin/tb-agent" check-config --config "$config" >&2
device=$("$bin/tb-agent" identity --config "$config")

# Sensor values drift: a random walk written into the simulated sysroot every 2 s.
sys="$demo/board/sysroot/sys"
(
    t=23125; cpu=48000; air=22000; hum=45000
    while sleep 2; do
        t=$((t + RANDOM % 251 - 125)); cpu=$((cpu + RANDOM % 1001 - 500))
        air=$((air + RANDOM % 201 - 100)); hum=$((hum + RANDOM % 1001 - 500))
        for dev in "$sys"/bus/w1/devices/28-*; do
            printf '72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=%d\n' "$t" > "$dev/w1_slave.tmp"
            mv "$dev/w1_slave.tmp" "$dev/w1_slave"; echo "$t" > "$dev/temperature"
        done
        echo "$cpu" > "$sys/class/thermal/thermal_zone0/temp"
        echo "$air" > "$sys/bus/iio/devices/iio:device0/in_temp_input"
        echo "$hum" > "$sys/bus/iio/devices/iio:device0/in_humidityrelative_input"
    done
) &
pids+=($!)

"$bin/tb-agent" run --config "$config" > "$demo/agent.log" 2>&1 &
pids+=($!)

gpio="$demo/board/gpio"
cat >&2 <<TEXT

tb-sim listens on 127.0.0.1:$mqtt_port (control: http://127.0.0.1:$control_port), the agent runs on a simulated
board in $demo/board. Try, in another terminal:
  open the door:            echo 0 > $gpio/GPIO17      (close it: echo 1 > $gpio/GPIO17)
  press the button:         echo 0 > $gpio/GPIO27      hold 5 s, then release: echo 1 > $gpio/GPIO27
  cut the server off 30 s:  curl -s -X POST http://127.0.0.1:$control_port/outage -d '{"seconds":30}'
  "which box is this?":     curl -s -X POST http://127.0.0.1:$control_port/devices/$device/rpc -d '{"method":"identify","params":{"seconds":10}}'
  ask the agent:            $bin/tb-agent status --config $config
  the agent's log:          tail -f $demo/agent.log
  the LED:                  cat $gpio/GPIO22  (1 = lit)
Stop with Ctrl-C.

TEXT

# The live view: the agent's state and LED when they change, and each telemetry message tb-sim receives.
python3 - "$demo/events.jsonl" "$bin/tb-agent" "$config" "$check" <<'PY'
import json, subprocess, sys, time
events, agent, config, check = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "true"
deadline = time.time() + 20 if check else None
last_state, offset, telemetry, provisioned, shown_origin = None, 0, 0, False, False
while deadline is None or time.time() < deadline:
    try:
        status = json.loads(subprocess.run([agent, "status", "--json", "--config", config],
                                           capture_output=True, text=True, timeout=5).stdout or "{}")
    except Exception:
        status = {}
    state = (status.get("state"), status.get("led"))
    if state != last_state and status.get("state"):
        extra = f"  ({status['problem']})" if status.get("problem") else ""
        print(f"agent {status.get('device', '?')}: {state[0]}, LED {state[1]}, spool {status.get('spoolDepth', 0)}{extra}", flush=True)
        last_state = state
    try:
        with open(events) as f:
            f.seek(offset)
            for line in f:
                offset += len(line.encode())
                e = json.loads(line)
                kind = e.get("event")
                if kind == "provision_response":
                    provisioned = provisioned or e.get("status") == "SUCCESS"
                    print(f"tb-sim: provisioning {e.get('device', '')} -> {e.get('status')} ({e.get('credentialsType', '')})", flush=True)
                elif kind == "connect" and e.get("kind") == "device":
                    print(f"tb-sim: {e.get('device') or e.get('clientId')} connected, CONNACK {e.get('returnCode')}", flush=True)
                elif kind == "telemetry":
                    telemetry += 1
                    for entry in e.get("entries", []):
                        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in entry.get("values", {}).items())
                        print(f"tb-sim: telemetry ts={entry.get('ts')} {values}", flush=True)
                elif kind in ("disconnect", "outage", "rpc", "attributes"):
                    print(f"tb-sim: {kind} {e.get('reason', '') or e.get('method', '') or ''}".rstrip(), flush=True)
    except FileNotFoundError:
        pass
    if not shown_origin and status.get("state") == "online":
        out = subprocess.run([agent, "status", "--config", config], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith(("credentials:", "issued:", "stored in:")):
                print("agent " + line, flush=True)
        shown_origin = True
    time.sleep(1)
if check:
    ok = telemetry > 0 and last_state is not None and last_state[0] == "online"
    print(f"demo check: {'ok' if ok else 'FAILED'} (state {last_state}, {telemetry} telemetry messages)", flush=True)
    sys.exit(0 if ok else 1)
PY

"""Re-provisioning that cannot brick a board: the first connects after a re-provisioning are dropped.

Each round: the device is deleted on tb-sim, tb-sim is set to refuse the next 1 to 3 CONNECTs made with the
credentials the next provisioning issues (a bare TCP close, or CONNACK 3, chosen at random: `POST /refuse-connects`
with `afterProvisioning`), and the button is held for a re-provisioning. In every other round the agent is also
killed with SIGKILL right after the first dropped connect, while the new credentials exist only on flash (the
pending generation), and started again.

Each round must end with the agent online, publishing with the new credentials, `credentials.json` holding them,
no pending generation left, no further provisioning session (ThingsBoard would answer FAILURE: the device exists)
and `tb-agent status` not asking for a person. The agent is restarted every round: the hourly re-provisioning
budget (4) would otherwise refuse the fifth long press.
"""

import json
import os
import random
import signal
import time

from harness import (Board, Process, TBSim, Workspace, agent_argv, check, device_name, run, sim_config, status_json,
                     stored_credentials, wait_until)

BUTTON = """
[button]
line = "GPIO27"
bias = "pull-up"
active_low = true
debounce = "20ms"
reprovision_hold = "1s"
"""


def run_scenario(binaries, rounds, report):
    workspace = Workspace("reprovision")
    failed = True
    rng = random.Random(int(os.environ.get("TB_FAULTS_SEED", "0")))
    try:
        sim = TBSim(workspace, binaries, sim_config())
        board = Board(workspace)
        board.set_line("GPIO27", 1)
        board.write_config(sim.mqtt_port, interval="250ms")
        with open(board.config, "a") as f:
            f.write(BUTTON)
        name = device_name(binaries, board)
        code, out, err, _ = run(agent_argv(binaries, board, "provision"))
        check(code == 0, f"provisioning failed ({code}): {err}")
        pending_path = os.path.join(board.state, "credentials.pending.json")

        def token():
            stored = stored_credentials(board.state) or {}
            return stored.get("payload", {}).get("credentials", {}).get("token")

        def start(index):
            return Process(workspace, f"agent-{index}", agent_argv(binaries, board, "run", log_level="debug"))

        agents = 0
        kills = 0
        drops_total = 0
        kinds = set()
        recoveries = []
        for round_index in range(rounds):
            agent = start(agents)
            agents += 1
            check(wait_until(lambda: status_json(binaries, board).get("state") == "online", 30, 0.2),
                  f"round {round_index}: not online at the start: {agent.stderr()[-2000:]}")
            old = token()
            drops = rng.randint(1, 3)
            connack = rng.choice([None, 3])
            kill = round_index % 2 == 1
            status, body = sim.control("POST", "/refuse-connects",
                                       {"count": drops, "afterProvisioning": True, "returnCode": connack})
            check(status == 200, f"tb-sim refused the set-up: {body}")
            offset = sim.events_offset()
            status, body = sim.control("DELETE", f"/devices/{name}")
            check(status == 200, f"deleting the device failed: {body}")
            began = time.monotonic()
            board.set_line("GPIO27", 0)
            time.sleep(1.5)
            board.set_line("GPIO27", 1)

            def decisions():
                return sim.events(offset, "provision_decision")

            check(wait_until(lambda: any(d.get("status") == "SUCCESS" for d in decisions()), 30, 0.1),
                  f"round {round_index}: no successful re-provisioning ({decisions()}): {agent.stderr()[-2000:]}")

            def dropped():
                return [e for e in sim.events(offset, "connect") if e.get("kind") == "dropped"]

            if kill:
                check(wait_until(lambda: len(dropped()) >= 1, 20, 0.02),
                      f"round {round_index}: the new credentials were not tried: {agent.stderr()[-2000:]}")
                agent.kill()
                check(agent.returncode() == -signal.SIGKILL, "the agent was not killed")
                kills += 1
                check(os.path.exists(pending_path) or token() != old,
                      f"round {round_index}: killed after the first connect with the new credentials, and they are "
                      f"on flash neither as pending nor as current")
                agent = start(agents)
                agents += 1

            device = sim.control("GET", f"/devices/{name}")[1] or {}
            new = (device.get("credentials") or {}).get("token")
            check(new and new != old, f"round {round_index}: tb-sim has no new token: {device}")

            def settled():
                status = status_json(binaries, board)
                return (status.get("state") == "online" and token() == new and not os.path.exists(pending_path)
                        and len(dropped()) == drops)

            check(wait_until(settled, 45, 0.2),
                  f"round {round_index} ({drops} dropped, CONNACK {connack}, killed: {kill}): not online with the new "
                  f"credentials: status {json.dumps(status_json(binaries, board))}, stored token "
                  f"{'new' if token() == new else 'old' if token() == old else token()}, pending "
                  f"{os.path.exists(pending_path)}, {len(dropped())} dropped: {agent.stderr()[-2500:]}")
            recoveries.append(time.monotonic() - began)
            masked = new[:4] + "…"
            check(all(e.get("username") == masked for e in dropped()),
                  f"round {round_index}: a dropped connect was not made with the new credentials: {dropped()}")
            sessions = {e.get("session") for e in sim.events(offset, "connect")
                        if e.get("kind") == "device" and e.get("username") == masked}
            check(wait_until(lambda: any(t[1] in sessions for t in sim.telemetry(name, offset)), 10, 0.1),
                  f"round {round_index}: no telemetry with the new credentials")
            check(len(decisions()) == 1, f"round {round_index}: provisioned again after the new credentials were "
                                         f"issued: {decisions()}")
            drops_total += drops
            kinds.add("bare closes" if connack is None else "CONNACK 3")
            stopped = agent.terminate(10)
            check(stopped == 0, f"round {round_index}: SIGTERM gave {stopped}")

        report(f"{rounds} re-provisionings with the first 1-3 connects dropped ({drops_total} in all: "
               f"{' and '.join(sorted(kinds))}), {kills} with the agent killed while the new credentials were pending: online with "
               f"them each time after {min(recoveries):.1f}-{max(recoveries):.1f} s, stored, no person needed, "
               f"never provisioned again")
        failed = False
    finally:
        workspace.close(failed)

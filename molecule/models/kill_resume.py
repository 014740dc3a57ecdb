"""Kill a models-stage transfer halfway, then resume it: prints one JSON object.

    python kill_resume.py INVENTORY MODEL_DIR

On models-1: removes extra/weights.bin, shapes the host's veth (tc tbf, only this lab's
container, removed at the end) so the controller's push takes seconds, starts the stage, kills
it (its whole process group) once the partial file holds a few MiB, then runs the stage again
with the JSON callback and reports the partial size it resumed from, the bytes rsync sent the
second time and the placed file's SHA-256.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from fanout import shape, unshape  # noqa: E402  (tc tbf on this lab's container veths)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_stage import stage_argv, stage_env  # noqa: E402

HOST = "models-1"
REL = "extra/weights.bin"


def node(*cmd: str) -> str:
    proc = subprocess.run(["docker", "exec", HOST, *cmd], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def main() -> None:
    inventory, model_dir = sys.argv[1], sys.argv[2]
    partial = f"{model_dir}/.provision/partial/{REL}"
    node("rm", "-f", f"{model_dir}/{REL}", partial)
    playbook = stage_argv(inventory, "--limit", HOST)
    shaped = shape([HOST], 40)
    try:
        proc = subprocess.Popen(
            playbook,
            cwd=ROOT,
            env=stage_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        have = 0
        while time.monotonic() < deadline and proc.poll() is None:
            have = int(node("sh", "-c", f"stat -c %s {partial} 2>/dev/null || echo 0") or 0)
            if have > 8 * 1024 * 1024:
                break
            time.sleep(0.5)
        if proc.poll() is not None:
            raise SystemExit(f"the stage ended (rc {proc.returncode}) before the transfer could be killed")
        os.killpg(proc.pid, signal.SIGKILL)  # the stage, its workers and the controller's rsync
        proc.wait()
    finally:
        unshape(shaped)
    resumed_from = int(node("sh", "-c", f"stat -c %s {partial} 2>/dev/null || echo 0") or 0)
    env = stage_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    run = subprocess.run(playbook, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    sent = None
    for play in json.loads(run.stdout)["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].startswith("Place the missing files"):
                for item in task["hosts"].get(HOST, {}).get("results", []):
                    sent = json.loads(item["stdout"]).get("sent_bytes", {}).get(REL)
    sha = node("sha256sum", f"{model_dir}/{REL}").split()[0] if run.returncode == 0 else ""
    print(json.dumps({"resumed_from": resumed_from, "sent_bytes": sent, "sha256": sha, "rc": run.returncode}))


if __name__ == "__main__":
    main()

"""A no-change re-run of `provision up` on 1, 5 and 10 test hosts, against the same playbooks
under stock `ansible-playbook` with a default configuration, in one run.

Usage (root, on a machine that can run the local lab): python bench/up_speed.py [--sizes 1,5,10]
Starts lab hosts bench1..benchN (provision.lab), converges them once, then times each case
twice and keeps the faster. Prints a markdown table; --out FILE also writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
try:
    import ansible_mitogen  # noqa: F401

    MITOGEN = True
except ImportError:
    MITOGEN = False

LAB_VARS = (ROOT / "inventory" / "lab.yml").read_text().split("  vars:\n", 1)[1].split("    provision_")[0]


def inventory(names: list[str]) -> str:
    hosts = "".join(f"    {n}:\n" for n in names)
    return (
        "all:\n  vars:\n" + LAB_VARS + "    provision_models_dir: /srv/models\n"
        "    provision_memory_gib: 2\n  hosts:\n" + hosts
    )


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return took, proc.stdout


def stock_recap(stdout: str) -> tuple[int, int]:
    """(changed, tasks per host) from ansible-playbook's PLAY RECAP."""
    changed, tasks = 0, 0
    for m in re.finditer(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=\d+\s+skipped=(\d+)", stdout):
        changed += int(m.group(2))
        tasks = int(m.group(1)) + int(m.group(3))
    return changed, tasks


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,5,10")
    ap.add_argument("--out")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    names = [f"bench{i}" for i in range(1, max(sizes) + 1)]
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    subprocess.run([sys.executable, "-m", "provision.lab", "up", *names], check=True, env=env)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stock_cfg = Path(tmp) / "stock.cfg"
        stock_cfg.write_text("[defaults]\n")  # every setting at Ansible's default
        for n in sizes:
            inv = Path(tmp) / f"bench{n}.yml"
            inv.write_text(inventory(names[:n]))
            provision = [sys.executable, "-m", "provision", "up", str(inv), "--json"]
            linear_env = dict(env, PROVISION_STRATEGY="linear")
            timed(provision, linear_env)  # converge (first run may change things)

            def no_change_runs(
                run_env: dict[str, str], cmd: list[str] = provision
            ) -> tuple[list[float], dict]:
                times, data = [], {}
                for _ in range(2):
                    took, out = timed(cmd, run_env)
                    data = json.loads(out)
                    assert data["ok"] and sum(h["changed"] for h in data["hosts"].values()) == 0, data
                    times.append(took)
                return times, data

            ours, data = no_change_runs(linear_env)
            fast = no_change_runs(dict(env, PROVISION_STRATEGY="mitogen"))[0] if MITOGEN else []
            tasks = max(h["ok"] + h["skipped"] for h in data["hosts"].values())
            from provision.up import extravars, plan_for

            ev = Path(tmp) / "extravars.json"
            ev.write_text(json.dumps(extravars(plan_for(inv))))
            stock_env = dict(env, ANSIBLE_CONFIG=str(stock_cfg), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
            stock = []
            stock_cmd = [str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/site.yml", "-e", f"@{ev}"]
            for _ in range(2):
                took, out = timed(stock_cmd, stock_env)
                changed, stock_tasks = stock_recap(out)
                assert changed == 0, out[-2000:]
                stock.append(took)
            row = {
                "hosts": n,
                "tasks_per_host": tasks,
                "provision_s": round(min(ours), 2),
                "stock_s": round(min(stock), 2),
                "ratio": round(min(stock) / min(ours), 2),
                "provision_mitogen_s": round(min(fast), 2) if fast else None,
                "ratio_mitogen": round(min(stock) / min(fast), 2) if fast else None,
                "provision_ms_per_host_task": round(1000 * min(ours) / (n * tasks), 1),
                "stock_ms_per_host_task": round(1000 * min(stock) / (n * max(stock_tasks, 1)), 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    subprocess.run([sys.executable, "-m", "provision.lab", "down"], check=True, env=env)
    print(
        "\n| hosts | tasks/host | stock ansible-playbook | provision up | stock / provision "
        "| provision up + Mitogen | stock / Mitogen | ms per host-task (provision / stock) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hosts']} | {r['tasks_per_host']} | {r['stock_s']} s | {r['provision_s']} s | "
            f"{r['ratio']}x | {r['provision_mitogen_s']} s | {r['ratio_mitogen']}x | "
            f"{r['provision_ms_per_host_task']} / {r['stock_ms_per_host_task']} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`provision status` on N lab hosts, against pyinfra running one shell command on the same hosts.

Usage (root; starts N lab hosts in their own lab state dir, removes them at the end):

    python bench/status_speed.py [--hosts 20] [--runs 5] [--pyinfra /path/to/venv/bin/pyinfra]

pyinfra is not a dependency: install it into a separate venv to compare (it patches the
standard library with gevent when imported, so it never runs inside provision's process).
The two are run alternately, so load from other work on the machine hits both alike. Prints a
table and one JSON line; docs/benchmarks.md records the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    return time.monotonic() - started, proc.returncode


def _pyinfra_inventory(hosts_yml: Path, out: Path) -> None:
    hosts = yaml.safe_load(hosts_yml.read_text())["all"]["children"]["lab"]["hosts"]
    lines = ["hosts = ["]
    for v in hosts.values():
        data = {
            "ssh_user": "root",
            "ssh_key": v["ansible_ssh_private_key_file"],
            "ssh_known_hosts_file": str(hosts_yml.parent / "known_hosts"),
            "ssh_strict_host_key_checking": "accept-new",
        }
        lines.append(f"    ({v['ansible_host']!r}, {data!r}),")
    out.write_text("\n".join([*lines, "]", ""]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pyinfra", default="", help="a pyinfra executable (in its own venv)")
    args = parser.parse_args()
    lab_dir = Path(tempfile.mkdtemp(prefix="provision-status-bench-"))
    env = {**os.environ, "PROVISION_LAB_DIR": str(lab_dir)}
    names = [f"sb{i:02d}" for i in range(1, args.hosts + 1)]
    py = sys.executable
    try:
        subprocess.run([py, "-m", "provision.lab", "up", *names], env=env, check=True, timeout=900)
        inventory = lab_dir / "hosts.yml"
        pyinv = lab_dir / "pyinfra_inventory.py"
        _pyinfra_inventory(inventory, pyinv)
        status_cmd = [py, "-m", "provision", "status", str(inventory), "--json"]
        probe = "cat /proc/uptime; nvidia-smi -L || true"
        pyinfra_cmd = [args.pyinfra, "-y", str(pyinv), "exec", "--", probe]
        times: dict[str, list[float]] = {"provision status": [], "pyinfra exec": []}
        for _ in range(args.runs + 1):  # the first round opens the SSH connections: not counted
            for label, argv in (("provision status", status_cmd), ("pyinfra exec", pyinfra_cmd)):
                if label == "pyinfra exec" and not args.pyinfra:
                    continue
                seconds, rc = _timed(argv, env)
                if rc not in (0, 1):
                    raise SystemExit(f"{label} failed with exit code {rc}")
                times[label].append(seconds)
        result = {"hosts": args.hosts, "runs": args.runs, "load_avg_1m": os.getloadavg()[0]}
        print(f"{'tool':<18} {'first':>7} {'median':>7} {'min':>7} {'max':>7}  (s, {args.hosts} hosts)")
        for label, values in times.items():
            if not values:
                continue
            rest = values[1:]
            row = {"first": values[0], "median": statistics.median(rest), "min": min(rest), "max": max(rest)}
            result[label] = {k: round(v, 2) for k, v in row.items()}
            print(f"{label:<18} " + " ".join(f"{v:7.2f}" for v in row.values()))
        print(json.dumps(result))
    finally:
        subprocess.run([py, "-m", "provision.lab", "down"], env=env, check=False, timeout=300)
    return 0


if __name__ == "__main__":
    sys.exit(main())

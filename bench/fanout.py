"""Fan-out benchmark: a 1 GiB bundle placed on 1 and on 6 lab hosts whose links are shaped.

    sudo PROVISION_LAB_DIR=DIR python -m provision.lab up fan-1 ... fan-6
    sudo PROVISION_LAB_DIR=DIR python bench/fanout.py --hosts fan-1,...,fan-6 [--rate-mbit 200]

Each host's link is shaped to the same rate in both directions with tc tbf on its veth pair:
the host-side end (traffic into the container) and the container's eth0 (traffic out of it),
found through the container's iflink. Only the named containers of this lab are shaped, and
the shaping is removed at the end. The controller's own uplink is not shaped in the lab, so
the naive baseline pushes from the controller one host at a time (what one controller uplink
of the same rate gives); fan-out pushes to one root and the nodes copy from each other.

Runs: fan-out to 1 host (the single-transfer time), fan-out to all hosts, naive to all
hosts (models_fanout_degree=-1, --forks 1). Prints a Markdown table (and --json).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

INVENTORY = """all:
  vars:
    ansible_host: >-
      {{{{ (lookup('ansible.builtin.file', '{lab}/hosts.yml') | from_yaml)
         .all.children.lab.hosts[inventory_hostname].ansible_host }}}}
    ansible_user: root
    ansible_ssh_private_key_file: {lab}/id_ed25519
    ansible_ssh_common_args: -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={lab}/known_hosts
    provision_models_dir: /srv/bench-models
    provision_memory_gib: 2
    provision_pools: {{general: {{path: /v1/, default: true}}}}
    provision_deployments:
      - {{name: bench, engine: llamacpp, model: tiny-llama-test, quantization: F32, context: 256,
         pool: general, source: {{bundle: bundles}}}}
  children:
    nodes:
      hosts:
{hosts}
"""


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout.strip()


def veth_of(container: str) -> tuple[str, int]:
    """The host-side veth of the container's eth0 (its iflink, read from the container's own
    sysfs: nsenter -n alone would still show the host's /sys), and the container's PID."""
    pid = int(sh("docker", "inspect", "-f", "{{.State.Pid}}", container))
    iflink = sh("docker", "exec", container, "cat", "/sys/class/net/eth0/iflink")
    net = Path("/sys/class/net")
    found = [d.name for d in net.iterdir() if (d / "ifindex").read_text().strip() == iflink]
    if len(found) != 1 or not found[0].startswith("veth") or not (net / found[0] / "brport").exists():
        raise SystemExit(f"{container}: iflink {iflink} is not a bridged veth here ({found}); not shaping")
    return found[0], pid


def shape(containers: list[str], mbit: int) -> list[tuple[str, int]]:
    shaped = []
    for c in containers:
        veth, pid = veth_of(c)
        tbf = ["root", "tbf", "rate", f"{mbit}mbit", "burst", "256kb", "latency", "50ms"]
        sh("tc", "qdisc", "replace", "dev", veth, *tbf)
        sh("nsenter", "-t", str(pid), "-n", "tc", "qdisc", "replace", "dev", "eth0", *tbf)
        shaped.append((veth, pid))
    return shaped


def unshape(shaped: list[tuple[str, int]]) -> None:
    for veth, pid in shaped:
        sh("tc", "qdisc", "del", "dev", veth, "root", check=False)
        sh("nsenter", "-t", str(pid), "-n", "tc", "qdisc", "del", "dev", "eth0", "root", check=False)


def make_bundle(work: Path, total_mib: int, files: int) -> Path:
    src = work / "src"
    src.mkdir()
    per = total_mib // files
    for i in range(files):
        with (src / f"model-{i + 1:05d}-of-{files:05d}.gguf").open("wb") as fh:
            for _ in range(per):
                fh.write(os.urandom(MIB))
    subprocess.run(
        [sys.executable, "-m", "provision", "models", "bundle", "tiny-llama-test", "--quant", "F32",
         "--from-path", str(src), "--out", str(work / "bundles")],
        check=True, capture_output=True,
    )
    return work / "bundles"


def run(work: Path, hosts: list[str], limit: list[str], extra: list[str]) -> float:
    for h in limit:
        sh("docker", "exec", h, "rm", "-rf", "/srv/bench-models")
    started = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(work / "inventory.yml"), str(ROOT / "playbooks/models.yml"),
         "--limit", ",".join(limit), *extra],
        cwd=ROOT, capture_output=True, text=True,
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-2000:])
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", required=True, help="comma-separated lab hosts (containers of this lab)")
    parser.add_argument("--rate-mbit", type=int, default=200)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lab = os.environ.get("PROVISION_LAB_DIR")
    if not lab:
        raise SystemExit("set PROVISION_LAB_DIR to the lab state dir of the benchmark's own hosts")
    hosts = args.hosts.split(",")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still removes the shaping
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="provision-fanout-") as tmp:
        work = Path(tmp)
        make_bundle(work, args.size_mib, args.files)
        (work / "inventory.yml").write_text(
            INVENTORY.format(lab=lab, hosts="\n".join(f"        {h}:" for h in hosts))
        )
        shaped = shape(hosts, args.rate_mbit)
        try:
            results["single"] = run(work, hosts, hosts[:1], [])
            results["fanout"] = run(work, hosts, hosts, [])
            results["naive"] = run(work, hosts, hosts, ["-e", "models_fanout_degree=-1", "--forks", "1"])
        finally:
            unshape(shaped)
            for h in hosts:
                sh("docker", "exec", h, "rm", "-rf", "/srv/bench-models", check=False)
    ideal = args.size_mib * MIB * 8 / (args.rate_mbit * 1e6)
    table = [
        "| run | hosts | wall time (s) | / single-host |",
        "|---|---|---|---|",
        f"| one transfer (fan-out to 1 host) | 1 | {results['single']:.1f} | 1.00 |",
        f"| fan-out (pipelined, peers) | {len(hosts)} | {results['fanout']:.1f} | "
        f"{results['fanout'] / results['single']:.2f} |",
        f"| naive: controller to each host in turn | {len(hosts)} | {results['naive']:.1f} | "
        f"{results['naive'] / results['single']:.2f} |",
    ]
    summary = {
        "rate_mbit": args.rate_mbit, "size_mib": args.size_mib, "files": args.files, "hosts": len(hosts),
        "ideal_one_transfer_s": round(ideal, 1), **{k: round(v, 1) for k, v in results.items()},
    }
    if args.json:
        print(json.dumps(summary))
    print(f"{args.size_mib} MiB in {args.files} files, links shaped to {args.rate_mbit} Mbit/s each way "
          f"(one transfer ideally {ideal:.1f} s); wall time of the whole models stage")
    print("\n".join(table))


if __name__ == "__main__":
    main()

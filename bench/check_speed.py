"""How long `provision check` takes on a generated 500-host inventory (goal: under 2 s).

Usage: python bench/check_speed.py [--hosts 500] [--runs 5]
Times the real command in a fresh process each run (interpreter start included) and prints
the median; writes nothing but a temporary inventory.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

MODELS = [
    ("vllm", "llama-3.1-8b", "AWQ", 1, "A100-80GB", 1),
    ("vllm", "llama-3.3-70b", "AWQ", 2, "A100-80GB", 2),
    ("vllm", "qwen2.5-72b", "GPTQ", 4, "H100-80GB", 4),
    ("ollama", "qwen2.5-32b", "Q4_K_M", 1, "L40S", 1),
    ("llamacpp", "mistral-7b", "Q5_K_M", 1, "RTX-4090", 1),
]


def generate(hosts: int) -> dict:
    groups: dict[str, dict] = {}
    for i in range(hosts):
        engine, model, quant, tp, gpu, count = MODELS[i % len(MODELS)]
        group = groups.setdefault(
            f"pool{i % len(MODELS)}",
            {
                "hosts": {},
                "vars": {
                    "provision_gpus": {"model": gpu, "count": count},
                    "provision_deployments": [
                        {
                            "name": f"d{i % len(MODELS)}",
                            "engine": engine,
                            "model": model,
                            "quantization": quant,
                            "tensor_parallel": tp,
                            "context": 8192,
                            "concurrency": 8,
                            "pool": f"pool{i % len(MODELS)}",
                        }
                    ],
                },
            },
        )
        group["hosts"][f"gpu-{i:04d}"] = {"ansible_host": f"10.{i // 250}.{i % 250}.10"}
    pools = {name: {"path": "/v1/" if name == "pool0" else f"/v1/{name}/"} for name in groups}
    return {
        "all": {
            "vars": {"provision_pools": pools},
            "children": {**groups, "gateway": {"hosts": {"gw": None}}},
        }
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inv = Path(tmp) / "fleet.yml"
        inv.write_text(yaml.safe_dump(generate(args.hosts), sort_keys=False))
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "provision", "check", str(inv), "--json"],
                capture_output=True,
                text=True,
            )
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
                return 1
    med = statistics.median(times)
    print(
        f"provision check, {args.hosts} hosts: median {med:.2f} s over {args.runs} runs "
        f"(min {min(times):.2f} s, max {max(times):.2f} s)"
    )
    return 0 if med < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())

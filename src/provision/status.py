"""`provision status INVENTORY`: where the fleet stands, read-only, in seconds.

One SSH session per host, all in parallel (multiplexed, so a repeated call reuses the
connection), runs provision/probe.py with `python3 -`: GPUs and their memory, driver and CUDA,
installed engine versions, and per planned deployment its unit or container, its model files,
and the engine contract's health check (health URL answers AND a one-token completion
succeeds). Versions that differ from what the inventory and the roles pin are reported as drift.

Why not a playbook: ansible-playbook spends about 2 s starting up before it reaches a host and
then runs one module per task; a status query must answer in under 3 s for 20 hosts. Why not
pyinfra: see docs/running.md ("provision status").
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provision import gpufacts
from provision.connection import Connection, on_each_host
from provision.fleetplan import FleetPlan, plan_fleet
from provision.inventory import load_fleet

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("probe.py")
HEALTH_PATHS = {"llamacpp": "/health", "vllm": "/health", "tgi": "/health", "ollama": "/api/version"}
# Where the engine roles put a versioned install behind a stable link.
LINKS = {"llamacpp": "/opt/provision/llamacpp/current", "ollama": "/usr/local/bin/ollama"}
PINS = {  # role variable -> what it pins, read from the role's defaults unless the inventory sets it
    "llamacpp": ("llamacpp", "llamacpp_version"),
    "ollama": ("ollama", "ollama_version"),
    "vllm": ("vllm", "vllm_image_tag"),
    "tgi": ("tgi", "tgi_image_tag"),
}


@dataclass
class Gpu:
    index: int
    name: str
    memory_used_mib: int
    memory_total_mib: int
    driver: str


@dataclass
class DeploymentStatus:
    name: str
    engine: str
    healthy: bool
    detail: str
    model_files: int | None = None  # files in model_dir; None when it is missing or unreadable
    model_dir: str = ""  # where the models stage places the files ("" when the plan names none)


@dataclass
class HostStatus:
    host: str
    reachable: bool
    error: str | None = None
    gpus: list[Gpu] = field(default_factory=list)
    gpus_declared: int = 0
    driver: str | None = None
    cuda: str | None = None
    engines: dict[str, str | None] = field(default_factory=dict)
    deployments: list[DeploymentStatus] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reachable and not self.drift and all(d.healthy for d in self.deployments)


@dataclass
class FleetStatus:
    inventory: str
    hosts: list[HostStatus]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "ok": self.ok,
            "seconds": self.seconds,
            "hosts": {h.host: {**asdict(h), "ok": h.ok} for h in self.hosts},
        }


# ----------------------------------------------------------------------------- parsers


def parse_gpus(query_output: str) -> list[Gpu]:
    """The GPU query of role gpu_facts (gpufacts.QUERY_FIELDS), parsed by its own parser."""
    return [
        Gpu(g["index"], g["name"], g["memory_used_mib"] or 0, g["memory_mib"] or 0, g["driver_version"] or "")
        for g in gpufacts.parse_query_csv(query_output)
    ]


def parse_cuda_version(nvidia_smi_banner: str, toolkit_json: str | None) -> str | None:
    """The CUDA toolkit's version when installed (/usr/local/cuda/version.json), else the
    highest CUDA the driver supports (nvidia-smi's banner)."""
    if toolkit_json:
        try:
            return str(json.loads(toolkit_json)["cuda"]["version"])
        except (ValueError, KeyError, TypeError):
            pass
    return gpufacts.parse_banner(nvidia_smi_banner).get("cuda_version") if nvidia_smi_banner else None


def engine_version(engine: str, link_target: str | None) -> str | None:
    """The installed version from the role's versioned install path behind its link."""
    if not link_target:
        return None
    parts = Path(link_target).parts
    if engine == "llamacpp":  # /opt/provision/llamacpp/<version>[-cuda]
        return parts[-1]
    if engine == "ollama":  # /opt/ollama/<version>/bin/ollama
        return parts[-3] if len(parts) >= 3 else None
    return None


def image_tag(container_status: str) -> str | None:
    """'running vllm/vllm-openai:v0.28.0@sha256:...' -> 'v0.28.0'."""
    words = container_status.split()
    if len(words) < 2:
        return None
    ref = words[1].split("@")[0]
    return ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else None


# ----------------------------------------------------------------------------- the run


def _role_default(role: str, var: str) -> Any:
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    try:
        return (yaml.safe_load(path.read_text()) or {}).get(var)
    except (OSError, yaml.YAMLError):
        return None


def _unit_or_container(engine: str, name: str) -> dict[str, str]:
    if engine == "llamacpp":
        return {"unit": f"llamacpp-{name}.service"}
    if engine == "ollama":
        return {"unit": "ollama.service"}
    return {"container": f"{engine}-{name}"}


def probe_request(conn: Connection, deployments: list[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    engines = {d["engine"] for d in deployments}
    items = []
    for d in deployments:
        settings = d.get("settings") or {}
        item = {
            "name": d["name"],
            "engine": d["engine"],
            "port": d["port"],
            "model": settings.get("served_model_name") or settings.get("model_name") or d["model"],
            "health_path": HEALTH_PATHS[d["engine"]],
            "model_dir": d.get("model_dir"),
            **_unit_or_container(d["engine"], d["name"]),
        }
        items.append(item)
    bind = conn.vars.get("provision_engine_bind_address")
    return {
        "gpu_query": gpufacts.QUERY_COMMAND.split(),
        "deployments": items,
        "links": {e: LINKS[e] for e in engines if e in LINKS},
        "address": bind if bind and bind not in ("0.0.0.0", "::") else None,
        "timeout_s": timeout_s,
    }


def run_probe(
    conn: Connection, request: dict[str, Any], control_dir: Path, timeout_s: float
) -> dict[str, Any]:
    script = PROBE.read_text() + f"\nmain(json.loads({json.dumps(json.dumps(request))}))\n"
    python = ["python3", "-I", "-S", "-"]  # isolated, no site: the probe needs the standard library only
    argv = python if conn.local else [*conn.ssh_argv(control_dir), *python]
    budget = timeout_s * (2 * len(request["deployments"]) + 2) + 10
    proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=budget, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise ConnectionError(reason[:300])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def host_status(conn: Connection, plan: dict[str, Any], control_dir: Path, timeout_s: float) -> HostStatus:
    started = time.monotonic()
    deployments = plan.get("deployments", [])
    status = HostStatus(host=conn.host, reachable=False, gpus_declared=plan.get("gpus_declared", 0))
    if conn.error:
        status.error = conn.error
        return status
    try:
        report = run_probe(conn, probe_request(conn, deployments, timeout_s), control_dir, timeout_s)
    except (ConnectionError, subprocess.TimeoutExpired, ValueError, OSError) as exc:
        status.error = str(exc) or type(exc).__name__
        status.seconds = round(time.monotonic() - started, 2)
        return status
    status.reachable = True
    smi = report.get("nvidia_smi") or {}
    status.gpus = parse_gpus(smi.get("out", "")) if smi.get("rc") == 0 else []
    proc = report.get("driver_proc")
    status.driver = (status.gpus[0].driver if status.gpus else None) or (
        gpufacts.parse_proc_version(proc).get("version") if proc else None
    )
    status.cuda = parse_cuda_version(report.get("nvidia_smi_banner") or "", report.get("cuda_toolkit"))
    links = report.get("links") or {}
    for engine in sorted({d["engine"] for d in deployments}):
        status.engines[engine] = engine_version(engine, links.get(engine))
    for d, seen in zip(deployments, report.get("deployments", []), strict=False):
        status.deployments.append(_judge(d, seen, status))
    status.drift += _drift(conn, status)
    status.seconds = round(time.monotonic() - started, 2)
    return status


def _judge(d: dict[str, Any], seen: dict[str, Any], host: HostStatus) -> DeploymentStatus:
    health = seen.get("health") or {}
    completion = seen.get("completion") or {}
    if d["engine"] in ("vllm", "tgi") and seen.get("container"):
        tag = image_tag(seen["container"])
        host.engines[d["engine"]] = tag or host.engines.get(d["engine"])
    healthy = health.get("status") == 200 and bool(completion.get("completion"))
    if healthy:
        detail = f"ok ({completion.get('seconds', 0):.2f} s one-token)"
    elif health.get("status") != 200:
        detail = f"health {health.get('status') or 'no answer'}: {health.get('error', '')}".strip(": ")
    else:
        detail = f"completion failed (status {completion.get('status')}: {completion.get('error', '')})"
    unit = seen.get("unit")
    if unit and unit != "active":
        detail += f"; unit {unit}"
    return DeploymentStatus(
        d["name"], d["engine"], healthy, detail, seen.get("model_files"), d.get("model_dir") or ""
    )


def _drift(conn: Connection, host: HostStatus) -> list[str]:
    out = []
    for engine, installed in host.engines.items():
        role, var = PINS[engine]
        pinned = conn.vars.get(var) or _role_default(role, var)
        if installed is None:
            out.append(f"{engine}: not installed (pinned {pinned})")
        elif pinned and str(installed).removesuffix("-cuda") != str(pinned):
            out.append(f"{engine}: {installed} installed, {pinned} pinned")
    if host.gpus_declared:
        if len(host.gpus) != host.gpus_declared:
            out.append(f"GPUs: {len(host.gpus)} found, {host.gpus_declared} declared")
        branch = conn.vars.get("nvidia_driver_branch") or _role_default(
            "nvidia_driver", "nvidia_driver_branch"
        )
        if host.driver and branch and not host.driver.startswith(f"{branch}."):
            out.append(f"driver: {host.driver} installed, branch {branch} pinned")
    return out


def fleet_status(
    inventory: Path, limit: list[str] | None = None, timeout_s: float = 5.0, plan: FleetPlan | None = None
) -> FleetStatus:
    from provision.up import extravars

    started = time.monotonic()
    if plan is None:
        plan = plan_fleet(load_fleet(inventory), inventory.resolve().parent)
    plans = extravars(plan)["provision_plan"]
    hosts = on_each_host(
        inventory, limit, lambda conn, ctl: host_status(conn, plans.get(conn.host, {}), ctl, timeout_s)
    )
    return FleetStatus(str(inventory), hosts, round(time.monotonic() - started, 2))

"""`provision models verify INVENTORY --on-hosts`: the placed models, re-hashed where they live.

For every host of the plan, every deployment's model_dir is checked by the models stage's own
node helper (roles/models/files/provision_models.py, standard library only), sent over SSH on
stdin and run as `status --check [--rehash] --dir D`: sizes, then the SHA-256 of every file
against the manifest the stage left in `.provision/`. `--check` changes nothing on the host
(no file removed, no stamp written). Hosts run side by side; one host's dirs one after another
(a disk reads fastest one file at a time). A directory without a manifest was not placed by
the models stage: it is reported, and is a failure only when the deployment declares a source.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.connection import Connection, on_each_host
from provision.fleetplan import FleetPlan
from provision.runner import ROLES

HELPER = ROLES / "models" / "files" / "provision_models.py"


@dataclass
class DirCheck:
    deployment: str
    model_dir: str
    declared: bool  # the deployment has a source: the models stage must have placed it
    state: str = "ok"  # ok | bad | not placed | error
    files: int = 0
    bad: list[str] = field(default_factory=list)
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state == "ok" or (self.state == "not placed" and not self.declared)

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "model_dir": self.model_dir,
            "state": self.state,
            "ok": self.ok,
            "files": self.files,
            "bad": self.bad,
            "detail": self.detail,
            "seconds": self.seconds,
        }


@dataclass
class HostCheck:
    host: str
    dirs: list[DirCheck] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(d.ok for d in self.dirs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ok": self.ok,
            "error": self.error,
            "dirs": [d.as_dict() for d in self.dirs],
        }


@dataclass
class FleetCheck:
    inventory: str
    hosts: list[HostCheck]
    rehash: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "inventory": self.inventory,
            "rehash": self.rehash,
            "seconds": self.seconds,
            "hosts": [h.as_dict() for h in self.hosts],
        }


def interpret(deployment: str, model_dir: str, declared: bool, report: dict[str, Any]) -> DirCheck:
    """One `status --check` answer of the node helper -> a DirCheck."""
    check = DirCheck(deployment, model_dir, declared)
    if report.get("failed"):
        check.state, check.detail = "error", str(report.get("msg", ""))[:300]
        return check
    needed = list(report.get("needed") or [])
    corrupt = list(report.get("removed_corrupt") or [])
    check.files = int(report.get("files") or 0)
    if report.get("complete"):
        check.detail = "every file matches the manifest"
        return check
    if not needed and not corrupt:  # --check on a dir without .provision/manifest.json
        check.state = "not placed"
        check.detail = (
            "no manifest: the models stage did not place this directory"
            if declared
            else "no manifest (the model was not placed by the models stage; nothing to check)"
        )
        return check
    check.state = "bad"
    check.bad = sorted(set(needed) | set(corrupt))
    missing = [p for p in needed if p not in corrupt]
    parts = []
    if corrupt:
        parts.append(f"corrupt or truncated: {', '.join(corrupt[:5])}")
    if missing:
        parts.append(f"missing: {', '.join(missing[:5])}")
    check.detail = (
        "; ".join(parts) + " (fix: `provision up INVENTORY` repairs them from the bundle or a peer)"
    )
    return check


def _argv(conn: Connection, control_dir: Path, args: list[str]) -> list[str]:
    python = ["python3", "-I", "-S", "-", *args]
    become = str(conn.vars.get("ansible_become", "")).lower() in ("1", "true", "yes")
    if become and conn.user not in (None, "root"):
        python = ["sudo", "-n", *python]  # .provision/ is root's
    return python if conn.local else [*conn.ssh_argv(control_dir), *python]


def check_host(
    conn: Connection, deployments: list[dict[str, Any]], control_dir: Path, rehash: bool
) -> HostCheck:
    host = HostCheck(conn.host)
    if conn.error:
        host.error = conn.error
        return host
    script = HELPER.read_text()
    for dep in deployments:
        model_dir = dep.get("model_dir")
        if not model_dir:
            continue
        args = ["status", "--check", "--dir", str(model_dir), *(["--rehash"] if rehash else [])]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                _argv(conn, control_dir, args), input=script, capture_output=True, text=True, check=False
            )
        except OSError as exc:
            host.error = str(exc)
            return host
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 255 or not lines:  # ssh's own failure (unreachable, refused)
            reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            host.error = reason[:300]
            return host
        try:
            report = json.loads(lines[-1])
        except ValueError:
            report = {"failed": True, "msg": lines[-1]}
        check = interpret(dep["name"], str(model_dir), bool(dep.get("source")), report)
        check.seconds = round(time.monotonic() - started, 2)
        host.dirs.append(check)
    return host


def verify_on_hosts(
    inventory: Path, plan: FleetPlan, limit: list[str] | None = None, rehash: bool = True
) -> FleetCheck:
    from provision.up import extravars

    started = time.monotonic()
    plans = extravars(plan)["provision_plan"]

    def work(conn: Connection, control_dir: Path) -> HostCheck:
        return check_host(conn, plans.get(conn.host, {}).get("deployments", []), control_dir, rehash)

    hosts = on_each_host(inventory, limit, work)
    return FleetCheck(str(inventory), hosts, rehash, round(time.monotonic() - started, 2))

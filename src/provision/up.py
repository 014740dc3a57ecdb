"""`provision up` / `provision apply`: check, plan, then converge hosts stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provision.errors import InvalidInput, PlanDoesNotFit, Problem
from provision.fleetplan import FleetPlan, plan_fleet
from provision.inventory import load_fleet
from provision.runner import STAGES, RunRequest


def plan_for(inventory: Path) -> FleetPlan:
    """`provision check`, as the first step of every run; raises on errors and on misfits."""
    fleet = load_fleet(inventory)
    plan = plan_fleet(fleet, inventory.resolve().parent)
    if not plan.fits:
        bad = [f"{d.host}/{d.name}" for d in plan.deployments if not d.fits]
        bad += [f"{h.host.name}: {n}" for h in plan.hosts for n in h.notes]
        raise PlanDoesNotFit(
            "the memory plan does not fit, so no host was touched: "
            + "; ".join(bad)
            + ". Run `provision check` for the numbers and what would fit."
        )
    return plan


def extravars(plan: FleetPlan) -> dict[str, Any]:
    """The planner's resolved settings, per host, for the roles to consume as they are."""
    hosts: dict[str, Any] = {}
    for hp in plan.hosts:
        hosts[hp.host.name] = {
            "deployments": [d.as_dict() for d in hp.deployments],
            "gpus_declared": hp.host.gpus.count if hp.host.gpus else 0,
            "gpu_model": hp.gpu_model,
            "gpu_memory_gib": round(hp.gpus[0].capacity_gib, 2) if hp.gpus else 0,
            "models_needed_gib": round(hp.disk_needed_gib, 3),
        }
    return {"provision_plan": hosts}


def request(
    inventory: Path,
    plan: FleetPlan,
    *,
    only: str | None = None,
    limit: str | None = None,
    tags: list[str] | None = None,
    check: bool = False,
    diff: bool = False,
    forks: int | None = None,
    verbosity: int = 0,
    gpu_serial: str | None = None,
    extra: dict[str, Any] | None = None,
) -> RunRequest:
    if only is not None and only not in STAGES:
        raise InvalidInput(
            [Problem("--only", "", f"unknown stage '{only}'", f"use one of {', '.join(STAGES)}")]
        )
    variables = extravars(plan)
    if gpu_serial:
        variables["provision_gpu_serial"] = gpu_serial
    variables.update(extra or {})
    return RunRequest(
        inventory=inventory,
        playbook=f"{only}.yml" if only else "site.yml",
        extravars=variables,
        limit=limit,
        tags=tags or [],
        check=check,
        diff=diff,
        forks=forks,
        verbosity=verbosity,
    )


BATCH_RE = r"^(?:[1-9][0-9]*|(?:[1-9][0-9]?|100)%)$"


def rolling_vars(hosts: list[str], batch: str, max_fail_pct: int, idle_timeout_s: int) -> dict[str, Any]:
    """Extravars that make the engines stage roll (playbooks/engines.yml)."""
    import re

    problems = []
    if not re.match(BATCH_RE, batch):
        problems.append(
            Problem(
                "--batch", "", f"'{batch}' is not a batch size", "give a host count (1) or a percentage (25%)"
            )
        )
    if not 0 <= max_fail_pct <= 100:
        problems.append(Problem("--max-fail", "", f"{max_fail_pct} is not a percentage", "give 0-100"))
    if problems:
        raise InvalidInput(problems)
    return {
        "provision_rolling_hosts": hosts,
        "provision_engines_serial": int(batch) if batch.isdigit() else batch,
        "provision_engines_max_fail_percentage": max_fail_pct,
        "provision_rolling_idle_timeout_s": idle_timeout_s,
    }

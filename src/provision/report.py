"""Human output: per-host, per-GPU tables with memory bars."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from provision.errors import Problem
from provision.fleetplan import FleetPlan
from provision.planner import DeploymentPlan

BAR = 24


def bar(used: float, capacity: float | None) -> Text:
    if not capacity:
        return Text("(not checked)", style="dim")
    frac = used / capacity
    filled = min(BAR, round(frac * BAR))
    style = "green" if frac <= 0.9 else ("yellow" if frac <= 1.0 else "red")
    text = Text("█" * filled, style=style)
    text.append("░" * (BAR - filled), style="dim")
    text.append(f" {used:5.1f}/{capacity:.1f} GiB {frac:4.0%}")
    return text


def deployment_table(plans: list[DeploymentPlan], title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for col in (
        "deployment",
        "engine",
        "model",
        "quant",
        "TP",
        "ctx x conc",
        "weights",
        "KV",
        "overhead",
        "per GPU",
        "fits",
    ):
        table.add_column(col, justify="right" if col in {"TP", "weights", "KV", "overhead"} else "left")
    for p in plans:
        table.add_row(
            p.name,
            p.engine,
            p.model,
            p.quantization,
            str(p.tensor_parallel),
            f"{p.context_tokens} x {p.concurrency}",
            f"{p.weights_gib:.1f}",
            f"{p.kv_cache_gib:.1f}",
            f"{p.overhead_gib:.1f}",
            bar(p.total_gib, p.capacity_gib),
            Text("yes", style="green") if p.fits else Text("NO", style="bold red"),
        )
    return table


def print_deployment_notes(console: Console, plans: list[DeploymentPlan]) -> None:
    for p in plans:
        head = f"{p.host}/{p.name}"
        if p.fits:
            console.print(
                f"  {head}: fits; largest context at concurrency {p.concurrency}: "
                f"{p.max_context}, largest concurrency at {p.context_tokens} tokens: "
                f"{p.max_concurrency}"
            )
        else:
            console.print(
                f"  [bold red]{head}: does not fit[/] ({p.total_gib:.1f} GiB needed per "
                f"GPU, {p.capacity_gib or 0:.1f} available). What would:"
            )
            for s in p.suggestions or ["nothing on this host: use a bigger GPU"]:
                console.print(f"    - {s}")
        for w in p.warnings:
            console.print(f"  [yellow]{head}: {w}[/]")


def print_plan(console: Console, plan: FleetPlan) -> None:
    for hp in plan.hosts:
        groups = ", ".join(hp.host.groups) or "ungrouped"
        gpu = f"{len(hp.gpus)} x {hp.gpu_model}" if hp.gpus else "no GPU"
        console.rule(f"[bold]{hp.host.name}[/] ({groups}; {gpu})", align="left")
        if hp.gpus:
            gt = Table(show_header=True, box=None, pad_edge=False)
            gt.add_column("GPU")
            gt.add_column("memory")
            gt.add_column("deployments")
            for g in hp.gpus:
                gt.add_row(str(g.index), bar(g.used_gib, g.capacity_gib), ", ".join(g.deployments) or "-")
            console.print(gt)
        if hp.deployments:
            console.print(deployment_table(hp.deployments, ""))
            print_deployment_notes(console, hp.deployments)
        for note in hp.notes:
            console.print(f"  [bold red]{note}[/]")
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    total = len(plan.deployments)
    bad = sum(1 for d in plan.deployments if not d.fits)
    if plan.fits:
        console.print(f"[bold green]OK[/]: {total} deployment(s) on {len(plan.hosts)} host(s) fit.")
    else:
        console.print(
            f"[bold red]DOES NOT FIT[/]: {bad} of {total} deployment(s) do not fit "
            "(or a host's disk is too small)."
        )


def print_problems(console: Console, problems: list[Problem]) -> None:
    console.print(f"[bold red]error:[/] {len(problems)} problem(s) in the input; nothing was touched.")
    for p in problems:
        console.print(Text.assemble((p.where(), "bold"), f": {p.message}"), soft_wrap=True)
        if p.fix:
            console.print(Text(f"  fix: {p.fix}"), soft_wrap=True)

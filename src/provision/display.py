"""Live progress while a playbook runs, then the per-host recap and the stage table."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from provision.runner import EventTracker, RunResult

RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


class Progress:
    """One row per host (stage, current task, running counts); plain lines when not a TTY."""

    def __init__(self, console: Console, hosts: list[str], enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.live_mode = enabled and console.is_terminal
        self.rows: dict[str, dict[str, Any]] = {
            h: {"stage": "", "task": "waiting", "ok": 0, "changed": 0, "failed": 0} for h in hosts
        }
        self.play = ""
        self.started = time.monotonic()
        self.live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.__exit__(None, None, None)

    def _row(self, host: str) -> dict[str, Any]:
        return self.rows.setdefault(host, {"stage": "", "task": "", "ok": 0, "changed": 0, "failed": 0})

    def on_event(self, event: dict[str, Any], tracker: EventTracker) -> None:
        if not self.enabled:
            return
        name = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if name == "playbook_on_play_start":
            self.play = data.get("play", "")
        elif name == "runner_on_start" and host:
            row = self._row(host)
            row["stage"], row["task"] = tracker.stage, data.get("task", "")
        elif name in RESULT_EVENTS and host:
            row = self._row(host)
            outcome = RESULT_EVENTS[name]
            res = data.get("res") or {}
            if outcome == "ok" and res.get("changed"):
                outcome = "changed"
            if outcome in ("ok", "changed"):
                row["ok"] += 1
            if outcome == "changed":
                row["changed"] += 1
            if outcome in ("failed", "unreachable") and not data.get("ignore_errors"):
                row["failed"] += 1
            if not self.live_mode and outcome != "skipped":
                style = {"changed": "yellow", "failed": "red", "unreachable": "red"}.get(outcome, "green")
                self.console.print(
                    Text.assemble(
                        (f"{outcome:11}", style), f" {host:20} {tracker.stage:10} {data.get('task', '')}"
                    ),
                    soft_wrap=True,
                )
        if self.live:
            self.live.update(self._render())

    def _render(self) -> Group:
        elapsed = time.monotonic() - self.started
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for col in ("host", "stage", "task", "ok", "changed", "failed"):
            table.add_column(col, overflow="ellipsis", no_wrap=True, max_width=60 if col == "task" else None)
        for host, row in sorted(self.rows.items()):
            table.add_row(
                host,
                row["stage"],
                row["task"],
                str(row["ok"]),
                Text(str(row["changed"]), style="yellow" if row["changed"] else ""),
                Text(str(row["failed"]), style="red" if row["failed"] else ""),
            )
        return Group(Text(f"{self.play}  ({elapsed:.0f}s)", style="bold cyan"), table)


def print_recap(console: Console, result: RunResult) -> None:
    table = Table(title="recap", title_justify="left")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped", "rescued", "last failure"):
        table.add_column(col, justify="left" if col in ("host", "last failure") else "right")
    last: dict[str, str] = {}
    for f in result.failures:
        last[f.host] = f"{f.stage} / {f.task}: {f.message}"
    for host, r in result.recap.items():
        style = "red" if not r.healthy else ("yellow" if r.changed else "green")
        table.add_row(
            Text(host, style=style),
            str(r.ok),
            str(r.changed),
            str(r.failed),
            str(r.unreachable),
            str(r.skipped),
            str(r.rescued),
            last.get(host, ""),
        )
    if result.recap:
        console.print(table)
    if result.stages:
        st = Table(title="stages", title_justify="left")
        st.add_column("stage")
        st.add_column("seconds", justify="right")
        for s in result.stages:
            st.add_row(s.stage, f"{s.seconds:.1f}")
        console.print(st)
    for w in result.warnings:
        console.print(
            Text.assemble(("warning ", "yellow"), f"{w.host} ({w.stage}): {w.message}"), soft_wrap=True
        )
    if result.interrupted:
        console.print("[bold red]interrupted[/]: Ansible was stopped.")
        for host, where in sorted(result.in_progress.items()):
            console.print(f"  left half done on {host}: {where}")
        console.print("  Run the same command again: every role converges from where it stopped.")
    if result.artifacts:
        console.print(f"run artifacts kept in {result.artifacts}")
    bad = [h for h, r in result.recap.items() if not r.healthy]
    if bad:
        console.print(f"[bold red]FAILED[/] on {len(bad)} host(s): {', '.join(bad)}")
    elif not result.interrupted:
        console.print(f"[bold green]OK[/]: {len(result.recap)} host(s), {result.changed} change(s).")


def model_files_label(deployment: Any) -> tuple[str, str] | None:
    """What `provision status` says of a deployment's model files, and its style: None when
    the plan names no model_dir (nothing to count)."""
    if not getattr(deployment, "model_dir", ""):
        return None
    count = deployment.model_files
    if count is None:
        return "model dir missing", "yellow"
    if count == 0:
        return "model dir empty", "yellow"
    return f"{count} model file{'' if count == 1 else 's'}", "cyan"


def print_status(console: Console, status: Any) -> None:
    """`provision status`: one row per host (provision.status.FleetStatus); each deployment
    says its health and how many files its model_dir holds."""
    table = Table(title=f"fleet status ({status.inventory})", title_justify="left")
    for col in (
        "host",
        "reach",
        "GPUs (used/total GiB)",
        "driver",
        "CUDA",
        "engines",
        "deployments",
        "drift",
    ):
        table.add_column(col, overflow="fold")
    for h in status.hosts:
        if not h.reachable:
            table.add_row(
                h.host, Text("no", style="red"), "", "", "", "", "", Text(h.error or "", style="red")
            )
            continue
        if h.gpus:
            used = sum(g.memory_used_mib for g in h.gpus) / 1024
            total = sum(g.memory_total_mib for g in h.gpus) / 1024
            gpus = f"{len(h.gpus)}x {h.gpus[0].name} ({used:.1f}/{total:.1f})"
        else:
            gpus = "none" if not h.gpus_declared else Text(f"0 of {h.gpus_declared}", style="red")
        engines = ", ".join(f"{e} {v or '-'}" for e, v in h.engines.items())
        deps = Text()
        for i, d in enumerate(h.deployments):
            deps.append(("\n" if i else "") + f"{d.name}: ", style="bold")
            deps.append(d.detail, style="green" if d.healthy else "red")
            files = model_files_label(d)
            if files:
                deps.append("; ")
                deps.append(files[0], style=files[1])
        drift = Text("; ".join(h.drift), style="yellow") if h.drift else Text("none", style="green")
        table.add_row(
            h.host, Text("yes", style="green"), gpus, h.driver or "-", h.cuda or "-", engines, deps, drift
        )
    console.print(table)
    bad = [h.host for h in status.hosts if not h.ok]
    summary = (
        "every host reachable, every deployment healthy, no drift"
        if not bad
        else f"needs attention: {', '.join(bad)}"
    )
    console.print(Text(f"{summary} ({status.seconds:.2f} s)", style="green" if not bad else "yellow"))


def print_preview(console: Console, preview: RunResult) -> None:
    """`provision apply --check`: which hosts would change, and which services would restart."""
    restarts = preview.restarts()
    changed = preview.changed_hosts()
    table = Table(title="would change (dry run)", title_justify="left")
    for col in ("host", "tasks that would change", "would restart"):
        table.add_column(col, overflow="fold")
    for host in sorted(preview.recap):
        tasks = [c for c in preview.changes if c.host == host]
        table.add_row(
            host,
            str(len(tasks)) if tasks else Text("0", style="green"),
            "\n".join(restarts.get(host, [])) or "-",
        )
    console.print(table)
    console.print(
        f"{len(changed)} of {len(preview.recap)} host(s) would change; run without --check to roll it out"
    )

"""The `provision` command line.

Exit codes: 0 ok; 1 a plan that does not fit (or a failed run); 2 invalid input, nothing
touched; 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from provision import __version__
from provision.catalog import ENGINES, load_catalog
from provision.errors import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    InvalidInput,
    Problem,
    ProvisionError,
)
from provision.runner import STAGES

app = typer.Typer(
    help="Turn bare GPU servers into an on-prem LLM serving fleet, and keep it in shape.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="The model catalog: estimate, recommend, list.", no_args_is_help=True)
app.add_typer(models_app, name="models")
lab_app = typer.Typer(
    help="The built-in local lab: real systemd test hosts in Docker on this machine (root).",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")
LAB_INVENTORY = Path(__file__).resolve().parents[2] / "inventory" / "lab.yml"

# Piped output is not wrapped at 80 columns: tables get room, messages stay on one line.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for machines.")]


def _emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _invalid(problems: list[Problem], as_json: bool) -> None:
    from provision.report import print_problems

    if as_json:
        _emit_json({"ok": False, "errors": [p.as_dict() for p in problems], "deployments": []})
    else:
        print_problems(err, problems)
    raise typer.Exit(EXIT_INVALID)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version.")] = False,
) -> None:
    if version:
        out.print(f"provision {__version__}")
        raise typer.Exit(EXIT_OK)


@app.command()
def check(
    inventory: Annotated[Path, typer.Argument(help="An Ansible YAML inventory.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate an inventory offline and plan every deployment's memory. Touches no host."""
    from provision.fleetplan import plan_fleet
    from provision.inventory import load_fleet
    from provision.report import print_plan

    try:
        fleet = load_fleet(inventory)
        plan = plan_fleet(fleet, inventory.resolve().parent)
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    if as_json:
        _emit_json(plan.as_dict())
    else:
        print_plan(out, plan)
    raise typer.Exit(EXIT_OK if plan.fits else EXIT_FAILED)


@app.command()
def up(
    inventory: Annotated[Path, typer.Argument(help="An Ansible YAML inventory.")],
    only: Annotated[
        str | None, typer.Option(help="Run one stage: " + ", ".join(STAGES) + ".", metavar="STAGE")
    ] = None,
    limit: Annotated[str | None, typer.Option(help="Ansible host pattern to limit the run to.")] = None,
    tags: Annotated[str | None, typer.Option(help="Comma-separated Ansible tags.")] = None,
    check_mode: Annotated[bool, typer.Option("--check", help="Dry run: change nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show what would change in files.")] = False,
    forks: Annotated[int | None, typer.Option(help="Parallel hosts (default from ansible.cfg).")] = None,
    gpu_serial: Annotated[
        str | None,
        typer.Option(help="GPU stack batch size: hosts or percent per batch (driver work may reboot).")
    ] = None,
    print_command: Annotated[
        bool, typer.Option("--print-command", help="Print the equivalent ansible-playbook command and exit.")
    ] = False,
    verbose: Annotated[int, typer.Option("-v", count=True, help="Ansible verbosity.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Take the inventory's hosts to serving: preflight, base, gpu, models, engines, gateway,
    monitoring, validate. Runs `provision check` first and stops on its errors."""
    import shlex

    from provision.display import Progress, print_recap
    from provision.runner import run_playbook, write_extravars
    from provision.up import plan_for, request

    try:
        plan = plan_for(inventory)
        req = request(
            inventory,
            plan,
            only=only,
            limit=limit,
            tags=[t for t in (tags or "").split(",") if t],
            check=check_mode,
            diff=diff,
            forks=forks,
            verbosity=verbose,
            gpu_serial=gpu_serial,
        )
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    if print_command:
        path = write_extravars(req.extravars)
        from provision.runner import ANSIBLE_CFG

        out.print(f"ANSIBLE_CONFIG={ANSIBLE_CFG} " + shlex.join(req.command(str(path))), soft_wrap=True)
        raise typer.Exit(EXIT_OK)
    with Progress(err, sorted(plan.fleet.hosts), enabled=not as_json) as progress:
        result = run_playbook(req, progress.on_event)
    if as_json:
        _emit_json(result.as_dict())
    else:
        print_recap(out, result)
    if result.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@models_app.command("estimate")
def estimate(
    model: Annotated[str, typer.Argument(help="Catalog id or alias, or a local GGUF/snapshot path.")],
    quant: Annotated[str | None, typer.Option("--quant", "-q", help="e.g. Q4_K_M, AWQ, FP8, BF16")] = None,
    context: Annotated[int, typer.Option(help="Tokens per request.")] = 8192,
    concurrency: Annotated[int, typer.Option(help="Requests served at once.")] = 1,
    tp: Annotated[int, typer.Option("--tp", help="Tensor parallel size (GPUs).")] = 1,
    engine: Annotated[str | None, typer.Option(help="ollama, vllm, llamacpp or tgi.")] = None,
    gpu: Annotated[str, typer.Option(help="GPU model from the GPU table.")] = "A100-80GB",
    gpu_memory_gib: Annotated[float | None, typer.Option(help="Per-GPU memory, overrides --gpu.")] = None,
    gpu_memory_utilization: Annotated[float | None, typer.Option(help="vLLM/TGI only.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Size one model on one host, no inventory needed."""
    from provision.estimate import estimate_one

    try:
        plan = estimate_one(
            model,
            quant=quant,
            context=context,
            concurrency=concurrency,
            tp=tp,
            engine=engine,
            gpu=gpu,
            gpu_memory_gib=gpu_memory_gib,
            gpu_memory_utilization=gpu_memory_utilization,
        )
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    if as_json:
        _emit_json({"ok": plan.fits, "errors": [], "deployments": [plan.as_dict()]})
    else:
        from provision.report import deployment_table, print_deployment_notes

        out.print(deployment_table([plan], f"{plan.model_name} on {tp} x {gpu}"))
        print_deployment_notes(out, [plan])
        if plan.settings:
            out.print(
                "  engine settings: " + json.dumps({k: v for k, v in plan.settings.items() if v is not None})
            )
    raise typer.Exit(EXIT_OK if plan.fits else EXIT_FAILED)


@models_app.command("recommend")
def recommend_cmd(
    use_case: Annotated[str, typer.Option(help="general, code, rag or reasoning.")] = "general",
    korean: Annotated[bool, typer.Option("--korean/--no-korean", help="Is Korean important?")] = False,
    vram: Annotated[float, typer.Option(help="GPU memory available, GiB (all GPUs together).")] = 24,
    long_docs: Annotated[bool, typer.Option("--long-docs", help="Documents of 10K+ tokens.")] = False,
    context: Annotated[int, typer.Option(help="Tokens per request to size for.")] = 8192,
    as_json: JsonOpt = False,
) -> None:
    """The field guide's model-selection flowchart, returning only candidates that fit."""
    from provision.recommend import recommend

    if use_case not in ("general", "code", "rag", "reasoning"):
        _invalid(
            [
                Problem(
                    "--use-case",
                    "",
                    f"unknown use case '{use_case}'",
                    "use one of general, code, rag, reasoning",
                )
            ],
            as_json,
        )
    branch, fits, rejected = recommend(use_case, korean, vram, long_docs, context)  # type: ignore[arg-type]
    if as_json:
        _emit_json(
            {
                "ok": bool(fits),
                "branch": branch,
                "candidates": [c.as_dict() for c in fits],
                "rejected": rejected,
            }
        )
    else:
        out.print(f"[bold]{branch}[/]")
        table = Table("model", "quant", "engine", "memory", "Korean", "why")
        for c in fits:
            table.add_row(
                c.model,
                c.quantization,
                c.engine,
                f"{c.total_gib:.1f} GiB",
                "★" * c.korean + "☆" * (4 - c.korean),
                c.why,
            )
        out.print(table)
        for r in rejected:
            out.print(f"  [yellow]not recommended:[/] {r}")
    raise typer.Exit(EXIT_OK if fits else EXIT_FAILED)


@models_app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """Every model in the catalog with the facts the planner uses."""
    cat = load_catalog()
    if as_json:
        _emit_json({"models": [m.model_dump() for m in cat.models]})
        return
    table = Table("id", "params", "layers", "heads/kv", "context", "license", "Korean", "ollama")
    for m in cat.models:
        active = f" ({m.active_params / 1e9:.0f}B act.)" if m.active_params else ""
        table.add_row(
            m.id,
            f"{m.params / 1e9:.1f}B{active}",
            str(m.layers),
            f"{m.attention_heads}/{m.kv_heads}",
            f"{m.max_context // 1024}K",
            m.license,
            "★" * m.korean + "☆" * (4 - m.korean),
            m.ollama or "-",
        )
    out.print(table)


def _lab_call(action: str, names: list[str] | None = None) -> None:
    import logging

    from provision import lab

    logging.basicConfig(level=logging.INFO, format="lab: %(message)s")
    try:
        if action == "up":
            for name, address in lab.up(names or []).items():
                out.print(f"{name} {address}")
        elif action == "down":
            lab.down()
        else:
            out.print(lab.status().as_text())
    except lab.LabError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_FAILED) from None


@lab_app.command("up")
def lab_up(
    names: Annotated[
        list[str] | None, typer.Argument(help="Host names; default: the hosts of inventory/lab.yml.")
    ] = None,
) -> None:
    """Start test hosts (egress allowlist first, Docker engine, image, hosts)."""
    if not names:
        from provision.inventory import load_fleet

        names = sorted(load_fleet(LAB_INVENTORY).hosts)
    _lab_call("up", names)


@lab_app.command("down")
def lab_down() -> None:
    """Remove every lab container, volume and network (by label)."""
    _lab_call("down")


@lab_app.command("status")
def lab_status() -> None:
    """Engine, allowlist and hosts."""
    _lab_call("status")


def main() -> None:
    try:
        app(standalone_mode=True)
    except ProvisionError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


__all__ = ["ENGINES", "app", "main"]

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
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Remove models no longer assigned to a node (files, Ollama models)."),
    ] = False,
    rehash: Annotated[
        bool, typer.Option("--rehash", help="Models stage: re-hash every placed file (finds bit flips).")
    ] = False,
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
            # only when asked: an extravar would override the inventory's own setting
            extra={k: True for k, on in (("models_prune", prune), ("models_rehash", rehash)) if on},
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


@app.command()
def apply(
    inventory: Annotated[Path, typer.Argument(help="An Ansible YAML inventory.")],
    only: Annotated[
        str | None, typer.Option(help="Run one stage: " + ", ".join(STAGES) + ".", metavar="STAGE")
    ] = None,
    limit: Annotated[str | None, typer.Option(help="Ansible host pattern to limit the run to.")] = None,
    check_mode: Annotated[
        bool, typer.Option("--check", help="Only show which hosts would change and what would restart.")
    ] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show what would change in files.")] = False,
    batch: Annotated[
        str, typer.Option(help="Engine hosts per batch: a count (1) or a percentage (25%).")
    ] = "1",
    max_fail: Annotated[
        int, typer.Option(help="Stop when more than this percent of a batch fails (0: at the first).")
    ] = 0,
    idle_timeout: Annotated[
        int, typer.Option(help="Seconds to wait for a drained host's in-flight requests.")
    ] = 60,
    as_json: JsonOpt = False,
) -> None:
    """Roll a configuration change out to a running fleet: a dry run finds the hosts whose
    engines change, then those hosts go batch by batch: drained at the gateway, in-flight
    requests finished, changed, healthy again (health URL + one-token completion), back in.
    Stops at --max-fail, leaving the hosts not yet reached serving; a re-run resumes."""
    from provision.display import Progress, print_preview, print_recap
    from provision.runner import run_playbook
    from provision.up import plan_for, request, rolling_vars

    try:
        plan = plan_for(inventory)
        preview_req = request(inventory, plan, only=only, limit=limit, check=True, diff=diff)
        rolling_vars([], batch, max_fail, idle_timeout)  # validate the options before any host is touched
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    hosts = sorted(plan.fleet.hosts)
    with Progress(err, hosts, enabled=not as_json) as progress:
        preview = run_playbook(preview_req, progress.on_event)
    rolling = preview.changed_hosts("engines")
    if check_mode or not preview.ok:
        if as_json:
            would = {"would_change": preview.changed_hosts(), "would_restart": preview.restarts()}
            _emit_json({**preview.as_dict(), **would})
        else:
            print_recap(out, preview)
            print_preview(out, preview)
        raise typer.Exit(EXIT_OK if preview.ok else EXIT_FAILED)
    extra = rolling_vars(rolling, batch, max_fail, idle_timeout)
    req = request(inventory, plan, only=only, limit=limit, diff=diff, extra=extra)
    with Progress(err, hosts, enabled=not as_json) as progress:
        result = run_playbook(req, progress.on_event)
    if as_json:
        _emit_json({**result.as_dict(), "rolled": rolling, "restarted": result.restarts()})
    else:
        print_recap(out, result)
        out.print(f"rolled (drained, changed, healthy, back in): {', '.join(rolling) or 'none'}")
    if result.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command()
def status(
    inventory: Annotated[Path, typer.Argument(help="An Ansible YAML inventory.")],
    limit: Annotated[str | None, typer.Option(help="Comma-separated host names.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per connection and per request.")] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Where the fleet stands, read-only: reachable, GPUs and memory, driver, CUDA and engine
    versions, each deployment healthy or not (health URL and a one-token completion), models
    present, and versions that drifted from the inventory. Exit 1 when anything needs attention."""
    from provision.display import print_status
    from provision.status import fleet_status

    try:
        plan, hosts = _plan_with_limit(inventory, limit)
        result = fleet_status(inventory, hosts, timeout, plan)
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    if as_json:
        _emit_json(result.as_dict())
    else:
        print_status(out, result)
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


@models_app.command("bundle")
def bundle_cmd(
    models: Annotated[
        list[str], typer.Argument(help="Catalog ids (or hub repositories owner/name, or Ollama names).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle folder: OUT/<model>/<quant>/ per model.")],
    quant: Annotated[str | None, typer.Option("--quant", "-q", help="Quantization (repo, files).")] = None,
    revision: Annotated[str, typer.Option(help="Hub revision; pin a commit to reproduce.")] = "main",
    include: Annotated[
        list[str] | None, typer.Option("--include", help="File pattern, repeatable (default: by quant).")
    ] = None,
    from_path: Annotated[
        Path | None, typer.Option("--from-path", help="Bundle a local GGUF file or snapshot folder.")
    ] = None,
    from_ollama: Annotated[
        bool, typer.Option("--from-ollama", help="From the Ollama registry (catalog id or Ollama name).")
    ] = False,
    registry: Annotated[
        str | None, typer.Option(help="Ollama registry URL (default: OLLAMA_REGISTRY, registry.ollama.ai).")
    ] = None,
    ollama_models: Annotated[
        Path | None, typer.Option("--ollama-models", help="From a local Ollama store (OLLAMA_MODELS folder).")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="Hub token file (Ansible Vault or 0600); default: HF_TOKEN.")
    ] = None,
    vault_password_file: Annotated[Path | None, typer.Option(help="Vault password for --token-file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make bundles (files + manifest.json) for air-gapped placement; downloads resume."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from provision.modelstore.bundle import bundle_from_hub, bundle_from_path, resolve_target
    from provision.modelstore.ollama import (
        bundle_from_ollama,
        bundle_from_ollama_store,
        resolve_ollama_target,
    )
    from provision.modelstore.token import resolve_token

    from_ollama_store = ollama_models is not None
    chosen = [
        flag
        for flag, given in (
            ("--from-path", from_path is not None),
            ("--from-ollama", from_ollama),
            ("--ollama-models", from_ollama_store),
        )
        if given
    ]
    conflicts: list[Problem] = []
    if len(chosen) > 1:
        message = f"{' and '.join(chosen)} name different sources"
        conflicts.append(Problem(chosen[1], "", message, "give one of them"))
    if registry is not None and not from_ollama:
        message = "--registry applies to --from-ollama"
        conflicts.append(Problem("--registry", "", message, "add --from-ollama"))
    if include and (from_ollama or from_ollama_store):
        conflicts.append(
            Problem("--include", "", "an Ollama model is bundled whole (its layers)", "leave --include out")
        )
    if conflicts:
        _invalid(conflicts, as_json)
        return
    results = []
    try:
        if from_ollama or from_ollama_store:
            token = None  # the Ollama library asks for none
            targets: list[Any] = [resolve_ollama_target(m, quant) for m in models]
        else:
            token = resolve_token(token_file, vault_password_file) if from_path is None else None
            targets = [resolve_target(m, quant, include) for m in models]
        with Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=err, disable=as_json or not err.is_terminal, transient=False,
        ) as progress:

            def bar(name: str, total: int):
                task = progress.add_task(name, total=total)
                return lambda n: progress.advance(task, n)

            for target in targets:
                if from_ollama_store:
                    where, manifest = bundle_from_ollama_store(target, out_dir, ollama_models, bar)
                elif from_ollama:
                    where, manifest = bundle_from_ollama(target, out_dir, registry, bar)
                elif from_path is not None:
                    target.include = include or []  # a local path: all its files unless told
                    where, manifest = bundle_from_path(target, out_dir, from_path, bar)
                else:
                    where, manifest = bundle_from_hub(target, out_dir, revision, token, bar)
                results.append({"dir": str(where), **manifest.as_dict()})
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    if as_json:
        _emit_json({"ok": True, "bundles": results})
    else:
        for r in results:
            src = r["source"]
            origin = (
                f"{src['name']}:{src['tag']}@{src['digest'][:19]}"
                if src.get("kind") == "ollama"
                else f"{src.get('repo') or src.get('name')}@{src.get('revision', '-')}"
            )
            out.print(f"{r['dir']}: {len(r['files'])} files, {r['total_bytes'] / 1024**3:.2f} GiB, {origin}")
    raise typer.Exit(EXIT_OK)


@models_app.command("verify")
def verify_cmd(
    directory: Annotated[
        Path,
        typer.Argument(help="A bundle (or a node's model dir copied back); with --on-hosts, an inventory."),
    ],
    on_hosts: Annotated[
        bool, typer.Option("--on-hosts", help="Verify the models placed on the inventory's hosts, in place.")
    ] = False,
    limit: Annotated[str | None, typer.Option(help="--on-hosts: comma-separated host names.")] = None,
    quick: Annotated[
        bool, typer.Option(help="--on-hosts: sizes and stamps only, no re-hash (seconds, not minutes).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every file of a bundle against its manifest (size, SHA-256). Exit 1 names bad files.
    With --on-hosts, re-hash every placed model on the hosts where it lives (read-only)."""
    from provision.modelstore.verify import verify_bundle

    if on_hosts:
        _verify_on_hosts(directory, limit, not quick, as_json)
        return
    try:
        result = verify_bundle(directory)
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    if as_json:
        _emit_json(result.as_dict())
    else:
        for path, why in result.bad:
            err.print(f"[bold red]bad:[/] {path}: {why}")
        verdict = "ok" if result.ok else f"{len(result.bad)} bad"
        out.print(f"{directory}: {result.checked} files checked, {verdict}")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


def _plan_with_limit(inventory: Path, limit: str | None) -> tuple[Any, list[str] | None]:
    """The inventory's plan and the --limit hosts (None: all); InvalidInput for unknown names."""
    from provision.fleetplan import plan_fleet
    from provision.inventory import load_fleet

    fleet = load_fleet(inventory)
    plan = plan_fleet(fleet, inventory.resolve().parent)
    hosts = [h for h in (limit or "").split(",") if h] or None
    unknown = sorted(set(hosts or ()) - set(fleet.hosts))
    if unknown:
        names = ", ".join(unknown)
        raise InvalidInput([Problem("--limit", "", f"no such host: {names}", "name hosts of the inventory")])
    return plan, hosts


def _verify_on_hosts(inventory: Path, limit: str | None, rehash: bool, as_json: bool) -> None:
    from provision.modelstore.hostverify import verify_on_hosts

    try:
        plan, hosts = _plan_with_limit(inventory, limit)
        result = verify_on_hosts(inventory, plan, hosts, rehash)
    except InvalidInput as exc:
        _invalid(exc.problems, as_json)
        return
    if as_json:
        _emit_json(result.as_dict())
    else:
        table = Table("host", "deployment", "model dir", "files", "state", "detail")
        for host in result.hosts:
            if host.error:
                table.add_row(host.host, "-", "-", "-", "[red]unreachable[/]", host.error)
            for d in host.dirs:
                colour = "green" if d.state == "ok" else ("yellow" if d.ok else "red")
                state = f"[{colour}]{d.state}[/]"
                table.add_row(host.host, d.deployment, d.model_dir, str(d.files or "-"), state, d.detail)
        out.print(table)
        how = "re-hashed" if rehash else "sizes and stamps"
        verdict = "ok" if result.ok else "NOT OK"
        out.print(f"{verdict}: {len(result.hosts)} hosts, {how}, {result.seconds:.1f} s")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


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


@app.command("bench")
def bench_cmd(
    target: Annotated[str, typer.Argument(help="http://HOST:PORT/v1, or an inventory (its gateway).")],
    concurrency: Annotated[str, typer.Option(help="Comma-separated levels.")] = "1,4,8,16,32,64",
    requests: Annotated[int | None, typer.Option(help="Requests per level (default: max(4c, 16)).")] = None,
    max_tokens: Annotated[int, typer.Option(help="max_tokens of each request.")] = 128,
    prompt: Annotated[str | None, typer.Option(help="The user message (default: a short question).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (default: first of GET /v1/models).")] = None,
    api_key_env: Annotated[str, typer.Option(help="Variable holding the API key.")] = "PROVISION_API_KEY",
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 120.0,
    duration_cap: Annotated[float, typer.Option(help="Wall-time cap per level, seconds.")] = 300.0,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG chart (needs the bench extra).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load an OpenAI-compatible endpoint at rising concurrency: tokens/s, TTFT, latency, errors."""
    from provision.bench import bench_command

    settings = {
        "concurrency": concurrency,
        "requests": requests,
        "max_tokens": max_tokens,
        "prompt": prompt,
        "model": model,
        "timeout_s": timeout,
        "duration_cap_s": duration_cap,
    }
    raise typer.Exit(bench_command(target, settings, api_key_env, as_json, chart, out, err))


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

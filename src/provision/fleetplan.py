"""Static checks across the fleet and the memory plan of every deployment.

`plan_fleet` raises InvalidInput (exit 2) for input that cannot be right (unknown model, TP
that does not divide the heads, a pool with no backend, duplicate ports, ...) and returns a
FleetPlan whose `fits` says whether the memory plan holds (exit 1 when it does not).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.catalog import Catalog, QuantSpec, load_catalog
from provision.errors import InvalidInput, Problem
from provision.planner import (
    GIB,
    PARTIAL_OFFLOAD_WARNING,
    VLLM_GMU_DEFAULT,
    VLLM_GMU_RANGE,
    VLLM_GMU_SHARED_MAX,
    DeploymentPlan,
    ModelShape,
    capacity_per_gpu,
    element_bytes,
    engine_settings,
    flash_attention,
    largest_fit,
    legal_tp,
    size,
    weight_bytes,
)
from provision.schema import GATEWAY_GROUP, MONITORING_GROUP, Deployment, Fleet, Host

NODE_EXPORTER_PORT = 9100
# Ports the gateway and monitoring roles listen on (their role defaults), by host group; a
# deployment planned onto one of them would fail to start.
GATEWAY_PORTS = {8081: "the gateway's stub_status", 9113: "the nginx exporter", 3903: "mtail (gateway log)"}
MONITORING_PORTS = {9115: "the blackbox exporter", 3000: "Grafana"}
DCGM_EXPORTER_PORT = 9400


@dataclass
class GpuUse:
    index: int
    capacity_gib: float
    used_gib: float = 0.0
    vllm_gmu: float = 0.0
    deployments: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.used_gib <= self.capacity_gib + 1e-9


@dataclass
class HostPlan:
    host: Host
    gpu_model: str | None
    gpus: list[GpuUse]
    deployments: list[DeploymentPlan]
    disk_needed_gib: float
    disk_gib: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        disk_ok = self.disk_gib is None or self.disk_needed_gib <= self.disk_gib
        return disk_ok and all(g.fits for g in self.gpus) and all(d.fits for d in self.deployments)


@dataclass
class FleetPlan:
    fleet: Fleet
    hosts: list[HostPlan]
    warnings: list[str] = field(default_factory=list)

    @property
    def deployments(self) -> list[DeploymentPlan]:
        return [d for h in self.hosts for d in h.deployments]

    @property
    def fits(self) -> bool:
        return all(h.fits for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.fits,
            "errors": [],
            "deployments": [d.as_dict() for d in self.deployments],
            "hosts": [
                {
                    "host": h.host.name,
                    "gpu_model": h.gpu_model,
                    "gpus": [
                        {
                            "index": g.index,
                            "capacity_gib": round(g.capacity_gib, 2),
                            "used_gib": round(g.used_gib, 2),
                            "fits": g.fits,
                            "deployments": g.deployments,
                        }
                        for g in h.gpus
                    ],
                    "disk_needed_gib": round(h.disk_needed_gib, 2),
                    "disk_gib": h.disk_gib,
                    "fits": h.fits,
                    "notes": h.notes,
                }
                for h in self.hosts
            ],
            "warnings": self.warnings,
        }


class _Ctx:
    """Collects problems with a pointer into the YAML for a host's deployment."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.problems: list[Problem] = []

    def dep(self, host: str, index: int, sub: tuple, message: str, fix: str) -> None:
        origin = self.fleet.origin(host, "provision_deployments")
        if origin is None:
            self.problems.append(
                Problem(self.fleet.file, f"{host}.provision_deployments[{index}]", message, fix)
            )
        else:
            self.problems.append(origin.problem((index, *sub), f"host {host}: {message}", fix))

    def var(self, host: str, var: str, sub: tuple, message: str, fix: str) -> None:
        origin = self.fleet.origin(host, var)
        if origin is None:
            self.problems.append(Problem(self.fleet.file, var, message, fix))
        else:
            self.problems.append(origin.problem(sub, message, fix))


def resolve_quant(
    dep: Deployment, shape: ModelShape, spec_dtype: str | None, catalog: Catalog
) -> QuantSpec | None:
    if dep.quantization:
        return catalog.quant(dep.quantization)
    if shape.file_type:
        found = catalog.quant(shape.file_type)
        if found:
            return found
    if dep.engine in ("vllm", "tgi"):
        return catalog.quant("BF16" if (spec_dtype or "bfloat16") == "bfloat16" else "FP16")
    return catalog.quant("Q4_K_M")


def resolve_shape(
    dep: Deployment, base: Path, catalog: Catalog, ctx: _Ctx, host: str, i: int
) -> tuple[ModelShape | None, str | None, float | None]:
    """(shape, torch dtype, model files GiB if known exactly)."""
    spec = catalog.model(dep.model)
    shape = ModelShape.from_spec(spec) if spec else None
    files_gib = None
    if dep.model_path:
        local = Path(dep.model_path)
        local = local if local.is_absolute() else base / local
        if local.exists():
            from provision.localmodel import LocalModelError, inspect_local_model

            try:
                facts = inspect_local_model(local)
            except LocalModelError as exc:
                ctx.dep(host, i, ("model_path",), f"cannot read the model at {local}: {exc.reason}", exc.fix)
                return None, None, None
            shape = ModelShape.from_local(facts, shape)
            files_gib = facts.file_bytes / GIB
    if shape is None:
        close = catalog.suggest_model(dep.model)
        hint = f"did you mean '{close[0]}'? " if close else ""
        ctx.dep(
            host,
            i,
            ("model",),
            f"unknown model '{dep.model}'",
            f"{hint}use a catalog id (`provision models list`) or set model_path to a local "
            "GGUF file or Hugging Face snapshot",
        )
        return None, None, None
    return shape, spec.torch_dtype if spec else None, files_gib


def _allocate(host: Host, dep: Deployment, free: list[int], ctx: _Ctx, i: int) -> list[int] | None:
    count = host.gpus.count if host.gpus else 0
    if dep.gpus is not None:
        bad = [g for g in dep.gpus if g >= count]
        if bad:
            ctx.dep(
                host.name,
                i,
                ("gpus",),
                f"GPU index {bad[0]} does not exist (the host declares "
                f"{count} GPU{'s' if count != 1 else ''})",
                f"use indexes 0..{count - 1}" if count else "declare provision_gpus on the host",
            )
            return None
        if dep.engine in ("vllm", "tgi") and len(dep.gpus) != dep.tensor_parallel:
            ctx.dep(
                host.name,
                i,
                ("gpus",),
                f"{len(dep.gpus)} GPUs listed but tensor_parallel is {dep.tensor_parallel}",
                "list exactly tensor_parallel GPU indexes",
            )
            return None
        for g in dep.gpus:
            if g in free:
                free.remove(g)
        return list(dep.gpus)
    if count == 0:
        return []
    want = dep.tensor_parallel
    if want > count:
        return None  # reported by the TP check
    if len(free) < want:
        ctx.dep(
            host.name,
            i,
            (),
            f"deployment '{dep.name}' needs {want} GPU(s) but only "
            f"{len(free)} of {count} are still free on this host",
            "share a GPU explicitly with 'gpus: [0]', lower tensor_parallel, or move the "
            "deployment to another host",
        )
        return None
    taken, free[:] = free[:want], free[want:]
    return taken


def _suggestions(
    dep: Deployment,
    shape: ModelShape,
    quant: QuantSpec,
    host: Host,
    gpu_gib: float,
    catalog: Catalog,
    kv_elem: float,
    fa: bool,
) -> list[str]:
    out: list[str] = []
    engine = dep.engine
    tp = max(dep.tensor_parallel, 1)
    cap = capacity_per_gpu(dep, gpu_gib)[0]

    def fits(q: QuantSpec, gpus: int, context: int, conc: int) -> float | None:
        s = size(shape, q, engine, gpus, context, conc, kv_elem, fa)
        return s.total if s.total <= cap else None

    if not shape.weight_bytes:
        smaller = sorted(
            (
                q
                for q in catalog.quants
                if engine in q.engines
                and q.bits_per_weight < quant.bits_per_weight
                and (q.format == "gguf") == (quant.format == "gguf")
            ),
            key=lambda q: -q.bits_per_weight,
        )
        for q in smaller:
            need = fits(q, tp, dep.context, dep.concurrency)
            if need is not None:
                warn = " (below Q4 quality drops noticeably, Korean first)" if q.bits_per_weight < 4.5 else ""
                out.append(f"a smaller quant: {q.name} needs {need:.1f} of {cap:.1f} GiB per GPU{warn}")
                break
    have = host.gpus.count if host.gpus else 0
    for more in range(tp + 1, 9):
        if engine in ("vllm", "tgi") and shape.attention_heads % more:
            continue
        need = fits(quant, more, dep.context, dep.concurrency)
        if need is not None:
            where = "" if more <= have else f" (the host has {have}: add GPUs or use a bigger node)"
            out.append(f"more GPUs: tensor_parallel {more} needs {need:.1f} GiB per GPU{where}")
            break
    s = size(shape, quant, engine, tp, 1, 1, kv_elem, fa)
    fixed = s.weights + s.overhead
    ctx_fit = largest_fit(cap, fixed, s.kv_per_token, dep.concurrency, shape.max_context)
    if 256 <= ctx_fit < dep.context:
        out.append(f"a shorter context: {ctx_fit} tokens fit at concurrency {dep.concurrency}")
    conc_fit = largest_fit(cap, fixed, s.kv_per_token, dep.context, 4096)
    if 1 <= conc_fit < dep.concurrency:
        out.append(f"fewer parallel slots: concurrency {conc_fit} fits at context {dep.context}")
    if engine in ("llamacpp", "ollama") and host.gpus:
        per_layer = s.weights / shape.layers
        kv = s.kv_per_token * dep.context * dep.concurrency / GIB
        layers = int((cap - s.overhead - kv) // per_layer) if per_layer > 0 else 0
        if 0 < layers < shape.layers:
            knob = "gpu_layers" if engine == "llamacpp" else "gpu_layers (Ollama num_gpu)"
            out.append(
                f"partial GPU offload: {knob} {layers} of {shape.layers} layers; {PARTIAL_OFFLOAD_WARNING}"
            )
    return out


def plan_fleet(fleet: Fleet, base: Path, catalog: Catalog | None = None) -> FleetPlan:
    catalog = catalog or load_catalog()
    ctx = _Ctx(fleet)
    warnings: list[str] = []
    host_plans: list[HostPlan] = []
    seen_names: dict[str, tuple[str, str, str]] = {}
    pool_backends: dict[str, int] = {name: 0 for name in fleet.pools}

    for host in fleet.hosts.values():
        gpu_gib, gpu_model = _gpu_memory(host, ctx, catalog, warnings)
        gpus = [GpuUse(i, gpu_gib or 0.0) for i in range(host.gpus.count)] if host.gpus else []
        free = [g.index for g in gpus]
        ports: dict[int, str] = {}
        if GATEWAY_GROUP in host.groups:
            ports[fleet.gateway.port] = "the gateway"
            ports.update(GATEWAY_PORTS)
        if MONITORING_GROUP in host.groups:
            ports[fleet.monitoring.prometheus_port] = "Prometheus"
            ports.update(MONITORING_PORTS)
        if host.gpus:
            ports.setdefault(DCGM_EXPORTER_PORT, "the DCGM exporter")
        ports.setdefault(NODE_EXPORTER_PORT, "the node exporter")
        names: set[str] = set()
        ollama_settings: dict[str, Any] = {}
        plans: list[DeploymentPlan] = []
        disk_needed = 0.0
        counted_models: set[str] = set()
        for i, dep in enumerate(host.deployments):
            if dep.name in names:
                ctx.dep(
                    host.name,
                    i,
                    ("name",),
                    f"deployment name '{dep.name}' is used twice on this host",
                    "give each deployment on a host its own name",
                )
            names.add(dep.name)
            if dep.pool not in fleet.pools:
                close = difflib.get_close_matches(dep.pool, list(fleet.pools), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                ctx.dep(
                    host.name,
                    i,
                    ("pool",),
                    f"pool '{dep.pool}' has no route at the gateway",
                    f"{hint}add it under all.vars.provision_pools (defined: "
                    f"{', '.join(sorted(fleet.pools)) or 'none'})",
                )
            else:
                pool_backends[dep.pool] += 1
            port = dep.resolved_port
            owner = ports.get(port)
            if owner and not (dep.engine == "ollama" and owner.startswith("ollama")):
                ctx.dep(
                    host.name,
                    i,
                    ("port",),
                    f"port {port} is already used by {owner}",
                    "set a free 'port:' for this deployment",
                )
            ports.setdefault(port, f"{dep.engine} deployment '{dep.name}'")
            if dep.engine == "ollama":
                server = (port, dep.ollama.model_dump(exclude={"modelfile"}) if dep.ollama else None)
                if ollama_settings and ollama_settings.get("server") != server:
                    ctx.dep(
                        host.name,
                        i,
                        ("ollama",),
                        "Ollama deployments on one host share one "
                        "server, but their port or server settings differ",
                        "give every Ollama deployment on this host the same port and ollama: "
                        "settings (keep_alive, max_loaded_models, max_queue, ...)",
                    )
                ollama_settings["server"] = server
            if not host.gpus and dep.engine in ("vllm", "tgi"):
                ctx.dep(
                    host.name,
                    i,
                    ("engine",),
                    f"{dep.engine} needs NVIDIA GPUs but the host declares none",
                    "declare provision_gpus, or use llamacpp/ollama for CPU",
                )
                continue
            shape, dtype, files_gib = resolve_shape(dep, base, catalog, ctx, host.name, i)
            if shape is None:
                continue
            key = (dep.engine, shape.id, dep.quantization or "")
            if dep.name in seen_names and seen_names[dep.name] != key:
                ctx.dep(
                    host.name,
                    i,
                    ("name",),
                    f"deployment '{dep.name}' serves "
                    f"{shape.id} with {dep.engine} here but something else on another host",
                    "replicas of a deployment must agree on engine, model and quantization; "
                    "rename one of them",
                )
            seen_names.setdefault(dep.name, key)
            quant = resolve_quant(dep, shape, dtype, catalog)
            if quant is None:
                close = catalog.suggest_quant(dep.quantization or "")
                hint = f"did you mean '{close[0]}'? " if close else ""
                ctx.dep(
                    host.name,
                    i,
                    ("quantization",),
                    f"unknown quantization '{dep.quantization}'",
                    f"{hint}known: " + ", ".join(q.name for q in catalog.quants),
                )
                continue
            if dep.engine not in quant.engines:
                fits_engine = [q.name for q in catalog.quants if dep.engine in q.engines]
                ctx.dep(
                    host.name,
                    i,
                    ("quantization",),
                    f"{dep.engine} cannot load {quant.name} ({quant.format})",
                    f"use one of {', '.join(fits_engine)}, or an engine that "
                    f"loads {quant.format} ({', '.join(quant.engines)})",
                )
                continue
            _check_kv_cache_type(dep, shape.head_dim, ctx, host.name, i)
            if dep.engine == "vllm" and quant.format == "gguf":
                warnings.append(
                    f"{host.name}/{dep.name}: vLLM's GGUF support is experimental "
                    "(single-file only); an AWQ or GPTQ checkpoint is faster on vLLM"
                )
            if dep.context > shape.max_context:
                ctx.dep(
                    host.name,
                    i,
                    ("context",),
                    f"context {dep.context} is longer than {shape.name} supports ({shape.max_context})",
                    f"set context to at most {shape.max_context}",
                )
            tp = dep.tensor_parallel
            have = host.gpus.count if host.gpus else 0
            if host.gpus and tp > have:
                ctx.dep(
                    host.name,
                    i,
                    ("tensor_parallel",),
                    f"tensor_parallel {tp} is more than the {have} GPU(s) the host has",
                    f"use at most {have}, or add GPUs",
                )
                continue
            if dep.engine in ("vllm", "tgi") and shape.attention_heads % tp:
                ctx.dep(
                    host.name,
                    i,
                    ("tensor_parallel",),
                    f"tensor_parallel {tp} does not divide "
                    f"the {shape.attention_heads} attention heads of {shape.name}",
                    f"use one of {legal_tp(shape.attention_heads, max(have, 8))}",
                )
                continue
            allocated = _allocate(host, dep, free, ctx, i) if host.gpus else []
            if allocated is None:
                continue
            plans.append(_plan_one(host, dep, shape, quant, allocated, gpu_gib, catalog, files_gib))
            model_key = f"{shape.id}:{quant.name}"
            if model_key not in counted_models:
                counted_models.add(model_key)
                disk_needed += plans[-1].model_files_gib
        _account_gpus(host, plans, gpus, ctx)
        notes = []
        if host.models_disk_gib is not None and disk_needed > host.models_disk_gib:
            notes.append(
                f"model files need {disk_needed:.1f} GiB but {host.models_dir} has "
                f"{host.models_disk_gib:.1f} GiB"
            )
        host_plans.append(HostPlan(host, gpu_model, gpus, plans, disk_needed, host.models_disk_gib, notes))

    for pool, count in pool_backends.items():
        if count == 0:
            origin = fleet.origin("all", "provision_pools")
            msg = f"pool '{pool}' has no backend: no deployment names it"
            fix = f"add a deployment with 'pool: {pool}', or remove the pool"
            ctx.problems.append(
                origin.problem((pool,), msg, fix)
                if origin
                else Problem(fleet.file, f"provision_pools.{pool}", msg, fix)
            )
    _check_pools(fleet, ctx)
    if fleet.pools and not fleet.members(GATEWAY_GROUP):
        warnings.append("pools are defined but no host is in the 'gateway' group: nothing will route to them")
    if ctx.problems:
        raise InvalidInput(ctx.problems)
    return FleetPlan(fleet, host_plans, warnings)


def _check_pools(fleet: Fleet, ctx: _Ctx) -> None:
    paths: dict[str, str] = {}
    defaults = [name for name, p in fleet.pools.items() if p.default or p.path == "/v1/"]
    origin = fleet.origin("all", "provision_pools")
    for name, pool in fleet.pools.items():
        if pool.path in paths:
            msg = f"pools '{paths[pool.path]}' and '{name}' share the path {pool.path}"
            fix = "give each pool its own path, e.g. /v1/<pool>/"
            ctx.problems.append(
                origin.problem((name, "path"), msg, fix)
                if origin
                else Problem(fleet.file, f"provision_pools.{name}.path", msg, fix)
            )
        paths[pool.path] = name
    if len(defaults) > 1:
        msg = f"more than one default pool: {', '.join(defaults)}"
        fix = "mark exactly one pool 'default: true' (the one behind plain /v1/)"
        ctx.problems.append(
            origin.problem((), msg, fix) if origin else Problem(fleet.file, "provision_pools", msg, fix)
        )


def detected_gpu_memory(host: str) -> float | None:
    """Per-GPU memory the driver reported on the last run (Ansible's fact cache), if any."""
    from provision.runner import facts_dir

    try:
        facts = json.loads((facts_dir() / host).read_text()).get("provision_gpu_facts") or {}
    except (OSError, ValueError, AttributeError):
        return None
    mib = facts.get("memory_mib") if facts.get("status") == "ok" else None
    return mib / 1024 if mib else None


def _gpu_memory(
    host: Host, ctx: _Ctx, catalog: Catalog, warnings: list[str]
) -> tuple[float | None, str | None]:
    declared, model = _declared_gpu_memory(host, ctx, catalog)
    detected = detected_gpu_memory(host.name) if declared else None
    if detected and declared and abs(detected - declared) > 0.01 * declared:
        warnings.append(
            f"{host.name}: planned with the detected {detected:.1f} GiB per GPU (the inventory or "
            f"GPU table says {declared:.1f})"
        )
        return detected, model
    return declared, model


def _declared_gpu_memory(host: Host, ctx: _Ctx, catalog: Catalog) -> tuple[float | None, str | None]:
    if not host.gpus:
        return None, None
    if host.gpus.memory_gib:
        return host.gpus.memory_gib, host.gpus.model
    known = catalog.gpu(host.gpus.model)
    if known is None:
        close = catalog.suggest_gpu(host.gpus.model)
        hint = f"did you mean '{close[0]}'? Or " if close else ""
        ctx.var(
            host.name,
            "provision_gpus",
            ("model",),
            f"unknown GPU model '{host.gpus.model}'",
            f"{hint}declare memory_gib for it",
        )
        return None, host.gpus.model
    return known.memory_gib, known.name


# kv_cache_dtype values each engine role can pass on (vLLM 0.11 --kv-cache-dtype; llama.cpp
# --cache-type-k/-v; the TGI role sets none). Ollama's own is ollama.kv_cache_type.
KV_CACHE_TYPES = {
    "vllm": ("auto", "bf16", "fp8"),
    "tgi": ("auto",),
    "llamacpp": ("auto", "fp16", "q8_0", "q4_0"),
    "ollama": ("auto",),
}
GGML_QUANT_BLOCK = 32  # q8_0 / q4_0 blocks: a quantized KV cache needs head_dim % 32 == 0


def _check_kv_cache_type(dep: Deployment, head_dim: int, ctx: _Ctx, host: str, i: int) -> None:
    allowed = KV_CACHE_TYPES[dep.engine]
    if dep.kv_cache_dtype not in allowed:
        fix = f"use one of {', '.join(allowed)}"
        if dep.engine == "ollama":
            fix = "set ollama.kv_cache_type (f16, q8_0 or q4_0) instead and leave kv_cache_dtype out"
        elif dep.engine == "vllm" and dep.kv_cache_dtype == "fp16":
            fix = "use auto (the model's own 16-bit dtype), bf16 or fp8"
        ctx.dep(host, i, ("kv_cache_dtype",), f"{dep.engine} has no '{dep.kv_cache_dtype}' KV cache", fix)
        return
    kv = dep.ollama.kv_cache_type if dep.engine == "ollama" and dep.ollama else dep.kv_cache_dtype
    if kv in ("q8_0", "q4_0") and head_dim % GGML_QUANT_BLOCK:
        where = ("ollama", "kv_cache_type") if dep.engine == "ollama" else ("kv_cache_dtype",)
        ctx.dep(
            host,
            i,
            where,
            f"a {kv} KV cache needs a head dimension divisible by {GGML_QUANT_BLOCK}; "
            f"{dep.model} has {head_dim}",
            "use f16 for this model",
        )


def _passthrough(dep: Deployment, quant: QuantSpec, catalog: Catalog) -> dict[str, Any]:
    """What roles read from the deployment as it is, plus where the catalog says the model lives."""
    spec = catalog.model(dep.model)
    out: dict[str, Any] = {
        "weight": dep.weight,
        "engine_args": dict(dep.engine_args),
        # the catalog keys its variant repositories by format (gguf, awq, gptq, fp8)
        "hf_repo": (spec.hf_variants.get(quant.format) or spec.hf_repo) if spec else None,
        "ollama_tag": spec.ollama_tags.get(quant.name) if spec else None,
        "license": spec.license if spec else None,
        "gated": spec.gated if spec else False,
        "source": dep.source.model_dump(exclude_none=True) if dep.source else None,
    }
    if dep.engine == "ollama":
        out["ollama"] = dep.ollama.model_dump() if dep.ollama else {"preload": True, "modelfile": None}
    return out


def _plan_one(
    host: Host,
    dep: Deployment,
    shape: ModelShape,
    quant: QuantSpec,
    gpus: list[int],
    gpu_gib: float | None,
    catalog: Catalog,
    files_gib: float | None,
) -> DeploymentPlan:
    kv_elem = element_bytes(dep, catalog)
    fa = flash_attention(dep)
    on_gpu = bool(gpus)
    split = max(len(gpus), 1)
    sizing = size(shape, quant, dep.engine, split, dep.context, dep.concurrency, kv_elem, fa, on_gpu)
    warnings: list[str] = []
    if on_gpu and gpu_gib:
        capacity, reserved = capacity_per_gpu(dep, gpu_gib)
    elif host.memory_gib:
        capacity, reserved = host.memory_gib, 0.0
    else:
        capacity, reserved = None, 0.0
        warnings.append("CPU deployment: memory not checked (declare provision_memory_gib)")
    if dep.gpu_layers is not None and on_gpu and dep.gpu_layers < shape.layers:
        frac = dep.gpu_layers / shape.layers
        sizing.weights *= frac
        sizing.kv *= frac
        warnings.append(PARTIAL_OFFLOAD_WARNING)
    total = sizing.total
    if reserved == 0.0:
        reserved = total
    fits = capacity is None or total <= capacity
    budget = capacity if capacity is not None else float("inf")
    fixed = sizing.weights + sizing.overhead
    max_ctx = (
        largest_fit(budget, fixed, sizing.kv_per_token, dep.concurrency, shape.max_context)
        if capacity is not None
        else shape.max_context
    )
    max_conc = (
        largest_fit(budget, fixed, sizing.kv_per_token, dep.context, 4096)
        if capacity is not None
        else dep.concurrency
    )
    files = files_gib if files_gib is not None else weight_bytes(shape, quant) / GIB
    settings = engine_settings(dep, shape, quant, gpus, sizing, capacity or 0.0, host)
    plan = DeploymentPlan(
        host=host.name,
        name=dep.name,
        engine=dep.engine,
        model=shape.id,
        model_name=shape.name,
        model_source=shape.source,
        quantization=quant.name,
        tensor_parallel=dep.tensor_parallel,
        gpu_indexes=gpus,
        context_tokens=dep.context,
        concurrency=dep.concurrency,
        weights_gib=sizing.weights,
        kv_cache_gib=sizing.kv,
        overhead_gib=sizing.overhead,
        total_gib=total,
        capacity_gib=capacity,
        reserved_gib=reserved,
        fits=fits,
        max_context=max_ctx,
        max_concurrency=max_conc,
        model_files_gib=files,
        settings=settings,
        warnings=warnings,
        pool=dep.pool,
        port=dep.resolved_port,
        model_dir=f"{host.models_dir.rstrip('/')}/{shape.id}/{quant.name}",
        passthrough=_passthrough(dep, quant, catalog),
    )
    if not fits and gpu_gib:
        plan.suggestions = _suggestions(dep, shape, quant, host, gpu_gib, catalog, kv_elem, fa)
    return plan


def _account_gpus(host: Host, plans: list[DeploymentPlan], gpus: list[GpuUse], ctx: _Ctx) -> None:
    for plan in plans:
        for g in plan.gpu_indexes:
            use = gpus[g]
            use.used_gib += plan.reserved_gib
            use.deployments.append(plan.name)
            if plan.engine in ("vllm", "tgi"):
                use.vllm_gmu += plan.settings.get(
                    "gpu_memory_utilization", plan.settings.get("cuda_memory_fraction", VLLM_GMU_DEFAULT)
                )
    for plan in plans:
        gmu = plan.settings.get("gpu_memory_utilization", plan.settings.get("cuda_memory_fraction"))
        shared = any(len(gpus[g].deployments) > 1 for g in plan.gpu_indexes)
        if gmu is None or shared or VLLM_GMU_RANGE[0] <= gmu <= VLLM_GMU_RANGE[1]:
            continue
        idx = next(i for i, d in enumerate(host.deployments) if d.name == plan.name)
        ctx.dep(
            host.name,
            idx,
            ("gpu_memory_utilization",),
            f"gpu_memory_utilization {gmu} is outside {VLLM_GMU_RANGE[0]}-{VLLM_GMU_RANGE[1]}",
            "0.88-0.92 is safe (field guide lesson 5: 0.95 OOMs on long prompts, below 0.80 "
            "wastes the GPU); only instances sharing a GPU go lower, summing below "
            f"{VLLM_GMU_SHARED_MAX}",
        )
    for use in gpus:
        if len(use.deployments) > 1 and use.vllm_gmu >= VLLM_GMU_SHARED_MAX:
            idx = next(i for i, d in enumerate(host.deployments) if d.name == use.deployments[-1])
            ctx.dep(
                host.name,
                idx,
                ("gpu_memory_utilization",),
                f"GPU {use.index} is oversubscribed: co-located vLLM/TGI instances "
                f"({', '.join(use.deployments)}) reserve {use.vllm_gmu:.2f} of it",
                f"lower their gpu_memory_utilization so they sum below {VLLM_GMU_SHARED_MAX} "
                "(e.g. 0.45 each for two)",
            )
        if not use.fits:
            for plan in plans:
                if use.index in plan.gpu_indexes and plan.fits:
                    plan.fits = False
                    plan.warnings.append(
                        f"GPU {use.index} is shared and oversubscribed: "
                        f"{use.used_gib:.1f} of {use.capacity_gib:.1f} GiB"
                    )

"""`provision models estimate`: one model on one host, built from the same planner."""

from __future__ import annotations

from pathlib import Path

from provision.catalog import ENGINES, load_catalog
from provision.errors import InvalidInput, Problem
from provision.fleetplan import plan_fleet
from provision.planner import DeploymentPlan
from provision.schema import Deployment, Fleet, GpuDecl, Host, Pool


def estimate_one(
    model: str,
    *,
    quant: str | None,
    context: int,
    concurrency: int,
    tp: int,
    engine: str | None,
    gpu: str,
    gpu_memory_gib: float | None,
    gpu_memory_utilization: float | None,
) -> DeploymentPlan:
    catalog = load_catalog()
    local = Path(model)
    is_local = local.exists()
    if engine is None:
        gguf = (quant or "").upper().startswith(("Q", "F16", "IQ")) or local.suffix == ".gguf"
        engine = "llamacpp" if gguf else "vllm"
    if engine not in ENGINES:
        raise InvalidInput(
            [Problem("--engine", "", f"unknown engine '{engine}'", f"use one of {', '.join(ENGINES)}")]
        )
    if gpu_memory_gib is None and catalog.gpu(gpu) is None:
        close = catalog.suggest_gpu(gpu)
        hint = f"did you mean '{close[0]}'? Or " if close else ""
        raise InvalidInput([Problem("--gpu", "", f"unknown GPU '{gpu}'", f"{hint}give --gpu-memory-gib")])
    try:
        dep = Deployment(
            name="estimate",
            engine=engine,
            model=model if not is_local else local.stem,
            model_path=str(local.resolve()) if is_local else None,
            quantization=quant,
            context=context,
            concurrency=concurrency,
            tensor_parallel=tp,
            pool="estimate",
            gpu_memory_utilization=gpu_memory_utilization,
        )
        gpus = GpuDecl(model=gpu, count=max(tp, 1), memory_gib=gpu_memory_gib)
    except Exception as exc:  # pydantic ValidationError: report as a usage problem
        raise InvalidInput(
            [Problem("command line", "", str(exc).splitlines()[-1].strip(), "check the option values")]
        ) from None
    fleet = Fleet(
        file="command line",
        hosts={"estimate": Host(name="estimate", groups=[], gpus=gpus, deployments=[dep])},
        pools={"estimate": Pool(path="/v1/")},
    )
    plan = plan_fleet(fleet, Path.cwd(), catalog)
    return plan.deployments[0]

"""Filters of role tgi: text-generation-launcher arguments and container environment.

Pure functions (tests/unit/test_engine_flags.py imports this file by path):

* ``tgi_quantize(deployment, config)`` -> the ``--quantize`` value, or "" when TGI reads the
  method from the checkpoint's quantization_config (AWQ, GPTQ, compressed-tensors; the
  launcher docs: "It is not necessary to specify this option for pre-quantized models").
  Only FP8 applied on load to a 16-bit checkpoint must be named.
* ``tgi_launcher_args(deployment, model_id, bind_address, quantize='', master_port=None,
  usage_stats='off', extra=None)``
  -> the arguments after the image's entrypoint (/tgi-entrypoint.sh -> text-generation-launcher).
* ``tgi_container_env(local, nccl_p2p_disable=None, nccl_ib_disable=None, extra=None)``

Option names checked against text-generation-launcher 3.x (docs/source/reference/launcher.md;
docs/engines.md lists them). The API key never appears here: API_KEY in a 0600 env file.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

MANAGED = {
    "model-id",
    "hostname",
    "port",
    "p",
    "num-shard",
    "sharded",
    "max-input-tokens",
    "max-input-length",
    "max-total-tokens",
    "max-batch-prefill-tokens",
    "max-concurrent-requests",
    "cuda-memory-fraction",
    "master-port",
    "quantize",
    "usage-stats",
    "api-key",
}
USAGE_STATS = ("on", "off", "no-stack")


def _settings(dep: dict[str, Any]) -> dict[str, Any]:
    settings = dep.get("settings")
    if not isinstance(settings, dict):
        raise AnsibleFilterError(f"deployment {dep.get('name')!r} has no planner settings")
    return settings


def _num(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def tgi_quantize(deployment: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    quant = str(deployment.get("quantization") or "").upper()
    if quant == "FP8" and not (config or {}).get("quantization_config"):
        return "fp8"
    return ""


def tgi_launcher_args(
    deployment: dict[str, Any],
    model_id: str,
    bind_address: str,
    quantize: str = "",
    master_port: int | None = None,
    usage_stats: str = "off",
    extra: dict[str, Any] | None = None,
) -> list[str]:
    s = _settings(deployment)
    max_input, max_total = int(s["max_input_tokens"]), int(s["max_total_tokens"])
    if max_input >= max_total:
        raise AnsibleFilterError(f"max_input_tokens {max_input} must be below max_total_tokens {max_total}")
    fraction = float(s["cuda_memory_fraction"])
    if not 0 < fraction <= 1:
        raise AnsibleFilterError(f"cuda_memory_fraction {fraction} is outside (0, 1]")
    if usage_stats not in USAGE_STATS:
        raise AnsibleFilterError(f"tgi_usage_stats {usage_stats!r}: use one of {', '.join(USAGE_STATS)}")
    shards = int(s["num_shard"])
    args = [
        "--model-id",
        model_id,
        "--hostname",
        bind_address,
        "--port",
        str(int(deployment.get("port") or 8081)),
        "--num-shard",
        str(shards),
        "--max-input-tokens",
        str(max_input),
        "--max-total-tokens",
        str(max_total),
        "--max-batch-prefill-tokens",
        str(int(s["max_batch_prefill_tokens"])),
        "--max-concurrent-requests",
        str(int(s["max_concurrent_requests"])),
        "--cuda-memory-fraction",
        _num(fraction),
    ]
    if shards > 1:
        # The shards rendezvous over torch.distributed on this port; on the host network two
        # sharded deployments must not share it.
        args += ["--master-port", str(int(master_port if master_port else 29500))]
    if quantize:
        args += ["--quantize", quantize]
    args += ["--usage-stats", usage_stats]
    for key, value in (extra or deployment.get("engine_args") or {}).items():
        flag = str(key).lstrip("-").replace("_", "-")
        if flag in MANAGED:
            raise AnsibleFilterError(
                f"engine_args {key!r}: the role sets --{flag} itself"
                + (
                    " (the API key goes in tgi_api_key, never on the command line)"
                    if flag == "api-key"
                    else ""
                )
            )
        if value is True:
            args.append(f"--{flag}")
        elif value is False or value is None:
            continue
        else:
            args += [f"--{flag}", _num(value)]
    return args


def _flag01(value: Any) -> str:
    if isinstance(value, str):
        value = value.strip().lower() in ("1", "true", "yes", "on")
    return "1" if value else "0"


def tgi_container_env(
    local: bool,
    nccl_p2p_disable: Any = None,
    nccl_ib_disable: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    env: dict[str, str] = {}
    if local:
        env["HF_HUB_OFFLINE"] = "1"
    if nccl_p2p_disable is not None and nccl_p2p_disable != "":
        env["NCCL_P2P_DISABLE"] = _flag01(nccl_p2p_disable)
    if nccl_ib_disable is not None and nccl_ib_disable != "":
        env["NCCL_IB_DISABLE"] = _flag01(nccl_ib_disable)
    for key, value in (extra or {}).items():
        if key in ("API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            raise AnsibleFilterError(f"{key} is a secret: it goes in the 0600 env file, not tgi_env")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
            raise AnsibleFilterError(f"tgi_env: {key!r} is not an environment variable name")
        env[str(key)] = _flag01(value) if isinstance(value, bool) else str(value)
    return env




class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "tgi_quantize": tgi_quantize,
            "tgi_launcher_args": tgi_launcher_args,
            "tgi_container_env": tgi_container_env,
        }

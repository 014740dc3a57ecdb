"""Filters of role vllm: `vllm serve` arguments and container environment from a planner dict.

Pure functions (tests/unit/test_engine_flags.py imports this file by path):

* ``vllm_model_layout(deployment, files, container_dir='/models')`` -> where the model sits in
  the container: ``{model, tokenizer, hf_config_path, gguf}`` from the file names the models
  stage placed in model_dir (a single-file GGUF is served as the file; vLLM loads no other).
* ``vllm_quantization(deployment, config)`` -> the ``--quantization`` value, or "" when vLLM
  detects it itself (pre-quantized AWQ/GPTQ/FP8/compressed-tensors checkpoints, GGUF files):
  naming ``awq`` would force the slow kernel over awq_marlin. Only FP8 applied on the fly to
  a 16-bit checkpoint (no quantization_config in config.json) must be named.
* ``vllm_serve_args(deployment, layout, bind_address, memory='utilization', quantization='', extra=None)``
  -> the argument list after the image's `vllm serve` entrypoint.
* ``vllm_container_env(local, nccl_p2p_disable=None, nccl_ib_disable=None, extra=None, usage_stats=False)``

Flag names checked against vLLM v0.28.0 (docs/engines.md lists them with their sources).
The API key never appears here: it goes in a 0600 env file as VLLM_API_KEY.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

# Planner kv_cache_dtype -> vLLM --kv-cache-dtype (CacheDType). fp16/q8_0/q4_0 have no vLLM form.
KV_CACHE_DTYPES = {"auto": "auto", "bf16": "bfloat16", "fp8": "fp8"}
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
GGUF_QUANT = re.compile(r"^(I?Q\d|F16$|F32$|BF16-GGUF$)", re.IGNORECASE)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
# Flags the role sets itself; engine_args may not repeat them (and never the API key).
MANAGED = {
    "model",
    "served-model-name",
    "host",
    "port",
    "tensor-parallel-size",
    "tp",
    "gpu-memory-utilization",
    "kv-cache-memory-bytes",
    "max-model-len",
    "max-num-seqs",
    "max-num-batched-tokens",
    "dtype",
    "kv-cache-dtype",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "quantization",
    "tokenizer",
    "hf-config-path",
    "api-key",
}


def _settings(dep: dict[str, Any]) -> dict[str, Any]:
    settings = dep.get("settings")
    if not isinstance(settings, dict):
        raise AnsibleFilterError(f"deployment {dep.get('name')!r} has no planner settings")
    return settings


def _num(value: Any) -> str:
    if isinstance(value, bool):
        raise AnsibleFilterError(f"expected a number, got {value!r}")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def vllm_model_layout(
    deployment: dict[str, Any], files: list[str], container_dir: str = "/models"
) -> dict[str, Any]:
    names = sorted({str(f).rsplit("/", 1)[-1] for f in files})
    ggufs = [n for n in names if n.endswith(".gguf")]
    quant = str(deployment.get("quantization") or "")
    if ggufs or GGUF_QUANT.match(quant):
        if len(ggufs) != 1:
            raise AnsibleFilterError(
                f"deployment {deployment.get('name')!r}: vLLM loads a single-file GGUF only, "
                f"{deployment.get('model_dir')} holds {len(ggufs)} .gguf files "
                "(merge split files with llama.cpp's gguf-split --merge)"
            )
        return {
            "model": f"{container_dir}/{ggufs[0]}",
            # vLLM's GGUF guide: use the base model's tokenizer (and config) when available.
            "tokenizer": container_dir if any(n in names for n in TOKENIZER_FILES) else "",
            "hf_config_path": container_dir if "config.json" in names else "",
            "gguf": True,
        }
    if "config.json" not in names:
        raise AnsibleFilterError(
            f"deployment {deployment.get('name')!r}: {deployment.get('model_dir')} has no config.json "
            "(a Hugging Face snapshot directory is expected)"
        )
    return {"model": container_dir, "tokenizer": "", "hf_config_path": "", "gguf": False}


def vllm_quantization(deployment: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    quant = str(deployment.get("quantization") or "").upper()
    if quant == "FP8" and not (config or {}).get("quantization_config"):
        return "fp8"  # dynamic FP8 of a 16-bit checkpoint: nothing in config.json says it
    return ""


def vllm_serve_args(
    deployment: dict[str, Any],
    layout: dict[str, Any],
    bind_address: str,
    memory: str = "utilization",
    quantization: str = "",
    extra: dict[str, Any] | None = None,
) -> list[str]:
    s = _settings(deployment)
    kv = str(s.get("kv_cache_dtype", "auto"))
    if kv not in KV_CACHE_DTYPES:
        raise AnsibleFilterError(
            f"deployment {deployment.get('name')!r}: kv_cache_dtype {kv!r} has no vLLM --kv-cache-dtype "
            f"(use one of {', '.join(KV_CACHE_DTYPES)})"
        )
    dtype = str(s.get("dtype", "auto"))
    if dtype not in DTYPES:
        raise AnsibleFilterError(f"dtype {dtype!r}: vLLM takes {', '.join(DTYPES)}")
    args = [
        str(layout["model"]),
        "--served-model-name",
        str(s["served_model_name"]),
        "--host",
        bind_address,
        "--port",
        str(int(deployment.get("port") or 8000)),
        "--tensor-parallel-size",
        str(int(s["tensor_parallel_size"])),
    ]
    if memory == "kv_bytes":
        args += ["--kv-cache-memory-bytes", str(int(s["kv_cache_memory_bytes"]))]
    elif memory == "utilization":
        gmu = float(s["gpu_memory_utilization"])
        if not 0 < gmu <= 1:
            raise AnsibleFilterError(f"gpu_memory_utilization {gmu} is outside (0, 1]")
        args += ["--gpu-memory-utilization", _num(gmu)]
    else:
        raise AnsibleFilterError(f"vllm_memory_mode {memory!r}: use utilization or kv_bytes")
    args += [
        "--max-model-len",
        str(int(s["max_model_len"])),
        "--max-num-seqs",
        str(int(s["max_num_seqs"])),
        "--max-num-batched-tokens",
        str(int(s["max_num_batched_tokens"])),
        "--dtype",
        dtype,
        "--kv-cache-dtype",
        KV_CACHE_DTYPES[kv],
        "--enable-prefix-caching" if s.get("enable_prefix_caching", True) else "--no-enable-prefix-caching",
    ]
    if quantization:
        args += ["--quantization", quantization]
    if layout.get("tokenizer"):
        args += ["--tokenizer", str(layout["tokenizer"])]
    if layout.get("hf_config_path"):
        args += ["--hf-config-path", str(layout["hf_config_path"])]
    for key, value in (extra or deployment.get("engine_args") or {}).items():
        flag = str(key).lstrip("-").replace("_", "-")
        if flag in MANAGED:
            raise AnsibleFilterError(
                f"engine_args {key!r}: the role sets --{flag} from the plan"
                + (
                    " (the API key goes in vllm_api_key, never on the command line)"
                    if flag == "api-key"
                    else ""
                )
            )
        if value is True:
            args.append(f"--{flag}")
        elif value is False or value is None:
            continue
        else:
            args += [f"--{flag}", _num(value) if isinstance(value, (int, float)) else str(value)]
    return args


def _flag01(value: Any) -> str:
    if isinstance(value, str):
        value = value.strip().lower() in ("1", "true", "yes", "on")
    return "1" if value else "0"


def vllm_container_env(
    local: bool,
    nccl_p2p_disable: Any = None,
    nccl_ib_disable: Any = None,
    extra: dict[str, Any] | None = None,
    usage_stats: bool = False,
) -> dict[str, str]:
    env: dict[str, str] = {}
    if not usage_stats:
        # vLLM reports anonymous usage to its authors unless told not to (docs/usage/usage_stats.md).
        env["VLLM_NO_USAGE_STATS"] = "1"
        env["DO_NOT_TRACK"] = "1"
    if local:
        # The weights are mounted read-only: never reach for the Hub.
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    if nccl_p2p_disable is not None and nccl_p2p_disable != "":
        env["NCCL_P2P_DISABLE"] = _flag01(nccl_p2p_disable)
    if nccl_ib_disable is not None and nccl_ib_disable != "":
        env["NCCL_IB_DISABLE"] = _flag01(nccl_ib_disable)
    for key, value in (extra or {}).items():
        if key in ("VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            raise AnsibleFilterError(f"{key} is a secret: it goes in the 0600 env file, not vllm_env")
        env[str(key)] = _flag01(value) if isinstance(value, bool) else str(value)
    return env




class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "vllm_model_layout": vllm_model_layout,
            "vllm_quantization": vllm_quantization,
            "vllm_serve_args": vllm_serve_args,
            "vllm_container_env": vllm_container_env,
        }

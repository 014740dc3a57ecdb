"""Filters of role ollama: the server environment and the Modelfiles, from the planner's dicts.

Pure functions (tests/unit/test_engine_flags.py imports this file by path):

* ``ollama_environment(deployments, bind_address, models_dir, gpus_declared=0, extra=None)``
  -> the ordered ``{NAME: value}`` of the drop-in override.conf. One server per host serves
  every Ollama deployment of the host, so the server-wide settings must agree.
* ``ollama_systemd_environment(env)`` -> the ``Environment="K=V"`` lines (systemd quoting).
* ``ollama_modelfile(deployment, base, digest='', bundled=None)`` -> the Modelfile text for the
  deployment's served model.
* ``ollama_base_model(deployment, tags, gguf_file="")`` -> what FROM names (a library tag or a file).
* ``ollama_bundle_metadata(slurp_results)`` -> an Ollama library bundle's params/template/system/license.
* ``ollama_managed_models(state, served, bases, pulled)`` -> the models the role manages, and the stale ones.

Names checked against Ollama's envconfig (docs/engines.md lists them with their sources).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - the unit tests run with ansible installed
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

# Server-wide settings every Ollama deployment of a host must share (the planner checks it too).
SERVER_KEYS = ("keep_alive", "max_loaded_models", "max_queue", "flash_attention", "kv_cache_type")
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
KEEP_ALIVE_RE = re.compile(r"^(-1|0|\d+(\.\d+)?(ms|s|m|h)?)$")


def _settings(dep: dict[str, Any]) -> dict[str, Any]:
    settings = dep.get("settings")
    if not isinstance(settings, dict):
        raise AnsibleFilterError(f"deployment {dep.get('name')!r} has no planner settings")
    return settings


def _bool01(value: Any) -> str:
    if isinstance(value, str):
        value = value.strip().lower() in ("1", "true", "yes", "on")
    return "1" if value else "0"


def ollama_environment(
    deployments: list[dict[str, Any]],
    bind_address: str,
    models_dir: str,
    gpus_declared: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    if not deployments:
        raise AnsibleFilterError("no Ollama deployments on this host")
    first = _settings(deployments[0])
    ports = {int(d.get("port") or 11434) for d in deployments}
    if len(ports) != 1:
        raise AnsibleFilterError(f"one Ollama server per host: its deployments name ports {sorted(ports)}")
    for dep in deployments[1:]:
        s = _settings(dep)
        differ = [k for k in SERVER_KEYS if s.get(k) != first.get(k)]
        if differ:
            raise AnsibleFilterError(
                f"Ollama deployments {deployments[0]['name']!r} and {dep['name']!r} share one server "
                f"but differ in {', '.join(differ)}: give them the same ollama: settings"
            )
    keep_alive = str(first.get("keep_alive", "5m"))
    if not KEEP_ALIVE_RE.match(keep_alive):
        raise AnsibleFilterError(
            f"keep_alive {keep_alive!r} is not a duration Ollama reads (30m, 1h, 300, -1, 0)"
        )
    kv_type = str(first.get("kv_cache_type", "f16"))
    if kv_type not in KV_CACHE_TYPES:
        raise AnsibleFilterError(f"kv_cache_type {kv_type!r}: Ollama takes {', '.join(KV_CACHE_TYPES)}")
    host = bind_address.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    env: dict[str, str] = {
        "OLLAMA_HOST": f"{host}:{ports.pop()}",
        "OLLAMA_MODELS": models_dir,
        "OLLAMA_NUM_PARALLEL": str(max(int(_settings(d)["num_parallel"]) for d in deployments)),
        "OLLAMA_CONTEXT_LENGTH": str(max(int(_settings(d)["context_length"]) for d in deployments)),
        "OLLAMA_KEEP_ALIVE": keep_alive,
        "OLLAMA_MAX_LOADED_MODELS": str(int(first.get("max_loaded_models", 1))),
        "OLLAMA_MAX_QUEUE": str(int(first.get("max_queue", 512))),
        "OLLAMA_FLASH_ATTENTION": _bool01(first.get("flash_attention", True)),
        "OLLAMA_KV_CACHE_TYPE": kv_type,
    }
    if kv_type != "f16" and env["OLLAMA_FLASH_ATTENTION"] != "1":
        raise AnsibleFilterError(
            f"OLLAMA_KV_CACHE_TYPE={kv_type} needs flash attention: set flash_attention: true"
        )
    used = sorted({int(g) for d in deployments for g in (_settings(d).get("gpus") or [])})
    if gpus_declared and used and used != list(range(int(gpus_declared))):
        # Only some of the host's GPUs are Ollama's: pin them, in nvidia-smi's (PCI) order.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in used)
    for key, value in (extra or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
            raise AnsibleFilterError(f"ollama_extra_env: {key!r} is not an environment variable name")
        env[str(key)] = _bool01(value) if isinstance(value, bool) else str(value)
    return env


def _systemd_quote(value: str) -> str:
    # Inside Environment="...": backslash and double quote escaped; % is a specifier.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def ollama_systemd_environment(env: dict[str, str]) -> list[str]:
    lines = []
    for key, value in env.items():
        if "\n" in str(value):
            raise AnsibleFilterError(f"{key}: a newline cannot go into a systemd Environment= line")
        lines.append(f'Environment="{key}={_systemd_quote(str(value))}"')
    return lines


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    if "\n" in text:
        raise AnsibleFilterError(f"a PARAMETER value cannot span lines: {text!r}")
    # Quoted like the Modelfile docs' examples (PARAMETER stop "<|eot_id|>"); json escapes " and \.
    return json.dumps(text, ensure_ascii=False)


def _triple(command: str, text: str) -> str:
    if '"""' in text:
        raise AnsibleFilterError(f'{command} text contains """, which ends a Modelfile string')
    return f'{command} """{text}"""'


def ollama_modelfile(
    deployment: dict[str, Any], base: str, digest: str = "", bundled: dict[str, Any] | None = None
) -> str:
    """FROM base, the planner's num_ctx (and num_gpu for a planned partial offload), then the
    deployment's ollama.modelfile: PARAMETERs (lists repeat), TEMPLATE, SYSTEM. `digest` (the
    models stage's manifest digest of a placed GGUF) goes into a comment, so new files behind
    the same FROM path change the Modelfile and rebuild the served model.

    `bundled`: what an Ollama library bundle carried next to its model.gguf (its
    ollama/params.json, template, system and license; docs/models.md), so the imported model
    behaves as the library's does. The inventory's ollama.modelfile wins key by key, and the
    planner's num_ctx wins over the bundle's."""
    settings = _settings(deployment)
    spec = ((deployment.get("ollama") or {}).get("modelfile")) or {}
    bundled = bundled or {}
    bundle_params = bundled.get("params") or {}
    if not isinstance(bundle_params, dict):
        raise AnsibleFilterError("the bundle's ollama/params.json is not a JSON object")
    spec_params: dict[str, Any] = dict(spec.get("parameters") or {})
    params: dict[str, Any] = {}
    if "num_ctx" not in spec_params:
        params["num_ctx"] = int(settings["context_length"])
    params.update({k: v for k, v in bundle_params.items() if k not in spec_params and k != "num_ctx"})
    params.update(spec_params)
    if settings.get("num_gpu") is not None and "num_gpu" not in spec_params:
        params["num_gpu"] = int(settings["num_gpu"])
    lines = [
        f"# Managed by provision (role ollama): deployment {deployment['name']}, model "
        f"{settings.get('model_name') or deployment.get('model')}.",
        "# Edit the inventory (ollama.modelfile), not this file.",
        *([f"# model files: manifest digest {digest}"] if digest else []),
        f"FROM {base}",
    ]
    for key, value in params.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", str(key)):
            raise AnsibleFilterError(f"PARAMETER name {key!r} is not a Modelfile parameter name")
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {_param_value(item)}")
    for command in ("template", "system", "license"):
        text = spec.get(command) or bundled.get(command)
        if text:
            lines.append(_triple(command.upper(), str(text)))
    return "\n".join(lines) + "\n"


def ollama_base_model(
    deployment: dict[str, Any], tags: dict[str, str] | None = None, gguf_file: str = ""
) -> str:
    """The model FROM names: a GGUF file the models stage placed (air-gapped) wins; else the
    Ollama library tag the inventory names in ollama_model_tags ("<model>:<QUANT>" or "<model>"
    keys), else the catalog's tag for the model and quantization (the plan's ollama_tag)."""
    if gguf_file:
        return gguf_file
    tags = tags or {}
    model, quant = str(deployment.get("model", "")), str(deployment.get("quantization") or "")
    for candidate in (
        tags.get(f"{model}:{quant}"),
        tags.get(model),
        deployment.get("ollama_tag"),
    ):
        if candidate:
            return str(candidate)
    raise AnsibleFilterError(
        f"deployment {deployment.get('name')!r}: no Ollama model to build from. No GGUF file in "
        f"{deployment.get('model_dir')} and no library tag for {model} {quant}: set "
        f"ollama_model_tags['{model}:{quant}'] (e.g. llama3.1:70b-instruct-q4_K_M) or place the GGUF file"
    )


def ollama_bundle_metadata(slurped: list[dict[str, Any]]) -> dict[str, Any]:
    """The slurp results of a bundle's ollama/ files -> {"params": {...}, "template": "...",
    "system": "...", "license": "..."} for ollama_modelfile's `bundled`."""
    out: dict[str, Any] = {}
    for result in slurped or []:
        if "content" not in result:
            continue
        name = str(result.get("item", result.get("source", ""))).rsplit("/", 1)[-1]
        text = base64.b64decode(result["content"]).decode("utf-8")
        if name == "params.json":
            try:
                out["params"] = json.loads(text)
            except ValueError as exc:
                raise AnsibleFilterError(f"the bundle's ollama/params.json is not JSON: {exc}") from None
        elif name in ("template", "system", "license"):
            out[name] = text
    return out


def ollama_managed_models(
    state: dict[str, Any] | None, served: list[str], bases: list[str], pulled: list[str]
) -> dict[str, list[str]]:
    """The models the role manages (recorded before, built or pulled now) and the stale ones
    among them: managed, but neither served nor a base of a served model now."""
    old = (state or {}).get("models") or []
    managed = sorted({str(m) for m in [*old, *served, *pulled]})
    needed = {str(m) for m in [*served, *bases]}
    return {"managed": managed, "stale": [m for m in managed if m not in needed]}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "ollama_environment": ollama_environment,
            "ollama_systemd_environment": ollama_systemd_environment,
            "ollama_modelfile": ollama_modelfile,
            "ollama_base_model": ollama_base_model,
            "ollama_bundle_metadata": ollama_bundle_metadata,
            "ollama_managed_models": ollama_managed_models,
        }

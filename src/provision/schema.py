"""The one pydantic schema of the fleet: hosts, GPUs, deployments, pools, gateway, monitoring.

An inventory is a standard Ansible YAML inventory; the fleet lives in variables whose names
start with `provision_` (see `HOST_VARS` and `FLEET_VARS`). Everything else in the inventory
is ordinary Ansible and left alone.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    PrivateAttr,
    field_validator,
    model_validator,
)

from provision.catalog import Engine

NAME_RE = r"^[a-z0-9][a-z0-9-]{0,40}$"
DEFAULT_PORTS: dict[str, int] = {"ollama": 11434, "vllm": 8000, "llamacpp": 8080, "tgi": 8081}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuDecl(Strict):
    """The GPUs a host has, as declared (preflight checks them against what it finds)."""

    model: str = Field(description="GPU model, e.g. A100-80GB, RTX-4090, H100-80GB")
    count: int = Field(ge=1, le=64)
    memory_gib: float | None = Field(
        default=None, gt=0, le=1024, description="per GPU; defaults to the GPU table's value"
    )


class ModelfileSpec(Strict):
    """An Ollama custom model built from a Modelfile (FROM is the deployment's model)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$")
    system: str | None = None
    parameters: dict[str, str | int | float | list[str | int | float]] = Field(default_factory=dict)
    template: str | None = None


class OllamaTuning(Strict):
    keep_alive: str = Field(default="30m", pattern=r"^(-1|0|\d+[smh]?)$")
    max_loaded_models: int = Field(default=1, ge=1, le=32)
    max_queue: int = Field(default=512, ge=1, le=100000)
    flash_attention: bool = True
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    preload: bool = True
    modelfile: ModelfileSpec | None = None


class ModelSource(Strict):
    """Where the models stage gets a deployment's files (docs/models.md)."""

    bundle: str | None = Field(
        default=None,
        description="a bundle on the controller (`provision models bundle`), or the folder above "
        "<model>/<quant>/ bundles; relative to the inventory file",
    )
    hub: bool = Field(default=False, description="the first nodes download from the hub (need internet)")
    repo: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$", description="hub repository")
    revision: str | None = Field(default=None, description="hub revision; pin a commit")
    include: list[str] | None = Field(default=None, description="file patterns (default: by quantization)")
    peers: bool = Field(default=True, description="copy from nodes that already hold the model")

    @model_validator(mode="after")
    def _an_origin(self) -> ModelSource:
        if not self.hub and not self.bundle:
            raise ValueError("a model source needs 'bundle: PATH' or 'hub: true'")
        return self


class Deployment(Strict):
    """One engine instance serving one model on one host."""

    name: str = Field(pattern=NAME_RE)
    engine: Engine
    model: str = Field(min_length=1)
    quantization: str | None = None
    model_path: str | None = Field(
        default=None,
        description="a GGUF file or a Hugging Face snapshot on the controller; when it exists "
        "the planner uses its real sizes instead of the catalog",
    )
    context: int = Field(default=8192, ge=128, le=10_000_000, description="tokens per request")
    concurrency: int = Field(default=1, ge=1, le=4096, description="requests served at once")
    tensor_parallel: int = Field(default=1, ge=1, le=64)
    pool: str = Field(pattern=NAME_RE)
    port: int | None = Field(default=None, ge=1, le=65535)
    gpus: list[int] | None = Field(default=None, description="GPU indexes; default: the next free")
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    kv_cache_dtype: Literal["auto", "fp16", "bf16", "fp8", "q8_0", "q4_0"] = "auto"
    gpu_layers: int | None = Field(default=None, ge=0, le=1000)
    weight: int = Field(default=1, ge=1, le=100)
    engine_args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    ollama: OllamaTuning | None = None
    source: ModelSource | None = Field(
        default=None, description="where the models stage gets the files; none: not placed"
    )

    @property
    def resolved_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.engine]

    @field_validator("gpus")
    @classmethod
    def _unique_gpus(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if len(set(value)) != len(value):
                raise ValueError("a GPU index is listed twice")
            if any(i < 0 for i in value):
                raise ValueError("GPU indexes start at 0")
        return value


class Pool(Strict):
    """A gateway route: requests under `path` (and for its models) go to its deployments."""

    path: str
    read_timeout_s: int = Field(default=120, ge=1, le=3600)
    default: bool = False
    description: str | None = None

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not re.fullmatch(r"/v1/([a-z0-9-]+/)?", value):
            raise ValueError("a pool path is /v1/ or /v1/<name>/ (lowercase, ending in '/')")
        return value


class Tls(Strict):
    certificate: str
    key: str


class Gateway(Strict):
    port: int = Field(default=80, ge=1, le=65535)
    server_name: str = "_"
    tls: Tls | None = None
    require_api_key: bool = True


class Monitoring(Strict):
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    scrape_interval: str = Field(default="15s", pattern=r"^\d+[smh]$")
    retention: str = Field(default="15d", pattern=r"^\d+[smhdwy]$")
    grafana: bool = True
    alertmanager: bool = False


# Variables the schema owns. Host-level ones may be set on a host, a group or `all`.
HOST_VARS: dict[str, object] = {
    "provision_gpus": GpuDecl,
    "provision_deployments": list[Deployment],
    "provision_models_dir": str,
    "provision_memory_gib": float,
    "provision_models_disk_gib": float,
    "provision_docker": bool,
    "provision_gpu_stack": bool,
    # the address every engine on the host binds (docs/engines.md); default: its private address
    "provision_engine_bind_address": IPvAnyAddress,
}
# Fleet-wide ones belong under all.vars (or group_vars/all).
FLEET_VARS: dict[str, object] = {
    "provision_pools": dict[str, Pool],
    "provision_gateway": Gateway,
    "provision_monitoring": Monitoring,
}
GATEWAY_GROUP = "gateway"
MONITORING_GROUP = "monitoring"


class Host(BaseModel):
    """A host as the planner sees it, after variable precedence."""

    name: str
    groups: list[str]
    gpus: GpuDecl | None = None
    deployments: list[Deployment] = Field(default_factory=list)
    models_dir: str = "/data/models"
    memory_gib: float | None = None
    models_disk_gib: float | None = None


class Fleet(BaseModel):
    file: str
    hosts: dict[str, Host]
    pools: dict[str, Pool] = Field(default_factory=dict)
    gateway: Gateway = Field(default_factory=Gateway)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    # (host or "all", variable) -> where it was written: inventory.Origin
    _origins: dict[tuple[str, str], Any] = PrivateAttr(default_factory=dict)

    def origin(self, host: str, var: str) -> Any:
        return self._origins.get((host, var))

    def members(self, group: str) -> list[str]:
        return [h.name for h in self.hosts.values() if group in h.groups]

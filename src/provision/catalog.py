"""The model catalog, quant formats and GPU table: data files, loaded and looked up here."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

DATA = Path(__file__).parent / "data"

Engine = Literal["ollama", "vllm", "llamacpp", "tgi"]
ENGINES: tuple[str, ...] = ("ollama", "vllm", "llamacpp", "tgi")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MLA(_Frozen):
    kv_lora_rank: int
    qk_rope_head_dim: int


class MoE(_Frozen):
    experts: int
    experts_per_token: int
    shared_experts: int = 0


class ModelSpec(_Frozen):
    """What memory math needs to know about one model (from its config.json)."""

    id: str
    family: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    architecture: str
    params: int
    active_params: int | None = None
    layers: int
    hidden_size: int
    intermediate_size: int | None = None
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    tie_word_embeddings: bool = False
    sliding_window: int | None = None
    attention: Literal["mha", "gqa", "mla"] = "gqa"
    mla: MLA | None = None
    moe: MoE | None = None
    torch_dtype: str = "bfloat16"
    license: str
    gated: bool = False
    hf_repo: str
    hf_variants: dict[str, str] = Field(default_factory=dict)
    ollama: str | None = None
    ollama_tags: dict[str, str] = Field(default_factory=dict)
    korean: int = Field(ge=0, le=4)
    use_cases: list[str] = Field(default_factory=list)

    @property
    def params_b(self) -> float:
        return self.params / 1e9

    @property
    def embedding_params(self) -> int:
        """Input embeddings plus the output head (once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def mla_latent(self) -> int | None:
        return self.mla.kv_lora_rank + self.mla.qk_rope_head_dim if self.mla else None


class QuantSpec(_Frozen):
    name: str
    aliases: list[str] = Field(default_factory=list)
    format: Literal["gguf", "awq", "gptq", "fp8", "safetensors"]
    bits_per_weight: float
    embeddings_bits: float | None = None
    engines: list[str]


class GpuSpec(_Frozen):
    name: str
    aliases: list[str] = Field(default_factory=list)
    memory_mib: int
    compute_capability: str

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


class Catalog:
    def __init__(
        self,
        models: list[ModelSpec],
        quants: list[QuantSpec],
        kv_types: dict[str, float],
        gpus: list[GpuSpec],
    ) -> None:
        self.models = models
        self.quants = quants
        self.kv_types = kv_types
        self.gpus = gpus
        self._model_index = self._index(models)
        self._quant_index = self._index(quants)
        self._gpu_index = self._index(gpus)

    @staticmethod
    def _index(items: list) -> dict[str, object]:
        index: dict[str, object] = {}
        for item in items:
            key = getattr(item, "id", None) or item.name
            for name in (key, getattr(item, "name", key), *item.aliases):
                index.setdefault(_norm(name), item)
        return index

    def model(self, name: str) -> ModelSpec | None:
        found = self._model_index.get(_norm(name))
        return found if isinstance(found, ModelSpec) else None

    def quant(self, name: str) -> QuantSpec | None:
        found = self._quant_index.get(_norm(name))
        return found if isinstance(found, QuantSpec) else None

    def gpu(self, name: str) -> GpuSpec | None:
        found = self._gpu_index.get(_norm(name))
        return found if isinstance(found, GpuSpec) else None

    def suggest_model(self, name: str) -> list[str]:
        ids = [m.id for m in self.models]
        close = difflib.get_close_matches(_norm(name), ids, n=3, cutoff=0.5)
        return close

    def suggest_quant(self, name: str) -> list[str]:
        return difflib.get_close_matches(name.upper(), [q.name for q in self.quants], n=3, cutoff=0.5)

    def suggest_gpu(self, name: str) -> list[str]:
        return difflib.get_close_matches(name.upper(), [g.name for g in self.gpus], n=3, cutoff=0.4)


def _read(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}


@cache
def load_catalog() -> Catalog:
    models: list[ModelSpec] = []
    for path in sorted((DATA / "models").glob("*.yaml")):
        models.extend(ModelSpec.model_validate(m) for m in _read(path).get("models", []))
    quant_data = _read(DATA / "quants.yaml")
    quants = [QuantSpec.model_validate(q) for q in quant_data["quants"]]
    gpus = [GpuSpec.model_validate(g) for g in _read(DATA / "gpus.yaml")["gpus"]]
    return Catalog(models, quants, dict(quant_data["kv_cache_types"]), gpus)

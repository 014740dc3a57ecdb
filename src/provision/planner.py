"""The memory planner: model facts + GPU facts -> engine settings, with a verdict and numbers.

Per GPU, for each deployment:

    weights   = model weights at the chosen format, split over the GPUs it spans
    kv cache  = bytes per token x tokens, where bytes per token =
                2 x layers x KV heads on this GPU x head dim x element size
                (KV heads split over TP, replicated when TP > KV heads; DeepSeek's MLA caches
                one latent of kv_lora_rank + rope dims per layer, replicated on every rank)
                and tokens = context x concurrency (Ollama: context x NUM_PARALLEL;
                llama.cpp: -c = context x slots)
    overhead  = runtime memory outside weights and KV (activations, CUDA graphs, NCCL,
                compute buffers, the CUDA context)

against capacity = GPU memory x utilization (vLLM, TGI) or GPU memory (llama.cpp, Ollama),
summed over deployments that share a GPU. Roles consume `settings`; they never re-derive them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.catalog import Catalog, ModelSpec, QuantSpec
from provision.schema import Deployment, Host

GIB = 1024**3

# vLLM: "0.88-0.92 is safe" (field guide lesson 5); outside 0.80-0.95 is refused.
VLLM_GMU_DEFAULT = 0.90
VLLM_GMU_RANGE = (0.80, 0.95)
VLLM_GMU_SHARED_MAX = 0.95
VLLM_MAX_BATCHED_TOKENS = 8192
# Runtime overhead per GPU (GiB). vLLM: activation peak at max_num_batched_tokens, CUDA graphs
# (inside the budget since v0.21), non-torch memory (NCCL, cuBLAS), more with TP.
VLLM_ACTIVATION_GIB = 1.5
VLLM_CUDAGRAPH_GIB = 1.0
VLLM_NONTORCH_GIB = 0.5
VLLM_NONTORCH_PER_EXTRA_RANK_GIB = 0.25
# llama.cpp / Ollama: CUDA context and compute buffers sized by the micro-batch (512 tokens).
GGML_CUDA_CONTEXT_GIB = 0.35
GGML_UBATCH = 512
PARTIAL_OFFLOAD_WARNING = (
    "partial GPU offload runs the CPU layers several times slower (the field guide measured "
    "2-5 tokens/s instead of 15-25 for a 70B model with 20 of 80 layers on the GPU)"
)


@dataclass(frozen=True)
class ModelShape:
    """The facts memory math needs, from the catalog or from a local file."""

    id: str
    name: str
    params: int
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    tie_word_embeddings: bool = False
    mla_latent: int | None = None
    weight_bytes: int | None = None  # exact, from a local file
    file_type: str | None = None
    source: str = "catalog"

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ModelShape:
        return cls(
            id=spec.id,
            name=spec.name,
            params=spec.params,
            layers=spec.layers,
            hidden_size=spec.hidden_size,
            attention_heads=spec.attention_heads,
            kv_heads=spec.kv_heads,
            head_dim=spec.head_dim,
            vocab_size=spec.vocab_size,
            max_context=spec.max_context,
            tie_word_embeddings=spec.tie_word_embeddings,
            mla_latent=spec.mla_latent,
        )

    @classmethod
    def from_local(cls, facts: Any, fallback: ModelShape | None) -> ModelShape:
        def pick(name: str) -> Any:
            value = getattr(facts, name, None)
            return value if value else getattr(fallback, name, None)

        return cls(
            id=fallback.id if fallback else str(facts.name or Path(facts.source_path).name),
            name=str(facts.name or (fallback.name if fallback else facts.source_path)),
            params=pick("params"),
            layers=pick("layers"),
            hidden_size=pick("hidden_size"),
            attention_heads=pick("attention_heads"),
            kv_heads=pick("kv_heads"),
            head_dim=pick("head_dim"),
            vocab_size=pick("vocab_size"),
            max_context=pick("max_context"),
            tie_word_embeddings=fallback.tie_word_embeddings if fallback else False,
            mla_latent=pick("mla_latent"),
            weight_bytes=facts.weight_bytes,
            file_type=facts.file_type,
            source=f"{facts.format}:{facts.source_path}",
        )

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)


def weight_bytes(shape: ModelShape, quant: QuantSpec) -> int:
    if shape.weight_bytes:
        return shape.weight_bytes
    if quant.embeddings_bits:
        emb = min(shape.embedding_params, shape.params)
        return int((shape.params - emb) * quant.bits_per_weight / 8 + emb * quant.embeddings_bits / 8)
    return int(shape.params * quant.bits_per_weight / 8)


def kv_bytes_per_token(shape: ModelShape, engine: str, gpus: int, element_bytes: float) -> float:
    """KV cache bytes per token on ONE GPU of the `gpus` the deployment spans."""
    if shape.mla_latent:
        total = shape.layers * shape.mla_latent * element_bytes
        # vLLM/TGI replicate the latent on every TP rank; llama.cpp splits layers over GPUs.
        return total if engine in ("vllm", "tgi") else total / gpus
    if engine in ("vllm", "tgi"):
        return 2 * shape.layers * max(1, shape.kv_heads // gpus) * shape.head_dim * element_bytes
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * element_bytes / gpus


def overhead_gib(
    shape: ModelShape, engine: str, gpus: int, flash_attention: bool, total_tokens: int, on_gpu: bool = True
) -> float:
    if engine in ("vllm", "tgi"):
        return (
            VLLM_ACTIVATION_GIB
            + VLLM_CUDAGRAPH_GIB
            + VLLM_NONTORCH_GIB
            + VLLM_NONTORCH_PER_EXTRA_RANK_GIB * (gpus - 1)
        )
    # ggml compute buffer: logits for a micro-batch plus activations; without flash attention
    # the attention scores of a micro-batch against the whole context.
    compute = shape.vocab_size * GGML_UBATCH * 4 + shape.hidden_size * GGML_UBATCH * 4 * 8
    if not flash_attention:
        compute += shape.attention_heads * min(total_tokens, 1 << 20) * GGML_UBATCH * 4 / max(gpus, 1)
    return (GGML_CUDA_CONTEXT_GIB if on_gpu else 0.0) + compute / GIB


@dataclass
class DeploymentPlan:
    host: str
    name: str
    engine: str
    model: str
    model_name: str
    model_source: str
    quantization: str
    tensor_parallel: int
    gpu_indexes: list[int]
    context_tokens: int
    concurrency: int
    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float
    total_gib: float
    capacity_gib: float | None
    reserved_gib: float
    fits: bool
    max_context: int
    max_concurrency: int
    model_files_gib: float
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    pool: str = ""
    port: int = 0
    model_dir: str = ""  # where the models stage places this model's files on the host
    # The inventory's own per-deployment values that roles read as they are (weight, engine_args,
    # ollama tuning and Modelfile) and the catalog's sources (hf_repo, ollama_tag).
    passthrough: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        keys = (
            "host",
            "name",
            "engine",
            "model",
            "quantization",
            "tensor_parallel",
            "context_tokens",
            "concurrency",
            "weights_gib",
            "kv_cache_gib",
            "overhead_gib",
            "total_gib",
            "capacity_gib",
            "fits",
        )
        out = {k: getattr(self, k) for k in keys}
        for k in ("weights_gib", "kv_cache_gib", "overhead_gib", "total_gib", "capacity_gib"):
            if out[k] is not None:
                out[k] = round(out[k], 2)
        out.update(
            model_name=self.model_name,
            model_source=self.model_source,
            pool=self.pool,
            port=self.port,
            gpu_indexes=self.gpu_indexes,
            reserved_gib=round(self.reserved_gib, 2),
            max_context=self.max_context,
            max_concurrency=self.max_concurrency,
            model_files_gib=round(self.model_files_gib, 2),
            model_dir=self.model_dir,
            settings=self.settings,
            warnings=self.warnings,
            suggestions=self.suggestions,
        )
        out.update(self.passthrough)
        return out


@dataclass
class Sizing:
    weights: float
    kv: float
    overhead: float
    kv_per_token: float

    @property
    def total(self) -> float:
        return self.weights + self.kv + self.overhead


def element_bytes(dep: Deployment, catalog: Catalog) -> float:
    if dep.engine == "ollama":
        return catalog.kv_types[(dep.ollama.kv_cache_type if dep.ollama else "f16")]
    return catalog.kv_types[dep.kv_cache_dtype]


def flash_attention(dep: Deployment) -> bool:
    if dep.engine == "ollama":
        return dep.ollama.flash_attention if dep.ollama else True
    return True  # llama.cpp's server turns it on where supported (-fa auto); vLLM/TGI always


def size(
    shape: ModelShape,
    quant: QuantSpec,
    engine: str,
    gpus: int,
    context: int,
    concurrency: int,
    kv_elem: float,
    fa: bool,
    on_gpu: bool = True,
) -> Sizing:
    split = max(gpus, 1)
    tokens = context * concurrency
    per_tok = kv_bytes_per_token(shape, engine, split, kv_elem)
    return Sizing(
        weights=weight_bytes(shape, quant) / split / GIB,
        kv=per_tok * tokens / GIB,
        overhead=overhead_gib(shape, engine, split, fa, tokens, on_gpu),
        kv_per_token=per_tok,
    )


def capacity_per_gpu(dep: Deployment, gpu_gib: float) -> tuple[float, float]:
    """(capacity for this deployment's plan, memory it reserves on each GPU)."""
    if dep.engine in ("vllm", "tgi"):
        gmu = dep.gpu_memory_utilization or VLLM_GMU_DEFAULT
        return gpu_gib * gmu, gpu_gib * gmu
    return gpu_gib, 0.0  # reserved = what it uses, filled in by the caller


def largest_fit(budget_gib: float, fixed_gib: float, per_token: float, other: int, cap: int) -> int:
    """Largest count (context or concurrency) whose KV fits beside the fixed part."""
    free = (budget_gib - fixed_gib) * GIB
    if free <= 0 or per_token <= 0:
        return 0
    return int(min(cap, free // (per_token * other)))


def legal_tp(heads: int, gpus: int) -> list[int]:
    return [t for t in range(1, max(gpus, 1) + 1) if heads % t == 0]


def engine_settings(
    dep: Deployment,
    shape: ModelShape,
    quant: QuantSpec,
    gpus: list[int],
    sizing: Sizing,
    capacity: float,
    host: Host,
) -> dict[str, Any]:
    tp = dep.tensor_parallel
    served = dep.ollama.modelfile.name if dep.ollama and dep.ollama.modelfile else dep.model
    if dep.engine == "vllm":
        gmu = dep.gpu_memory_utilization or VLLM_GMU_DEFAULT
        kv_budget = max(capacity - sizing.weights - sizing.overhead, 0.0)
        return {
            "tensor_parallel_size": tp,
            "gpu_memory_utilization": gmu,
            "kv_cache_memory_bytes": int(kv_budget * GIB),
            "max_model_len": dep.context,
            "max_num_seqs": dep.concurrency,
            "max_num_batched_tokens": max(VLLM_MAX_BATCHED_TOKENS, dep.context)
            if dep.context <= 32768
            else VLLM_MAX_BATCHED_TOKENS,
            "dtype": "auto",
            "kv_cache_dtype": dep.kv_cache_dtype,
            "served_model_name": dep.model,
            "enable_prefix_caching": True,
            "ipc_host": tp > 1,
            "gpus": gpus,
        }
    if dep.engine == "tgi":
        gmu = dep.gpu_memory_utilization or VLLM_GMU_DEFAULT
        return {
            "num_shard": tp,
            "max_input_tokens": max(dep.context - 1, 1),
            "max_total_tokens": dep.context,
            "max_batch_prefill_tokens": max(VLLM_MAX_BATCHED_TOKENS, dep.context),
            "max_concurrent_requests": max(128, dep.concurrency * 4),
            "cuda_memory_fraction": gmu,
            "shm_size": "1g" if tp == 1 else f"{tp}g",
            "served_model_name": dep.model,
            "gpus": gpus,
        }
    layers = shape.layers if gpus else 0
    if dep.gpu_layers is not None:
        layers = min(dep.gpu_layers, shape.layers)
    if dep.engine == "llamacpp":
        return {
            "ctx_size": dep.context * dep.concurrency,
            "parallel": dep.concurrency,
            "n_gpu_layers": layers if gpus else 0,
            "flash_attn": "auto",
            "cache_type": dep.kv_cache_dtype if dep.kv_cache_dtype in ("q8_0", "q4_0") else "f16",
            "split_mode": "layer" if len(gpus) > 1 else "none",
            "served_model_name": dep.model,
            "gpus": gpus,
        }
    tuning = dep.ollama
    return {
        "num_parallel": dep.concurrency,
        "context_length": dep.context,
        "keep_alive": tuning.keep_alive if tuning else "30m",
        "max_loaded_models": tuning.max_loaded_models if tuning else 1,
        "max_queue": tuning.max_queue if tuning else 512,
        "flash_attention": flash_attention(dep),
        "kv_cache_type": tuning.kv_cache_type if tuning else "f16",
        "num_gpu": layers if dep.gpu_layers is not None else None,
        "model_name": served,
        "gpus": gpus,
    }

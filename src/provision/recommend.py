"""The field guide's model-selection flowchart, filtered by what really fits.

Use case -> (long documents?) -> Korean or not -> VRAM bracket gives the guide's candidates;
each is then sized by the planner at the quant the guide prefers for that bracket, falling back
to smaller quants down to Q4_K_S (never Q3 and below: quality drops, Korean first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from provision.catalog import Catalog, load_catalog
from provision.planner import ModelShape, size

UseCase = Literal["general", "code", "rag", "reasoning"]
GGUF_LADDER = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S"]
KOREAN_MIN = "Q5_K_M"  # lesson 4: Korean degrades first under quantization


@dataclass
class Candidate:
    model: str
    name: str
    quantization: str
    engine: str
    total_gib: float
    korean: int
    why: str

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["total_gib"] = round(self.total_gib, 1)
        return out


def flowchart(use_case: UseCase, korean: bool, vram_gib: float, long_docs: bool) -> tuple[str, list[str]]:
    """(the branch taken, candidate model ids in the guide's order)."""
    if use_case == "reasoning":
        return "complex reasoning: 70B class required", ["llama-3.3-70b", "qwen2.5-72b"]
    if use_case == "code":
        return "code generation / review", ["deepseek-coder-v2-lite", "llama-3.1-8b", "llama-3.1-70b"]
    if use_case == "rag" and long_docs:
        # The guide names Yi 200K (a Yi 1.0 model); Yi-1.5 chat is 4K, its 16K variant the longest.
        return "document analysis, long documents (10K+ tokens)", ["yi-1.5-34b-16k", "yi-1.5-34b"]
    bracket = "small" if vram_gib < 48 else ("mid" if vram_gib < 160 else "big")
    table = {
        (True, "small"): ["qwen2.5-7b", "solar-10.7b"],
        (True, "mid"): ["qwen2.5-32b", "llama-3.1-70b"],
        (True, "big"): ["qwen2.5-72b"],
        (False, "small"): ["llama-3.1-8b", "phi-3-medium"],
        (False, "mid"): ["llama-3.3-70b", "mixtral-8x7b"],
        (False, "big"): ["llama-3.1-70b", "deepseek-v3"],
    }
    label = {"small": "24 GB or less", "mid": "48-80 GB", "big": "160 GB or more"}[bracket]
    lang = "Korean matters" if korean else "Korean not needed"
    return f"general Q&A / summaries, {lang}, {label}", table[(korean, bracket)]


def recommend(
    use_case: UseCase,
    korean: bool,
    vram_gib: float,
    long_docs: bool = False,
    context: int = 8192,
    concurrency: int = 1,
    catalog: Catalog | None = None,
) -> tuple[str, list[Candidate], list[str]]:
    catalog = catalog or load_catalog()
    branch, ids = flowchart(use_case, korean, vram_gib, long_docs)
    fits: list[Candidate] = []
    rejected: list[str] = []
    for model_id in ids:
        spec = catalog.model(model_id)
        if spec is None:
            rejected.append(f"{model_id}: not in the catalog")
            continue
        shape = ModelShape.from_spec(spec)
        ctx = min(context, spec.max_context)
        big = vram_gib >= 160
        ladder = ["BF16", *GGUF_LADDER] if big else GGUF_LADDER
        if korean:
            ladder = [q for q in ladder if q in ("BF16", "Q8_0", "Q6_K", KOREAN_MIN)] + [
                q for q in ladder if q not in ("BF16", "Q8_0", "Q6_K", KOREAN_MIN)
            ]
        chosen = None
        for qname in ladder:
            quant = catalog.quant(qname)
            engine = "vllm" if quant and quant.format != "gguf" else "ollama"
            s = size(shape, quant, engine, 1, ctx, concurrency, 2.0, True)
            budget = vram_gib * (0.9 if engine == "vllm" else 1.0)
            if s.total <= budget:
                chosen = Candidate(
                    spec.id,
                    spec.name,
                    quant.name,
                    engine,
                    s.total,
                    spec.korean,
                    f"{s.total:.1f} of {budget:.1f} GiB at {ctx} tokens",
                )
                break
        if chosen:
            if korean and chosen.quantization in ("Q4_K_M", "Q4_K_S"):
                chosen.why += "; Korean output degrades below Q5_K_M (field guide lesson 4)"
            fits.append(chosen)
        else:
            rejected.append(f"{spec.id}: does not fit in {vram_gib:.0f} GiB even at Q4_K_S")
    return branch, fits, rejected

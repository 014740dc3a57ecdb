"""The field guide's VRAM tables, reproduced by the planner within 10%.

The guide's "VRAM 사용량" columns are Ollama/llama.cpp figures for one request at the context
Ollama used by default at the time (2048 tokens), written in GB. We size the same case and
compare in GB (10^9 bytes).
"""

from __future__ import annotations

import pytest

from provision.catalog import load_catalog
from provision.planner import GIB, ModelShape, size

GUIDE_70B = {
    "F16": 140,
    "Q8_0": 74,
    "Q6_K": 58,
    "Q5_K_M": 52,
    "Q4_K_M": 44,
    "Q4_K_S": 42,
    "Q3_K_M": 34,
    "Q2_K": 28,
}
GUIDE_8B = {"F16": 17, "Q8_0": 10, "Q5_K_M": 7, "Q4_K_M": 6}
GUIDE_FILES_70B = {
    "F16": 140,
    "Q8_0": 70,
    "Q6_K": 54,
    "Q5_K_M": 48,
    "Q4_K_M": 40,
    "Q4_K_S": 38,
    "Q3_K_M": 30,
    "Q2_K": 24,
}


def vram_gb(model: str, quant: str) -> float:
    cat = load_catalog()
    shape = ModelShape.from_spec(cat.model(model))
    s = size(shape, cat.quant(quant), "ollama", 1, 2048, 1, 2.0, True)
    return s.total * GIB / 1e9


@pytest.mark.parametrize("quant,guide", sorted(GUIDE_70B.items()))
def test_llama_31_70b_vram_within_10_percent(quant: str, guide: float):
    ours = vram_gb("llama-3.1-70b", quant)
    assert abs(ours - guide) / guide <= 0.10, f"{quant}: ours {ours:.1f} GB, guide {guide} GB"


@pytest.mark.parametrize("quant,guide", sorted(GUIDE_8B.items()))
def test_llama_31_8b_vram_within_10_percent(quant: str, guide: float):
    ours = vram_gb("llama-3.1-8b", quant)
    assert abs(ours - guide) / guide <= 0.10, f"{quant}: ours {ours:.1f} GB, guide {guide} GB"


def test_vram_falls_with_every_quant_step():
    order = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q3_K_M", "Q2_K"]
    values = [vram_gb("llama-3.1-70b", q) for q in order]
    assert values == sorted(values, reverse=True)


def test_lesson_1_70b_q4_does_not_fit_a_4090():
    """Lesson 1: 70B Q4_K_M needs about 44 GB; a 24 GB RTX 4090 cannot hold it."""
    cat = load_catalog()
    assert vram_gb("llama-3.1-70b", "Q4_K_M") > cat.gpu("RTX-4090").memory_gib * GIB / 1e9

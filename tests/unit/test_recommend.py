"""The field guide's model-selection flowchart, returning only candidates that fit."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from provision.cli import app
from provision.recommend import recommend


def ids(cands):
    return [c.model for c in cands]


def test_korean_24gb_gives_qwen_7b_or_solar():
    _, fits, _ = recommend("general", True, 24)
    assert set(ids(fits)) == {"qwen2.5-7b", "solar-10.7b"}
    # Korean: never below Q5_K_M when Q5_K_M fits (lesson 4)
    assert all(c.quantization in ("Q8_0", "Q6_K", "Q5_K_M") for c in fits)


def test_english_80gb_gives_llama_33_70b_q4():
    branch, fits, _ = recommend("general", False, 80)
    assert "48-80" in branch
    assert "llama-3.3-70b" in ids(fits)
    llama = next(c for c in fits if c.model == "llama-3.3-70b")
    assert llama.total_gib <= 80


def test_big_vram_filters_what_does_not_fit():
    # 160 GB: Llama 3.1 70B at BF16 fits in 2x80; DeepSeek-V3 (671B) does not, even at Q4_K_S
    _, fits, rejected = recommend("general", False, 160)
    assert "llama-3.1-70b" in ids(fits)
    assert "deepseek-v3" not in ids(fits)
    assert any(r.startswith("deepseek-v3") for r in rejected)


def test_long_documents_branch():
    branch, _, _ = recommend("rag", False, 80, long_docs=True)
    assert "long documents" in branch


def test_reasoning_needs_70b_and_small_gpu_gets_nothing():
    _, fits, rejected = recommend("reasoning", False, 24)
    assert fits == [] and len(rejected) == 2


def test_cli_json_and_exit_codes():
    r = CliRunner().invoke(app, ["models", "recommend", "--korean", "--vram", "24", "--json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["candidates"]
    r = CliRunner().invoke(app, ["models", "recommend", "--use-case", "reasoning", "--vram", "16"])
    assert r.exit_code == 1
    r = CliRunner().invoke(app, ["models", "recommend", "--use-case", "poetry"])
    assert r.exit_code == 2

"""Memory math against hand-computed values."""

from __future__ import annotations

import pytest

from provision.catalog import load_catalog
from provision.planner import GIB, ModelShape, kv_bytes_per_token, weight_bytes


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def shape(cat, model: str) -> ModelShape:
    return ModelShape.from_spec(cat.model(model))


def test_kv_per_token_llama_8b(cat):
    # 2 x 32 layers x 8 KV heads x 128 x 2 bytes = 128 KiB
    assert kv_bytes_per_token(shape(cat, "llama-3.1-8b"), "vllm", 1, 2) == 128 * 1024


def test_kv_heads_split_over_tp_and_replicated_beyond(cat):
    s = shape(cat, "llama-3.1-70b")  # 80 layers, 8 KV heads
    assert kv_bytes_per_token(s, "vllm", 1, 2) == 2 * 80 * 8 * 128 * 2
    assert kv_bytes_per_token(s, "vllm", 2, 2) == 2 * 80 * 4 * 128 * 2
    # TP 16 > 8 KV heads: each GPU still holds one head
    assert kv_bytes_per_token(s, "vllm", 16, 2) == 2 * 80 * 1 * 128 * 2


def test_qwen_7b_kv_is_less_than_half_of_llama_8b(cat):
    q = kv_bytes_per_token(shape(cat, "qwen2.5-7b"), "vllm", 1, 2)
    assert q == 2 * 28 * 4 * 128 * 2  # 56 KiB


def test_mla_latent_for_deepseek_v3(cat):
    s = shape(cat, "deepseek-v3")
    assert s.mla_latent == 576
    # one latent per layer, not x2, replicated on every TP rank
    assert kv_bytes_per_token(s, "vllm", 1, 2) == 61 * 576 * 2
    assert kv_bytes_per_token(s, "vllm", 8, 2) == 61 * 576 * 2


def test_fp8_kv_halves_the_cache(cat):
    s = shape(cat, "llama-3.1-8b")
    assert kv_bytes_per_token(s, "vllm", 1, 1) * 2 == kv_bytes_per_token(s, "vllm", 1, 2)


def test_awq_keeps_embeddings_at_16_bits(cat):
    s = shape(cat, "qwen2.5-7b")
    awq = weight_bytes(s, cat.quant("AWQ"))
    naive = s.params * 4.156 / 8
    assert awq > naive  # embeddings and lm_head stay fp16
    assert 5.0e9 < awq < 6.2e9  # research: about 5.6 GB


def test_k_quants_are_not_their_nominal_width(cat):
    assert cat.quant("Q4_K_M").bits_per_weight > 4.5
    assert cat.quant("Q5_K_M").bits_per_weight > 5.5
    assert cat.quant("Q8_0").bits_per_weight == 8.5


def test_weights_70b_fp16_about_140_gb(cat):
    gb = weight_bytes(shape(cat, "llama-3.1-70b"), cat.quant("FP16")) / 1e9
    assert 139 < gb < 143
    assert weight_bytes(shape(cat, "llama-3.1-70b"), cat.quant("FP16")) / GIB < 132

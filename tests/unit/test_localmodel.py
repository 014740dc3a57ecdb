"""Tests for provision.localmodel: real sizes and shapes read from local model files."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

from provision.lab import tinymodel
from provision.localmodel import (
    GGML_TYPES,
    LLAMA_FTYPES,
    LocalModelError,
    LocalModelFacts,
    ggml_tensor_bytes,
    inspect_gguf,
    inspect_local_model,
    inspect_snapshot,
    llama_ftype_name,
)

# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #

_SCALAR = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
U32, STR, ARR, F32V, BOOL, U64 = 4, 8, 9, 6, 7, 10


def _encode(vtype: int, value: Any, e: str) -> bytes:
    if vtype == STR:
        raw = value.encode()
        return struct.pack(e + "Q", len(raw)) + raw
    if vtype == ARR:
        elem, items = value
        body = b"".join(_encode(elem, item, e) for item in items)
        return struct.pack(e + "IQ", elem, len(items)) + body
    return struct.pack(e + _SCALAR[vtype], value)


def gguf_blob(
    kvs: list[tuple[str, int, Any]],
    tensors: list[tuple[str, tuple[int, ...], int, int]],
    *,
    version: int = 3,
    endian: str = "<",
    alignment: int = 32,
) -> bytes:
    """A GGUF file built by hand: tensors are (name, ggml dims, type id, data bytes)."""
    out = b"GGUF" + struct.pack(endian + "IQQ", version, len(tensors), len(kvs))
    for key, vtype, value in kvs:
        out += _encode(STR, key, endian) + struct.pack(endian + "I", vtype)
        out += _encode(vtype, value, endian)
    offset, data = 0, b""
    for name, dims, type_id, nbytes in tensors:
        out += _encode(STR, name, endian) + struct.pack(endian + "I", len(dims))
        out += struct.pack(endian + f"{len(dims)}QIQ", *dims, type_id, offset)
        padded = -(-nbytes // alignment) * alignment
        data += bytes(nbytes) + bytes(padded - nbytes)
        offset += padded
    out += bytes(-len(out) % alignment)
    return out + data


def base_kvs(arch: str = "llama", **extra: tuple[int, Any]) -> list[tuple[str, int, Any]]:
    kvs = [
        ("general.architecture", STR, arch),
        (f"{arch}.block_count", U32, 3),
        (f"{arch}.embedding_length", U32, 256),
    ]
    kvs += [(key, vtype, value) for key, (vtype, value) in extra.items()]
    return kvs


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], int]]) -> int:
    """Write a real safetensors file; tensors map name -> (dtype, shape, bytes per element).

    Returns the total data bytes.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape, itemsize) in tensors.items():
        nbytes = math.prod(shape) * itemsize
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return offset


# --------------------------------------------------------------------------- #
# (a) the tiny llama model
# --------------------------------------------------------------------------- #

SHAPES = tinymodel.tensor_shapes()
TINY_PARAMS = sum(math.prod(s) for s in SHAPES.values())
NORM_PARAMS = sum(math.prod(s) for n, s in SHAPES.items() if tinymodel.is_norm(n))


def test_tiny_model_counts_are_what_we_think() -> None:
    # 2*(512*64) embeddings/output + 2 layers * (q 64*64 + k,v 2*32*64 + o 64*64
    # + ffn 3*128*64 + 2 norms*64) + output norm 64
    assert TINY_PARAMS == 65536 + 2 * (4096 + 4096 + 4096 + 24576 + 128) + 64 == 139584
    assert NORM_PARAMS == 5 * 64


@pytest.mark.parametrize(
    ("f16", "file_type", "weight_bytes"),
    [
        (False, "F32", TINY_PARAMS * 4),
        (True, "F16", (TINY_PARAMS - NORM_PARAMS) * 2 + NORM_PARAMS * 4),
    ],
)
def test_inspect_tiny_gguf(tmp_path: Path, f16: bool, file_type: str, weight_bytes: int) -> None:
    path = tinymodel.write_tiny_gguf(tmp_path / "tiny.gguf", f16=f16)
    facts = inspect_gguf(path)
    assert facts.format == "gguf"
    assert facts.source_path == str(path)
    assert facts.architecture == "llama"
    assert facts.name == "tiny-llama-test"
    assert facts.file_type == file_type
    assert facts.layers == 2
    assert facts.hidden_size == 64
    assert facts.attention_heads == 4
    assert facts.kv_heads == 2
    assert facts.head_dim == 16
    assert facts.vocab_size == 512
    assert facts.max_context == 512
    assert facts.experts is None
    assert facts.experts_used is None
    assert facts.mla_latent is None
    assert facts.params == TINY_PARAMS == 139584
    assert facts.weight_bytes == weight_bytes
    assert facts.file_bytes == path.stat().st_size
    assert facts.file_bytes > facts.weight_bytes
    assert facts.bits_per_weight == pytest.approx(weight_bytes * 8 / TINY_PARAMS)
    assert inspect_local_model(path) == facts
    assert inspect_local_model(tmp_path) == facts  # a directory holding one GGUF


def test_tiny_f16_breakdown(tmp_path: Path) -> None:
    facts = inspect_gguf(tinymodel.write_tiny_gguf(tmp_path / "t.gguf", f16=True))
    assert facts.tensor_types == (
        ("F16", TINY_PARAMS - NORM_PARAMS, (TINY_PARAMS - NORM_PARAMS) * 2),
        ("F32", NORM_PARAMS, NORM_PARAMS * 4),
    )


def test_tiny_model_matches_gguf_reader(tmp_path: Path) -> None:
    """Our reader and gguf-py's agree on the tensor table."""
    path = tinymodel.write_tiny_gguf(tmp_path / "t.gguf", f16=True, seed=3)
    reader = gguf.GGUFReader(path)
    assert [t.name for t in reader.tensors] == list(SHAPES)
    for tensor in reader.tensors:
        assert tuple(int(d) for d in tensor.shape) == tuple(reversed(SHAPES[tensor.name]))
    expected = sum(int(t.n_bytes) for t in reader.tensors)
    assert inspect_gguf(path).weight_bytes == expected


def test_tiny_model_vocabulary() -> None:
    tokens, scores, types = tinymodel.vocabulary()
    assert len(tokens) == len(scores) == len(types) == 512
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens[3] == "<0x00>" and tokens[258] == "<0xFF>"
    assert tokens[tinymodel.IM_START_ID] == "<|im_start|>"
    assert tokens[tinymodel.IM_END_ID] == "<|im_end|>"
    assert types[3:259] == [6] * 256
    assert types[tinymodel.IM_START_ID] == types[tinymodel.IM_END_ID] == 3


def test_tiny_model_is_deterministic(tmp_path: Path) -> None:
    a = tinymodel.write_tiny_gguf(tmp_path / "a.gguf", seed=7).read_bytes()
    b = tinymodel.write_tiny_gguf(tmp_path / "b.gguf", seed=7).read_bytes()
    c = tinymodel.write_tiny_gguf(tmp_path / "c.gguf", seed=8).read_bytes()
    assert a == b
    assert a != c


def test_tinymodel_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli.gguf"
    assert tinymodel.main([str(out), "--f16"]) == 0
    assert inspect_gguf(out).file_type == "F16"


# --------------------------------------------------------------------------- #
# (b) broken files
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("keep", [0, 3, 7, 23, 100, 5000])
def test_truncated_header(tmp_path: Path, keep: int) -> None:
    full = tinymodel.write_tiny_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full[:keep])
    with pytest.raises(LocalModelError) as info:
        inspect_local_model(cut)
    assert info.value.path == cut
    assert str(cut) in str(info.value)
    assert info.value.fix


def test_truncated_inside_tensor_table(tmp_path: Path) -> None:
    full = tinymodel.write_tiny_gguf(tmp_path / "full.gguf").read_bytes()
    end_of_names = full.rindex(b"output.weight") + len(b"output.weight")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full[: end_of_names + 4])  # n_dims read, dims missing
    with pytest.raises(LocalModelError, match="truncated"):
        inspect_gguf(cut)


def test_tensor_data_missing(tmp_path: Path) -> None:
    full = tinymodel.write_tiny_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full[:-100])  # the header is whole, the last tensor is short
    with pytest.raises(LocalModelError, match="incomplete download") as info:
        inspect_gguf(cut)
    assert str(cut) in str(info.value)


def test_wrong_magic(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGML" + bytes(100))
    with pytest.raises(LocalModelError, match="not a GGUF file") as info:
        inspect_local_model(bad)
    assert info.value.path == bad
    assert "not a GGUF file" in info.value.reason
    assert str(bad) in str(info.value) and "Fix:" in str(info.value)


def test_safetensors_file_given_as_file(tmp_path: Path) -> None:
    st = tmp_path / "model.safetensors"
    write_safetensors(st, {"w": ("F32", [2, 2], 4)})
    with pytest.raises(LocalModelError, match="not a GGUF file"):
        inspect_local_model(st)


def test_gguf_version_1_rejected(tmp_path: Path) -> None:
    old = tmp_path / "old.gguf"
    old.write_bytes(b"GGUF" + struct.pack("<III", 1, 0, 0))
    with pytest.raises(LocalModelError, match="version 1"):
        inspect_gguf(old)


def test_unknown_value_type_is_corrupt(tmp_path: Path) -> None:
    blob = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _encode(STR, "k", "<") + struct.pack("<I", 99)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(blob + bytes(16))
    with pytest.raises(LocalModelError, match="corrupt"):
        inspect_gguf(bad)


def test_huge_string_length_is_truncation_not_memory_error(tmp_path: Path) -> None:
    blob = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 60)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(blob + b"x" * 64)
    with pytest.raises(LocalModelError, match="truncated"):
        inspect_gguf(bad)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match="no such file") as info:
        inspect_local_model(tmp_path / "nope.gguf")
    assert info.value.path == tmp_path / "nope.gguf"


def test_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("hi")
    with pytest.raises(LocalModelError, match=r"no config\.json"):
        inspect_local_model(tmp_path)


def test_metadata_without_block_count(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(gguf_blob([("general.architecture", STR, "clip")], []))
    with pytest.raises(LocalModelError, match=r"clip\.block_count"):
        inspect_gguf(path)


def test_error_str_names_path_reason_fix() -> None:
    err = LocalModelError(Path("/m/x.gguf"), "it broke", "fix it")
    assert str(err) == "/m/x.gguf: it broke. Fix: fix it"
    assert (err.path, err.reason, err.fix) == (Path("/m/x.gguf"), "it broke", "fix it")


# --------------------------------------------------------------------------- #
# (c) Hugging Face snapshot
# --------------------------------------------------------------------------- #


def test_snapshot_with_safetensors(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "num_hidden_layers": 4,
        "hidden_size": 128,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    data = write_safetensors(
        tmp_path / "model.safetensors",
        {
            "embed": ("BF16", [1000, 128], 2),
            "norm": ("F32", [128], 4),
            "proj": ("BF16", [128, 384], 2),
        },
    )
    facts = inspect_snapshot(tmp_path)
    assert data == 1000 * 128 * 2 + 128 * 4 + 128 * 384 * 2 == 354816
    assert facts.format == "safetensors"
    assert facts.architecture == "llama"
    assert facts.file_type == "bfloat16"
    assert facts.params == 128000 + 128 + 49152 == 177280
    assert facts.weight_bytes == 354816
    assert facts.file_bytes == (tmp_path / "model.safetensors").stat().st_size
    assert facts.tensor_types == (("BF16", 177152, 354304), ("F32", 128, 512))
    assert (facts.layers, facts.hidden_size, facts.attention_heads) == (4, 128, 8)
    assert (facts.kv_heads, facts.head_dim, facts.vocab_size) == (2, 16, 1000)
    assert facts.max_context == 4096
    assert facts.experts is None and facts.mla_latent is None
    assert inspect_local_model(tmp_path) == facts


def test_snapshot_sharded_with_index_and_nested_text_config(tmp_path: Path) -> None:
    config = {
        "model_type": "mistral3",
        "quantization_config": {"quant_method": "awq", "bits": 4},
        "text_config": {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 4,
            "head_dim": 32,
            "vocab_size": 300,
            "max_position_embeddings": 1024,
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    a = write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": ("I32", [16, 8], 4)})
    b = write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"b": ("F16", [64], 2)})
    # a consolidated duplicate that the index does not name must not be counted
    write_safetensors(tmp_path / "consolidated.safetensors", {"a": ("F32", [1000], 4)})
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    facts = inspect_snapshot(tmp_path)
    assert facts.weight_bytes == a + b == 512 + 128
    assert facts.params == 128 + 64
    assert facts.file_type == "awq"
    assert facts.architecture == "mistral3"
    assert (facts.layers, facts.hidden_size, facts.attention_heads, facts.kv_heads) == (2, 64, 4, 4)
    assert facts.head_dim == 32
    assert facts.experts == 8 and facts.experts_used == 2


def test_snapshot_mla_and_hf_cache_name(tmp_path: Path) -> None:
    snap = tmp_path / "models--deepseek-ai--Tiny-V3" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    config = {
        "model_type": "deepseek_v3",
        "num_hidden_layers": 3,
        "hidden_size": 512,
        "num_attention_heads": 16,
        "head_dim": None,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
        "n_routed_experts": 256,
        "vocab_size": 129280,
        "max_position_embeddings": 163840,
        "torch_dtype": "bfloat16",
    }
    (snap / "config.json").write_text(json.dumps(config))
    write_safetensors(snap / "model.safetensors", {"w": ("F8_E4M3", [512, 512], 1)})
    facts = inspect_local_model(snap)
    assert facts.name == "deepseek-ai/Tiny-V3"
    assert facts.mla_latent == 576
    assert facts.experts == 256
    assert facts.head_dim == 32
    assert facts.weight_bytes == 262144 and facts.params == 262144
    assert facts.bits_per_weight == 8.0


def test_snapshot_bin_fallback(tmp_path: Path) -> None:
    config = {
        "num_hidden_layers": 1,
        "hidden_size": 8,
        "num_attention_heads": 2,
        "torch_dtype": "float16",
        "model_type": "gpt2",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "pytorch_model.bin").write_bytes(bytes(1000))
    facts = inspect_snapshot(tmp_path)
    assert facts.format == "other"
    assert facts.weight_bytes == facts.file_bytes == 1000
    assert facts.params == 500  # estimate from torch_dtype


def test_snapshot_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 8}))
    with pytest.raises(LocalModelError, match="no weight files"):
        inspect_snapshot(tmp_path)


def test_snapshot_bad_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LocalModelError, match="cannot read JSON") as info:
        inspect_local_model(tmp_path)
    assert info.value.path == tmp_path / "config.json"


def test_snapshot_bad_safetensors_header(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 8}))
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(LocalModelError, match="safetensors header") as info:
        inspect_snapshot(tmp_path)
    assert info.value.path == tmp_path / "model.safetensors"


def test_snapshot_shard_missing(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 8}))
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(LocalModelError, match="missing"):
        inspect_snapshot(tmp_path)


# --------------------------------------------------------------------------- #
# (d) quantized tensors: bytes from the ggml type traits
# --------------------------------------------------------------------------- #


def test_quantized_tensors_via_gguf_writer(tmp_path: Path) -> None:
    path = tmp_path / "q.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_embedding_length(256)
    writer.add_file_type(LlamaFileType.MOSTLY_Q4_K_M)
    # byte-shaped uint8 arrays: 2 rows of one Q4_K block (144 bytes), 3 rows of 2 Q8_0 blocks
    writer.add_tensor("a.weight", np.zeros((2, 144), np.uint8), raw_dtype=GGMLQuantizationType.Q4_K)
    writer.add_tensor("b.weight", np.zeros((3, 68), np.uint8), raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    facts = inspect_gguf(path)
    assert facts.params == 2 * 256 + 3 * 64 == 704
    assert facts.weight_bytes == 2 * 144 + 3 * 2 * 34 == 492
    assert facts.file_type == "Q4_K_M"
    assert facts.tensor_types == (("Q4_K", 512, 288), ("Q8_0", 192, 204))
    assert facts.bits_per_weight == pytest.approx(492 * 8 / 704)


@pytest.mark.parametrize(
    ("type_id", "n", "nbytes"),
    [
        (12, 256, 144),
        (8, 32, 34),
        (2, 32, 18),
        (14, 256, 210),
        (10, 256, 84),
        (11, 256, 110),
        (13, 256, 176),
        (23, 256, 136),
        (16, 256, 66),
        (39, 64, 34),
        (30, 10, 20),
        (0, 3, 12),
    ],
)
def test_ggml_tensor_bytes(type_id: int, n: int, nbytes: int) -> None:
    assert ggml_tensor_bytes(type_id, n) == nbytes


def test_ggml_tensor_bytes_rejects_partial_block_and_unknown_type() -> None:
    with pytest.raises(ValueError):
        ggml_tensor_bytes(12, 100)
    assert ggml_tensor_bytes(4, 32) is None


def test_type_traits_match_gguf_py() -> None:
    expected = {int(t): (t.name, *gguf.GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType}
    ours = {i: (t.name, t.block_size, t.type_size) for i, t in GGML_TYPES.items()}
    assert ours == expected


def test_hand_built_v2_header_with_arrays_mla_and_unknown_type(tmp_path: Path) -> None:
    kvs = base_kvs(
        "deepseek2",
        **{
            "general.name": (STR, "hand"),
            "deepseek2.attention.head_count": (U32, 16),
            "deepseek2.attention.head_count_kv": (ARR, (U32, [0, 4, 8])),
            "deepseek2.attention.key_length": (U32, 192),
            "deepseek2.attention.kv_lora_rank": (U32, 512),
            "deepseek2.rope.dimension_count": (U32, 64),
            "deepseek2.expert_count": (U32, 64),
            "deepseek2.expert_used_count": (U32, 6),
            "deepseek2.context_length": (U64, 163840),
            "tokenizer.ggml.tokens": (ARR, (STR, ["a", "bb", "ccc"])),
            "nested": (ARR, (ARR, [(F32V, [1.0, 2.0]), (BOOL, [True])])),
            "general.file_type": (U32, 1024 | 7),  # Q8_0, guessed
        },
    )
    tensors = [
        ("x.weight", (32, 4), 8, 4 * 34),  # Q8_0: 4 rows of one block
        ("y.weight", (64, 2), 200, 50),  # unknown type: its span is 64 (padded)
    ]
    path = tmp_path / "hand.gguf"
    path.write_bytes(gguf_blob(kvs, tensors, version=2))
    facts = inspect_gguf(path)
    assert facts.architecture == "deepseek2"
    assert facts.name == "hand"
    assert facts.file_type == "Q8_0"
    assert (facts.layers, facts.hidden_size) == (3, 256)
    assert (facts.attention_heads, facts.kv_heads, facts.head_dim) == (16, 8, 192)
    assert facts.mla_latent == 576
    assert (facts.experts, facts.experts_used) == (64, 6)
    assert facts.max_context == 163840
    assert facts.vocab_size == 3
    assert facts.params == 128 + 128
    assert facts.weight_bytes == 136 + 64
    assert dict((n, (p, b)) for n, p, b in facts.tensor_types) == {
        "Q8_0": (128, 136),
        "TYPE_200": (128, 64),
    }


def test_big_endian_header(tmp_path: Path) -> None:
    path = tmp_path / "be.gguf"
    path.write_bytes(gguf_blob(base_kvs(), [("w", (8, 2), 0, 64)], endian=">"))
    facts = inspect_gguf(path)
    assert (facts.layers, facts.hidden_size, facts.params, facts.weight_bytes) == (3, 256, 16, 64)


def test_file_type_falls_back_to_dominant_tensor_type(tmp_path: Path) -> None:
    path = tmp_path / "nofiletype.gguf"
    tensors = [("a", (256, 4), 14, 4 * 210), ("b", (256,), 0, 1024)]
    path.write_bytes(gguf_blob(base_kvs(), tensors))
    facts = inspect_gguf(path)
    assert facts.file_type == "Q6_K"
    assert facts.weight_bytes == 840 + 1024
    assert facts.head_dim == 0 and facts.attention_heads == 0  # attention-free metadata


def test_split_gguf(tmp_path: Path) -> None:
    writer = GGUFWriter(tmp_path / "m.gguf", "llama", split_max_tensors=2)
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    for i in range(5):
        writer.add_tensor(f"t{i}", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parts = sorted(tmp_path.glob("m-*-of-00003.gguf"))
    assert len(parts) == 3
    facts = inspect_gguf(parts[0])
    assert facts.params == 5 * 32
    assert facts.weight_bytes == 5 * 32 * 4
    assert facts.file_bytes == sum(p.stat().st_size for p in parts)
    assert facts.name == "m"
    assert inspect_gguf(parts[2]) == facts  # any part finds the set
    assert inspect_local_model(tmp_path) == facts
    parts[1].unlink()
    with pytest.raises(LocalModelError, match="missing 1 of 3 parts"):
        inspect_gguf(parts[0])


# --------------------------------------------------------------------------- #
# (e) llama.cpp file types
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (0, "F32"),
        (1, "F16"),
        (2, "Q4_0"),
        (7, "Q8_0"),
        (10, "Q2_K"),
        (11, "Q3_K_S"),
        (12, "Q3_K_M"),
        (13, "Q3_K_L"),
        (14, "Q4_K_S"),
        (15, "Q4_K_M"),
        (16, "Q5_K_S"),
        (17, "Q5_K_M"),
        (18, "Q6_K"),
        (29, "IQ2_M"),
        (30, "IQ4_XS"),
        (32, "BF16"),
        (38, "MXFP4_MOE"),
        (1024 | 15, "Q4_K_M"),
    ],
)
def test_llama_ftype_name(value: int, name: str) -> None:
    assert llama_ftype_name(value) == name


def test_llama_ftype_unknown() -> None:
    assert llama_ftype_name(5) is None
    assert llama_ftype_name(9999) is None


def test_llama_ftypes_match_gguf_py() -> None:
    for member in LlamaFileType:
        if member is LlamaFileType.GUESSED:
            continue
        expected = member.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        assert LLAMA_FTYPES[int(member)] == expected, member


def test_facts_are_frozen() -> None:
    facts = LocalModelFacts(
        source_path="x",
        format="gguf",
        architecture="a",
        name="n",
        file_type="F16",
        weight_bytes=0,
        file_bytes=0,
        params=0,
        layers=1,
        hidden_size=1,
        attention_heads=1,
        kv_heads=1,
        head_dim=1,
        vocab_size=1,
        max_context=1,
    )
    assert facts.bits_per_weight == 0.0
    with pytest.raises(AttributeError):
        facts.params = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "blob",
    [
        b"GGUF" + struct.pack("<IQQ", 3, 1 << 50, 0),  # absurd tensor count
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 50),  # absurd kv count
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + _encode(STR, "k", "<")
        + struct.pack("<IIQ", ARR, STR, 1 << 50),  # absurd array length
    ],
)
def test_absurd_counts_fail_fast(tmp_path: Path, blob: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(blob + bytes(64))
    with pytest.raises(LocalModelError, match="truncated"):
        inspect_gguf(bad)


def test_tiny_chat_template_renders_chatml() -> None:
    jinja2 = pytest.importorskip("jinja2")
    template = jinja2.Environment().from_string(tinymodel.CHATML_TEMPLATE)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = template.render(messages=messages, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )

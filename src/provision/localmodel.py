"""Read the real size and shape of a model on local disk.

The memory planner works from catalog numbers until a model is on disk; once it
is, this module reads the facts from the files themselves:

* a GGUF file (llama.cpp): the header only -- metadata and the tensor-info
  table -- never the tensor data, so a 40 GB file costs a few reads;
* a Hugging Face snapshot directory: ``config.json`` plus the JSON headers of
  its ``*.safetensors`` files.

Standard library only. Sources for the constants below:

* ggml type ids and (block size, bytes per block): gguf-py ``constants.py``
  (``GGMLQuantizationType``, ``GGML_QUANT_SIZES``; gguf 0.19.0), cross-checked
  with ``enum ggml_type`` in ggml ``ggml.h``.
* ``general.file_type`` numbers: ``enum llama_ftype`` in llama.cpp
  ``include/llama.h`` and gguf-py ``LlamaFileType``; names as printed by
  llama.cpp's ``llama_model_ftype_name``.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

__all__ = [
    "GGML_TYPES",
    "LLAMA_FTYPES",
    "GgmlType",
    "LocalModelError",
    "LocalModelFacts",
    "ggml_tensor_bytes",
    "inspect_gguf",
    "inspect_local_model",
    "inspect_snapshot",
    "llama_ftype_name",
]

ModelFormat = Literal["gguf", "safetensors", "other"]


class LocalModelError(Exception):
    """A local model path that cannot be inspected: what is wrong and how to fix it."""

    def __init__(self, path: Path | str, reason: str, fix: str) -> None:
        super().__init__(path, reason, fix)
        self.path = Path(path)
        self.reason = reason
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}. Fix: {self.fix}"


@dataclass(frozen=True)
class LocalModelFacts:
    """What the files of a local model say about it.

    ``weight_bytes`` is the exact sum of tensor sizes (no padding, no metadata);
    ``file_bytes`` is what the files take on disk. ``tensor_types`` breaks the
    weights down per tensor type: ``(type name, params, bytes)``, largest first.
    """

    source_path: str
    format: ModelFormat
    architecture: str
    name: str
    file_type: str
    weight_bytes: int
    file_bytes: int
    params: int
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    experts: int | None = None
    mla_latent: int | None = None
    experts_used: int | None = None
    tensor_types: tuple[tuple[str, int, int], ...] = ()

    @property
    def bits_per_weight(self) -> float:
        """Average stored bits per parameter (0.0 when the count is unknown)."""
        if self.params <= 0:
            return 0.0
        return self.weight_bytes * 8 / self.params


# --------------------------------------------------------------------------- #
# ggml type traits and llama.cpp file types
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class GgmlType:
    """One ggml tensor type: ``block_size`` elements take ``type_size`` bytes."""

    name: str
    block_size: int
    type_size: int


_QK_K = 256

# id -> traits; from gguf-py GGML_QUANT_SIZES (ids 4, 5, 31-33, 36-38 were removed).
GGML_TYPES: Mapping[int, GgmlType] = {
    0: GgmlType("F32", 1, 4),
    1: GgmlType("F16", 1, 2),
    2: GgmlType("Q4_0", 32, 2 + 16),
    3: GgmlType("Q4_1", 32, 2 + 2 + 16),
    6: GgmlType("Q5_0", 32, 2 + 4 + 16),
    7: GgmlType("Q5_1", 32, 2 + 2 + 4 + 16),
    8: GgmlType("Q8_0", 32, 2 + 32),
    9: GgmlType("Q8_1", 32, 4 + 4 + 32),
    10: GgmlType("Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: GgmlType("Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: GgmlType("Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: GgmlType("Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: GgmlType("Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: GgmlType("Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
    16: GgmlType("IQ2_XXS", _QK_K, 2 + _QK_K // 4),
    17: GgmlType("IQ2_XS", _QK_K, 2 + _QK_K // 4 + _QK_K // 32),
    18: GgmlType("IQ3_XXS", _QK_K, 2 + _QK_K // 4 + _QK_K // 8),
    19: GgmlType("IQ1_S", _QK_K, 2 + _QK_K // 8 + _QK_K // 16),
    20: GgmlType("IQ4_NL", 32, 2 + 16),
    21: GgmlType("IQ3_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: GgmlType("IQ2_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 16),
    23: GgmlType("IQ4_XS", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: GgmlType("I8", 1, 1),
    25: GgmlType("I16", 1, 2),
    26: GgmlType("I32", 1, 4),
    27: GgmlType("I64", 1, 8),
    28: GgmlType("F64", 1, 8),
    29: GgmlType("IQ1_M", _QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: GgmlType("BF16", 1, 2),
    34: GgmlType("TQ1_0", _QK_K, 2 + 4 * 13),
    35: GgmlType("TQ2_0", _QK_K, 2 + 64),
    39: GgmlType("MXFP4", 32, 1 + 16),
    40: GgmlType("NVFP4", 64, 4 + 32),
    41: GgmlType("Q1_0", 128, 2 + 16),
}

# general.file_type (enum llama_ftype) -> name as llama.cpp prints it.
LLAMA_FTYPES: Mapping[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    33: "Q4_0_4_4",
    34: "Q4_0_4_8",
    35: "Q4_0_8_8",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}

_LLAMA_FTYPE_GUESSED = 1024


def llama_ftype_name(value: int) -> str | None:
    """Name of a ``general.file_type`` value, or None for an unknown number."""
    return LLAMA_FTYPES.get(value & ~_LLAMA_FTYPE_GUESSED)


def ggml_tensor_bytes(type_id: int, n_elements: int) -> int | None:
    """Exact bytes of a tensor of ``n_elements`` of ggml type ``type_id``.

    None for a type id this module does not know; ValueError when the elements
    do not fill whole blocks (ggml needs rows that are a multiple of the block).
    """
    traits = GGML_TYPES.get(type_id)
    if traits is None:
        return None
    blocks, rest = divmod(n_elements, traits.block_size)
    if rest:
        raise ValueError(
            f"{n_elements} elements is not a whole number of {traits.name} "
            f"blocks of {traits.block_size}"
        )
    return blocks * traits.type_size


# --------------------------------------------------------------------------- #
# GGUF header reader
# --------------------------------------------------------------------------- #

_GGUF_MAGIC = b"GGUF"
_GGUF_DEFAULT_ALIGNMENT = 32
_CHUNK = 1 << 20
_KEEP_ARRAY_MAX = 1 << 16
_MAX_DIMS = 8
# Smallest encodings, to reject absurd counts before looping over them.
_MIN_ITEM_BYTES: Mapping[int, int] = {8: 8, 9: 12}  # string: length; array: type + count
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, 1-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset

# GGUF metadata value types (gguf-py GGUFValueType).
_T_STRING = 8
_T_ARRAY = 9
_SCALAR_FORMATS: Mapping[int, str] = {
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


class _Truncated(Exception):
    """The file ended inside the header."""


class _Corrupt(Exception):
    """The header holds something impossible."""


@dataclass(frozen=True)
class _Array:
    """A metadata array: element type, length, and the values when small and numeric."""

    elem_type: int
    count: int
    values: tuple[Any, ...] | None


@dataclass(frozen=True)
class _TensorInfo:
    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.dims)


@dataclass(frozen=True)
class _GgufHeader:
    metadata: dict[str, Any]
    tensors: tuple[_TensorInfo, ...]
    data_start: int
    file_size: int


class _ChunkReader:
    """Sequential reads from the start of a file, a chunk at a time."""

    def __init__(self, fh: BinaryIO, file_size: int, endian: str = "<") -> None:
        self._fh = fh
        self._file_size = file_size
        self._buf = b""
        self._pos = 0
        self._base = 0  # file offset of _buf[0]
        self.endian = endian
        self._structs: dict[str, struct.Struct] = {}

    def tell(self) -> int:
        return self._base + self._pos

    def expect(self, count: int, min_size: int) -> None:
        """Fail early when ``count`` items of at least ``min_size`` bytes cannot fit."""
        if count * min_size > self._file_size - self.tell():
            raise _Truncated

    def _ensure(self, n: int) -> None:
        available = len(self._buf) - self._pos
        if available >= n:
            return
        if self.tell() + n > self._file_size:
            raise _Truncated
        rest = self._buf[self._pos :]
        self._base += self._pos
        self._buf = rest + self._fh.read(max(_CHUNK, n - len(rest)))
        self._pos = 0
        if len(self._buf) < n:
            raise _Truncated

    def read(self, n: int) -> bytes:
        self._ensure(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def skip(self, n: int) -> None:
        available = len(self._buf) - self._pos
        if n <= available:
            self._pos += n
            return
        target = self.tell() + n
        if target > self._file_size:
            raise _Truncated
        self._fh.seek(target)
        self._buf, self._pos, self._base = b"", 0, target

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        st = self._structs.get(fmt)
        if st is None:
            st = self._structs[fmt] = struct.Struct(self.endian + fmt)
        self._ensure(st.size)
        values = st.unpack_from(self._buf, self._pos)
        self._pos += st.size
        return values

    def u32(self) -> int:
        return int(self.unpack("I")[0])

    def u64(self) -> int:
        return int(self.unpack("Q")[0])

    def string(self) -> str:
        return self.read(self.u64()).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.skip(self.u64())


def _read_value(reader: _ChunkReader, value_type: int) -> Any:
    if value_type == _T_STRING:
        return reader.string()
    if value_type == _T_ARRAY:
        return _read_array(reader)
    return reader.unpack(_value_format(value_type))[0]


def _skip_value(reader: _ChunkReader, value_type: int) -> None:
    if value_type == _T_STRING:
        reader.skip_string()
    elif value_type == _T_ARRAY:
        _read_array(reader, keep=False)
    else:
        reader.unpack(_value_format(value_type))


def _value_format(value_type: int) -> str:
    fmt = _SCALAR_FORMATS.get(value_type)
    if fmt is None:
        raise _Corrupt(f"unknown metadata value type {value_type}")
    return fmt


def _read_array(reader: _ChunkReader, *, keep: bool = True) -> _Array:
    elem_type = reader.u32()
    count = reader.u64()
    reader.expect(count, _MIN_ITEM_BYTES.get(elem_type, 1))
    if elem_type in (_T_STRING, _T_ARRAY):
        for _ in range(count):
            _skip_value(reader, elem_type)
        return _Array(elem_type, count, None)
    fmt = _value_format(elem_type)
    size = struct.calcsize(fmt) * count
    if not keep or count > _KEEP_ARRAY_MAX:
        reader.skip(size)
        return _Array(elem_type, count, None)
    values = struct.unpack(f"{reader.endian}{count}{fmt}", reader.read(size))
    return _Array(elem_type, count, values)


def _read_preamble(reader: _ChunkReader) -> tuple[int, int]:
    """Check magic and version, set the byte order; return (tensor count, kv count)."""
    if reader.read(4) != _GGUF_MAGIC:
        raise _BadMagic
    raw_version = reader.read(4)
    little = struct.unpack("<I", raw_version)[0]
    big = struct.unpack(">I", raw_version)[0]
    if little in (2, 3):
        reader.endian = "<"
    elif big in (2, 3):
        reader.endian = ">"
    elif little == 1:
        raise _Unsupported("GGUF version 1 (pre-2023 files) is not supported")
    else:
        raise _Unsupported(f"unknown GGUF version {little}")
    tensor_count, kv_count = reader.u64(), reader.u64()
    reader.expect(kv_count, _MIN_KV_BYTES)
    reader.expect(tensor_count, _MIN_TENSOR_INFO_BYTES)
    return tensor_count, kv_count


class _BadMagic(Exception):
    """Not a GGUF file."""


class _Unsupported(Exception):
    """A GGUF variant this reader does not read."""


def _read_metadata(reader: _ChunkReader, kv_count: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = reader.string()
        metadata[key] = _read_value(reader, reader.u32())
    return metadata


def _read_tensor_info(reader: _ChunkReader) -> _TensorInfo:
    name = reader.string()
    n_dims = reader.u32()
    if n_dims > _MAX_DIMS:
        raise _Corrupt(f"tensor {name!r} claims {n_dims} dimensions")
    dims = reader.unpack(f"{n_dims}Q") if n_dims else ()
    type_id = reader.u32()
    offset = reader.u64()
    return _TensorInfo(name, tuple(int(d) for d in dims), type_id, offset)


def _read_gguf_header(fh: BinaryIO, file_size: int) -> _GgufHeader:
    reader = _ChunkReader(fh, file_size)
    tensor_count, kv_count = _read_preamble(reader)
    metadata = _read_metadata(reader, kv_count)
    tensors = tuple(_read_tensor_info(reader) for _ in range(tensor_count))
    alignment = metadata.get("general.alignment", _GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = _GGUF_DEFAULT_ALIGNMENT
    data_start = -(-reader.tell() // alignment) * alignment
    return _GgufHeader(metadata, tensors, data_start, file_size)


def _load_gguf_header(path: Path) -> _GgufHeader:
    """Read one GGUF file's header, turning every failure into LocalModelError."""
    try:
        file_size = path.stat().st_size
        with path.open("rb") as fh:
            return _read_gguf_header(fh, file_size)
    except _BadMagic:
        raise LocalModelError(
            path,
            "not a GGUF file (the first four bytes are not 'GGUF')",
            "point at a .gguf model file, or at a Hugging Face snapshot directory",
        ) from None
    except _Truncated:
        raise LocalModelError(
            path,
            "the GGUF header is truncated (the file ends inside its metadata or tensor table)",
            "the download is incomplete or corrupt: download the file again",
        ) from None
    except _Corrupt as exc:
        raise LocalModelError(
            path, f"the GGUF header is corrupt: {exc}", "download the file again"
        ) from None
    except _Unsupported as exc:
        raise LocalModelError(
            path, str(exc), "use a GGUF file from a current llama.cpp conversion (v2 or v3)"
        ) from None
    except OSError as exc:
        raise LocalModelError(
            path, f"cannot read the file: {exc.strerror or exc}", "check the path and permissions"
        ) from None


# --------------------------------------------------------------------------- #
# GGUF: facts from the header
# --------------------------------------------------------------------------- #

_SPLIT_RE = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass
class _Tally:
    """Running totals of tensor params and bytes, per type name."""

    per_type: dict[str, list[int]] = field(default_factory=dict)

    def add(self, type_name: str, params: int, nbytes: int) -> None:
        entry = self.per_type.setdefault(type_name, [0, 0])
        entry[0] += params
        entry[1] += nbytes

    @property
    def params(self) -> int:
        return sum(p for p, _ in self.per_type.values())

    @property
    def nbytes(self) -> int:
        return sum(b for _, b in self.per_type.values())

    def breakdown(self) -> tuple[tuple[str, int, int], ...]:
        rows = ((name, p, b) for name, (p, b) in self.per_type.items())
        return tuple(sorted(rows, key=lambda row: (-row[2], row[0])))


def _tally_gguf_tensors(header: _GgufHeader, tally: _Tally, matrices: _Tally, path: Path) -> None:
    """Add every tensor of one GGUF file to the tallies; check the data is all there.

    ``matrices`` gets the tensors of two or more dimensions only (the quantized ones).
    """
    gaps = _offset_gaps(header)
    data_end = header.data_start
    for info, gap in zip(header.tensors, gaps, strict=True):
        try:
            nbytes = ggml_tensor_bytes(info.type_id, info.n_elements)
        except ValueError as exc:
            raise LocalModelError(
                path, f"tensor {info.name!r}: {exc}", "download the file again"
            ) from None
        if nbytes is None:  # unknown type: its span in the data section, padding included
            nbytes = gap
        traits = GGML_TYPES.get(info.type_id)
        type_name = traits.name if traits else f"TYPE_{info.type_id}"
        tally.add(type_name, info.n_elements, nbytes)
        if sum(d > 1 for d in info.dims) >= 2:
            matrices.add(type_name, info.n_elements, nbytes)
        data_end = max(data_end, header.data_start + info.offset + nbytes)
    if data_end > header.file_size:
        raise LocalModelError(
            path,
            f"the file is {header.file_size} bytes but its tensors end at byte {data_end} "
            "(incomplete download)",
            "download the file again",
        )


def _offset_gaps(header: _GgufHeader) -> list[int]:
    """Per tensor (in table order): bytes from its offset to the next tensor or file end."""
    data_size = max(header.file_size - header.data_start, 0)
    order = sorted(range(len(header.tensors)), key=lambda i: header.tensors[i].offset)
    gaps = [0] * len(header.tensors)
    for rank, index in enumerate(order):
        end = header.tensors[order[rank + 1]].offset if rank + 1 < len(order) else data_size
        gaps[index] = max(end - header.tensors[index].offset, 0)
    return gaps


def _split_parts(path: Path) -> list[Path]:
    """All parts of a split GGUF (``-0000N-of-0000M.gguf``), or just ``[path]``."""
    match = _SPLIT_RE.match(path.name)
    if match is None:
        return [path]
    count = int(match["count"])
    stem = match["stem"]
    parts = [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise LocalModelError(
            path,
            f"split GGUF is missing {len(missing)} of {count} parts: {', '.join(missing[:5])}",
            "download every part into the same directory",
        )
    return parts


def _meta_int(metadata: Mapping[str, Any], key: str) -> int | None:
    """An integer metadata value; an array of integers gives its maximum."""
    value = metadata.get(key)
    if isinstance(value, _Array):
        if not value.values:
            return None
        numbers = [v for v in value.values if isinstance(v, int | float)]
        return int(max(numbers)) if numbers else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _meta_str(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return value if isinstance(value, str) and value else None


def _vocab_size(metadata: Mapping[str, Any], arch: str, tensors: Sequence[_TensorInfo]) -> int:
    tokens = metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, _Array):
        return tokens.count
    from_meta = _meta_int(metadata, f"{arch}.vocab_size")
    if from_meta:
        return from_meta
    for info in tensors:
        if info.name == "token_embd.weight" and len(info.dims) == 2:
            return info.dims[1]
    return 0


def _gguf_file_type(metadata: Mapping[str, Any], matrices: _Tally) -> str:
    """general.file_type by name; without it, the type holding most matrix bytes."""
    ftype = _meta_int(metadata, "general.file_type")
    if ftype is None:
        breakdown = matrices.breakdown()
        return breakdown[0][0] if breakdown else "unknown"
    return llama_ftype_name(ftype) or f"FTYPE_{ftype}"


def _require(value: int | None, path: Path, key: str) -> int:
    if value is None:
        raise LocalModelError(
            path,
            f"GGUF metadata has no {key} (not a language model, or a non-first split part?)",
            "point at the model's .gguf file (the first part, for a split model)",
        )
    return value


def _gguf_facts(
    path: Path, header: _GgufHeader, tallies: tuple[_Tally, _Tally], file_bytes: int
) -> LocalModelFacts:
    tally, matrices = tallies
    meta = header.metadata
    arch = _meta_str(meta, "general.architecture") or "unknown"
    layers = _require(_meta_int(meta, f"{arch}.block_count"), path, f"{arch}.block_count")
    hidden = _require(_meta_int(meta, f"{arch}.embedding_length"), path, f"{arch}.embedding_length")
    heads = _meta_int(meta, f"{arch}.attention.head_count") or 0
    kv_heads = _meta_int(meta, f"{arch}.attention.head_count_kv") or heads
    head_dim = _meta_int(meta, f"{arch}.attention.key_length") or (hidden // heads if heads else 0)
    kv_lora = _meta_int(meta, f"{arch}.attention.kv_lora_rank")
    rope_dim = _meta_int(meta, f"{arch}.rope.dimension_count") or 0
    return LocalModelFacts(
        source_path=str(path),
        format="gguf",
        architecture=arch,
        name=_meta_str(meta, "general.name") or _split_stem(path),
        file_type=_gguf_file_type(meta, matrices),
        weight_bytes=tally.nbytes,
        file_bytes=file_bytes,
        params=tally.params,
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=_vocab_size(meta, arch, header.tensors),
        max_context=_meta_int(meta, f"{arch}.context_length") or 0,
        experts=_meta_int(meta, f"{arch}.expert_count") or None,
        mla_latent=kv_lora + rope_dim if kv_lora else None,
        experts_used=_meta_int(meta, f"{arch}.expert_used_count") or None,
        tensor_types=tally.breakdown(),
    )


def _split_stem(path: Path) -> str:
    match = _SPLIT_RE.match(path.name)
    return match["stem"] if match else path.stem


def inspect_gguf(path: Path) -> LocalModelFacts:
    """Facts of a GGUF model file, read from its header alone.

    For a split model (``name-00001-of-00003.gguf``), any part may be given:
    every part is read and the sizes are summed; the metadata comes from part 1.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    parts = _split_parts(path)
    headers = [_load_gguf_header(part) for part in parts]
    tally, matrices = _Tally(), _Tally()
    for part, header in zip(parts, headers, strict=True):
        _tally_gguf_tensors(header, tally, matrices, part)
    file_bytes = sum(h.file_size for h in headers)
    return _gguf_facts(parts[0], headers[0], (tally, matrices), file_bytes)


# --------------------------------------------------------------------------- #
# Hugging Face snapshot: config.json + safetensors headers
# --------------------------------------------------------------------------- #

_SAFETENSORS_MAX_HEADER = 256 << 20
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_OTHER_WEIGHT_GLOBS = ("*.bin", "*.pt", "*.pth")
_DTYPE_BYTES: Mapping[str, int] = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LocalModelError(path, f"cannot read JSON: {exc}", "download the file again") from None


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language-model part of a config: multimodal models nest it in text_config."""
    nested = config.get("text_config")
    if isinstance(nested, Mapping):
        return {**config, **nested}
    return config


def _cfg_int(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _cfg_str(config: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _quant_method(config: Mapping[str, Any], text: Mapping[str, Any]) -> str | None:
    for cfg in (config, text):
        quant = cfg.get("quantization_config")
        if isinstance(quant, Mapping):
            method = quant.get("quant_method")
            if isinstance(method, str) and method:
                return method
    return None


def _read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one safetensors file (tensor data is not read)."""
    try:
        file_size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise _Truncated
            (length,) = struct.unpack("<Q", prefix)
            if length > min(_SAFETENSORS_MAX_HEADER, file_size - 8):
                raise _Truncated
            raw = fh.read(length)
        header = json.loads(raw.decode("utf-8"))
    except _Truncated:
        raise LocalModelError(
            path,
            "the safetensors header is truncated or its length is wrong",
            "download the file again",
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LocalModelError(
            path, "the safetensors header is not valid JSON", "download the file again"
        ) from None
    except OSError as exc:
        raise LocalModelError(
            path, f"cannot read the file: {exc.strerror or exc}", "check the path and permissions"
        ) from None
    if not isinstance(header, dict):
        raise LocalModelError(
            path, "the safetensors header is not a JSON object", "download the file again"
        )
    return header


def _tally_safetensors(path: Path, tally: _Tally) -> None:
    for name, entry in _read_safetensors_header(path).items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(entry["dtype"])
            shape = [int(d) for d in entry["shape"]]
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise LocalModelError(
                path,
                f"tensor {name!r} has a malformed safetensors entry",
                "download the file again",
            ) from None
        tally.add(dtype, math.prod(shape), end - start)


def _safetensors_files(directory: Path) -> list[Path]:
    """The safetensors files of the model: those the index names, else all beside config."""
    index = directory / _SAFETENSORS_INDEX
    if index.is_file():
        weight_map = _load_json(index).get("weight_map")
        if isinstance(weight_map, Mapping) and weight_map:
            names = sorted({str(v) for v in weight_map.values()})
            files = [directory / n for n in names]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise LocalModelError(
                    directory,
                    f"{len(missing)} safetensors shard(s) named in {_SAFETENSORS_INDEX} are "
                    f"missing: {', '.join(missing[:5])}",
                    "finish the download (all shards)",
                )
            return files
    return sorted(directory.glob("*.safetensors"))


def _other_weight_files(directory: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in _OTHER_WEIGHT_GLOBS:
        found.update(p for p in directory.glob(pattern) if p.is_file())
    return sorted(found)


def _file_sizes(files: Iterable[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def _snapshot_name(directory: Path, config: Mapping[str, Any]) -> str:
    """``org/name`` from a Hugging Face cache path, else _name_or_path, else the dir name."""
    for parent in (directory, *directory.parents):
        if parent.name.startswith("models--"):
            return parent.name.removeprefix("models--").replace("--", "/")
    return _cfg_str(config, "_name_or_path") or directory.name


def _snapshot_weights(directory: Path, dtype: str | None) -> tuple[ModelFormat, _Tally, int]:
    """Format, per-type tally and file bytes of the weight files in a snapshot."""
    tally = _Tally()
    safetensors = _safetensors_files(directory)
    if safetensors:
        for file in safetensors:
            _tally_safetensors(file, tally)
        return "safetensors", tally, _file_sizes(safetensors)
    others = _other_weight_files(directory)
    if not others:
        raise LocalModelError(
            directory,
            "no weight files (*.safetensors, *.bin, *.pt, *.pth) beside config.json",
            "finish the download, or point at the directory that holds the weights",
        )
    total = _file_sizes(others)
    per_param = _DTYPE_BYTES.get(dtype or "")
    params = total // per_param if per_param else 0  # estimate: pickles carry overhead
    tally.add(dtype or "unknown", params, total)
    return "other", tally, total


def inspect_snapshot(directory: Path) -> LocalModelFacts:
    """Facts of a Hugging Face snapshot directory: config.json + safetensors headers."""
    directory = Path(directory)
    if not directory.is_dir():
        raise _missing(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise LocalModelError(
            directory,
            "no config.json in this directory (not a Hugging Face snapshot)",
            "point at the snapshot directory that holds config.json, or at a .gguf file",
        )
    config = _load_json(config_path)
    if not isinstance(config, Mapping):
        raise LocalModelError(
            config_path, "config.json is not a JSON object", "download the file again"
        )
    text = _text_config(config)
    dtype = _cfg_str(text, "torch_dtype", "dtype")
    try:
        fmt, tally, file_bytes = _snapshot_weights(directory, dtype)
    except OSError as exc:
        raise LocalModelError(
            directory, f"cannot read the weight files: {exc}", "check permissions"
        ) from None
    return _snapshot_facts(directory, config, text, fmt, tally, file_bytes)


def _snapshot_facts(
    directory: Path,
    config: Mapping[str, Any],
    text: Mapping[str, Any],
    fmt: ModelFormat,
    tally: _Tally,
    file_bytes: int,
) -> LocalModelFacts:
    layers = _cfg_int(text, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _cfg_int(text, "hidden_size", "n_embd", "d_model")
    if layers is None or hidden is None:
        raise LocalModelError(
            directory / "config.json",
            "config.json has no num_hidden_layers / hidden_size (not a language model?)",
            "point at a language model's snapshot",
        )
    heads = _cfg_int(text, "num_attention_heads", "n_head") or 0
    kv_lora = _cfg_int(text, "kv_lora_rank")
    dominant = tally.breakdown()[0][0] if tally.per_type else "unknown"
    return LocalModelFacts(
        source_path=str(directory),
        format=fmt,
        architecture=_cfg_str(config, "model_type") or _cfg_str(text, "model_type") or "unknown",
        name=_snapshot_name(directory, config),
        file_type=_quant_method(config, text) or _cfg_str(text, "torch_dtype", "dtype") or dominant,
        weight_bytes=tally.nbytes,
        file_bytes=file_bytes,
        params=tally.params,
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=_cfg_int(text, "num_key_value_heads", "n_head_kv") or heads,
        head_dim=_cfg_int(text, "head_dim") or (hidden // heads if heads else 0),
        vocab_size=_cfg_int(text, "vocab_size") or 0,
        max_context=_cfg_int(
            text, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length"
        )
        or 0,
        experts=_cfg_int(text, "n_routed_experts", "num_local_experts", "num_experts") or None,
        mla_latent=kv_lora + (_cfg_int(text, "qk_rope_head_dim") or 0) if kv_lora else None,
        experts_used=_cfg_int(text, "num_experts_per_tok") or None,
        tensor_types=tally.breakdown(),
    )


# --------------------------------------------------------------------------- #
# Dispatch
# --------------------------------------------------------------------------- #


def _missing(path: Path) -> LocalModelError:
    return LocalModelError(
        path, "no such file or directory", "check the path (download the model first)"
    )


def _gguf_models_in(directory: Path) -> Iterator[Path]:
    """One path per GGUF model in a directory: plain files and the first part of splits."""
    for file in sorted(directory.glob("*.gguf")):
        if "mmproj" in file.name.lower():
            continue
        match = _SPLIT_RE.match(file.name)
        if match is None or int(match["index"]) == 1:
            yield file


def _inspect_directory(directory: Path) -> LocalModelFacts:
    if (directory / "config.json").is_file():
        return inspect_snapshot(directory)
    models = list(_gguf_models_in(directory))
    if len(models) == 1:
        return inspect_gguf(models[0])
    if models:
        names = ", ".join(m.name for m in models[:5])
        raise LocalModelError(
            directory, f"several GGUF models here ({names})", "point at one .gguf file"
        )
    return inspect_snapshot(directory)  # raises: no config.json


def inspect_local_model(path: Path) -> LocalModelFacts:
    """Facts of a local model: a .gguf file or a Hugging Face snapshot directory."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _inspect_directory(path)
    if path.is_file():
        return inspect_gguf(path)
    raise _missing(path)

"""Write a tiny random-weight llama GGUF that llama.cpp's llama-server can load.

Usage: ``python -m provision.lab.tinymodel OUT.gguf [--f16] [--seed N]`` (needs the ``gguf`` package:
``pip install provision[lab]``). The local lab serves it (``provision lab up`` writes it).

Shape (architecture ``llama``): 2 blocks, embedding 64, 4 heads (head dim 16),
2 KV heads, feed-forward 128, context 512, vocab 512, rope dimension 16, RMS
eps 1e-5. SentencePiece-style (``llama``) vocabulary: ``<unk>``, ``<s>``,
``</s>``, the 256 byte tokens ``<0x00>``..``<0xFF>``, ``<|im_start|>`` and
``<|im_end|>`` as control tokens, then filler tokens; a ChatML chat template
so ``/v1/chat/completions`` works.

Tensors are given to ``GGUFWriter`` as numpy arrays in the layout
``convert_hf_to_gguf.py`` uses (PyTorch ``(out, in)``); the writer stores the
dims reversed, which is the ggml ``ne`` order llama.cpp expects, e.g.
``token_embd.weight`` numpy ``(n_vocab, n_embd)`` -> ggml ``{n_embd, n_vocab}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType

ARCH = "llama"
N_LAYER = 2
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = N_EMBD // N_HEAD  # 16
N_FF = 128
N_CTX = 512
N_VOCAB = 512
RMS_EPS = 1e-5
ROPE_FREQ_BASE = 10000.0

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
BYTE_BASE = 3  # <0x00> .. <0xFF> take ids 3..258
IM_START_ID = BYTE_BASE + 256  # 259
IM_END_ID = IM_START_ID + 1  # 260

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_SPACE = "\u2581"  # SentencePiece's visible space


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor's numpy shape, in file order."""
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (N_VOCAB, N_EMBD)}
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        shapes[f"{blk}.attn_norm.weight"] = (N_EMBD,)
        shapes[f"{blk}.attn_q.weight"] = (N_HEAD * HEAD_DIM, N_EMBD)
        shapes[f"{blk}.attn_k.weight"] = (N_HEAD_KV * HEAD_DIM, N_EMBD)
        shapes[f"{blk}.attn_v.weight"] = (N_HEAD_KV * HEAD_DIM, N_EMBD)
        shapes[f"{blk}.attn_output.weight"] = (N_EMBD, N_HEAD * HEAD_DIM)
        shapes[f"{blk}.ffn_norm.weight"] = (N_EMBD,)
        shapes[f"{blk}.ffn_gate.weight"] = (N_FF, N_EMBD)
        shapes[f"{blk}.ffn_up.weight"] = (N_FF, N_EMBD)
        shapes[f"{blk}.ffn_down.weight"] = (N_EMBD, N_FF)
    shapes["output_norm.weight"] = (N_EMBD,)
    shapes["output.weight"] = (N_VOCAB, N_EMBD)
    return shapes


def is_norm(name: str) -> bool:
    """Norm weights: 1-D, all ones, always stored as F32."""
    return name.endswith("norm.weight")


def _filler_tokens(count: int, taken: set[str]) -> list[str]:
    """Unique normal tokens: the space piece, printable ASCII, then space+letter and pairs."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    candidates = [_SPACE]
    candidates += [chr(c) for c in range(33, 127)]
    candidates += [_SPACE + ch for ch in letters + letters.upper()]
    candidates += [a + b for a in letters for b in letters]
    tokens: list[str] = []
    for tok in candidates:
        if tok not in taken:
            tokens.append(tok)
            taken.add(tok)
        if len(tokens) == count:
            return tokens
    raise ValueError(f"not enough filler tokens for {count}")


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types, N_VOCAB of each."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    tokens += ["<|im_start|>", "<|im_end|>"]
    types += [TokenType.CONTROL, TokenType.CONTROL]
    filler = _filler_tokens(N_VOCAB - len(tokens), set(tokens))
    tokens += filler
    types += [TokenType.NORMAL] * len(filler)
    scores = [0.0] * len(tokens)
    first_filler = len(tokens) - len(filler)
    for i in range(first_filler, len(tokens)):
        scores[i] = -float(i - first_filler)  # earlier filler merges first
    assert len(tokens) == N_VOCAB == len(set(tokens))
    return tokens, scores, [int(t) for t in types]


def _add_hparams(writer: GGUFWriter, f16: bool) -> None:
    writer.add_name("tiny-llama-test")
    writer.add_file_type(LlamaFileType.MOSTLY_F16 if f16 else LlamaFileType.ALL_F32)
    writer.add_block_count(N_LAYER)
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(ROPE_FREQ_BASE)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_vocab_size(N_VOCAB)


def _add_tokenizer(writer: GGUFWriter) -> None:
    tokens, scores, types = vocabulary()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_eot_token_id(IM_END_ID)
    writer.add_pad_token_id(UNK_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)


def _add_tensors(writer: GGUFWriter, f16: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    weight_dtype = np.float16 if f16 else np.float32
    for name, shape in tensor_shapes().items():
        if is_norm(name):
            writer.add_tensor(name, np.ones(shape, dtype=np.float32))
        else:
            data = (rng.standard_normal(shape) * 0.02).astype(weight_dtype)
            writer.add_tensor(name, data)


def write_tiny_gguf(path: Path, *, f16: bool = False, seed: int = 0) -> Path:
    """Write the tiny llama model to ``path`` (F32, or F16 except the norms)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, ARCH)
    _add_hparams(writer, f16)
    _add_tokenizer(writer)
    _add_tensors(writer, f16, seed)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output .gguf path")
    parser.add_argument("--f16", action="store_true", help="store 2-D weights as F16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = write_tiny_gguf(args.out, f16=args.f16, seed=args.seed)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

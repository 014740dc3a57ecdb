#!/usr/bin/python3
"""STAND-IN for the vLLM and TGI servers (NOT vLLM, NOT TGI): tests only.

`tests/standins/build.py` puts this file in tiny container images as `/usr/local/bin/vllm`
(image `provision-standin/vllm-openai`, entrypoint `vllm serve`, as in vllm/vllm-openai) and
as `/usr/local/bin/text-generation-launcher` (image `provision-standin/tgi`, entrypoint
`/tgi-entrypoint.sh`, as in the TGI image). Which engine it plays follows from the program
name.

It parses the real engine's command line STRICTLY, with the options of the pinned versions
(vLLM v0.28.0 `vllm serve`; TGI 3.3.x `text-generation-launcher`, whose options also read
environment variables the way clap does): an unknown option exits 2 with the usage, as the
real parsers do. It records the exact argv and environment at /standin/argv.json and serves
them at GET /standin/args, then serves the endpoints the roles and the engine contract use:
/health, /v1/models, /v1/chat/completions, /v1/completions, /metrics (real metric names),
and for TGI /info and /generate; `stream: true` answers with server-sent events. An API
key (vLLM: --api-key or VLLM_API_KEY; TGI: --api-key or API_KEY) is enforced on /v1/* (and
TGI's /generate) with `Authorization: Bearer`.

STANDIN_STARTUP_DELAY_S (default 2) delays listening, like a model load, so the roles' wait
loops are exercised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORD_DIR = Path(os.environ.get("STANDIN_RECORD_DIR", "/standin"))

# ----------------------------------------------------------------------------- vLLM


def vllm_parser() -> argparse.ArgumentParser:
    """`vllm serve` options the roles may emit (names checked against vLLM v0.28.0; docs/engines.md)."""
    p = argparse.ArgumentParser(prog="vllm serve", allow_abbrev=False)
    p.add_argument("model_tag")
    p.add_argument("--host")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", nargs="+")
    p.add_argument("--served-model-name", nargs="+")
    p.add_argument("--tokenizer")
    p.add_argument("--hf-config-path")
    p.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    p.add_argument("--pipeline-parallel-size", "-pp", type=int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float)
    p.add_argument("--kv-cache-memory-bytes", type=int)
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--max-num-seqs", type=int)
    p.add_argument("--max-num-batched-tokens", type=int)
    p.add_argument("--dtype", choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
    p.add_argument(
        "--kv-cache-dtype",
        choices=["auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"],
    )
    p.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction)
    p.add_argument("--quantization", "-q")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument("--download-dir")
    p.add_argument("--generation-config")
    p.add_argument("--uvicorn-log-level")
    p.add_argument("--disable-fastapi-docs", action="store_true")
    return p


# ----------------------------------------------------------------------------- TGI

# (option, env var, kind) of text-generation-launcher 3.x (docs/source/reference/launcher.md).
TGI_OPTIONS: list[tuple[str, str, str]] = [
    ("--model-id", "MODEL_ID", "str"),
    ("--revision", "REVISION", "str"),
    ("--validation-workers", "VALIDATION_WORKERS", "int"),
    ("--sharded", "SHARDED", "bool"),
    ("--num-shard", "NUM_SHARD", "int"),
    ("--quantize", "QUANTIZE", "quantize"),
    ("--speculate", "SPECULATE", "int"),
    ("--dtype", "DTYPE", "dtype"),
    ("--kv-cache-dtype", "KV_CACHE_DTYPE", "kvdtype"),
    ("--trust-remote-code", "TRUST_REMOTE_CODE", "flag"),
    ("--max-concurrent-requests", "MAX_CONCURRENT_REQUESTS", "int"),
    ("--max-best-of", "MAX_BEST_OF", "int"),
    ("--max-stop-sequences", "MAX_STOP_SEQUENCES", "int"),
    ("--max-top-n-tokens", "MAX_TOP_N_TOKENS", "int"),
    ("--max-input-tokens", "MAX_INPUT_TOKENS", "int"),
    ("--max-input-length", "MAX_INPUT_LENGTH", "int"),
    ("--max-total-tokens", "MAX_TOTAL_TOKENS", "int"),
    ("--waiting-served-ratio", "WAITING_SERVED_RATIO", "float"),
    ("--max-batch-prefill-tokens", "MAX_BATCH_PREFILL_TOKENS", "int"),
    ("--max-batch-total-tokens", "MAX_BATCH_TOTAL_TOKENS", "int"),
    ("--max-waiting-tokens", "MAX_WAITING_TOKENS", "int"),
    ("--max-batch-size", "MAX_BATCH_SIZE", "int"),
    ("--cuda-graphs", "CUDA_GRAPHS", "str"),
    ("--hostname", "HOSTNAME", "str"),
    ("--port", "PORT", "int"),
    ("--shard-uds-path", "SHARD_UDS_PATH", "str"),
    ("--master-addr", "MASTER_ADDR", "str"),
    ("--master-port", "MASTER_PORT", "int"),
    ("--huggingface-hub-cache", "HUGGINGFACE_HUB_CACHE", "str"),
    ("--weights-cache-override", "WEIGHTS_CACHE_OVERRIDE", "str"),
    ("--disable-custom-kernels", "DISABLE_CUSTOM_KERNELS", "flag"),
    ("--cuda-memory-fraction", "CUDA_MEMORY_FRACTION", "float"),
    ("--rope-scaling", "ROPE_SCALING", "str"),
    ("--rope-factor", "ROPE_FACTOR", "float"),
    ("--json-output", "JSON_OUTPUT", "flag"),
    ("--otlp-endpoint", "OTLP_ENDPOINT", "str"),
    ("--otlp-service-name", "OTLP_SERVICE_NAME", "str"),
    ("--cors-allow-origin", "CORS_ALLOW_ORIGIN", "str"),
    ("--api-key", "API_KEY", "str"),
    ("--watermark-gamma", "WATERMARK_GAMMA", "float"),
    ("--watermark-delta", "WATERMARK_DELTA", "float"),
    ("--tokenizer-config-path", "TOKENIZER_CONFIG_PATH", "str"),
    ("--disable-grammar-support", "DISABLE_GRAMMAR_SUPPORT", "flag"),
    ("--max-client-batch-size", "MAX_CLIENT_BATCH_SIZE", "int"),
    ("--lora-adapters", "LORA_ADAPTERS", "str"),
    ("--usage-stats", "USAGE_STATS", "usage"),
    ("--payload-limit", "PAYLOAD_LIMIT", "int"),
    ("--enable-prefill-logprobs", "ENABLE_PREFILL_LOGPROBS", "flag"),
]
TGI_CHOICES = {
    "bool": ["true", "false"],
    "quantize": [
        "awq",
        "compressed-tensors",
        "eetq",
        "exl2",
        "gptq",
        "marlin",
        "bitsandbytes",
        "bitsandbytes-nf4",
        "bitsandbytes-fp4",
        "fp8",
    ],
    "dtype": ["float16", "bfloat16"],
    "kvdtype": ["fp8_e4m3fn", "fp8_e5m2"],
    "usage": ["on", "off", "no-stack"],
}
TGI_DEFAULTS = {
    "--port": 3000,
    "--hostname": "0.0.0.0",
    "--max-concurrent-requests": 128,
    "--cuda-memory-fraction": 1.0,
    "--master-port": 29500,
    "--model-id": "bigscience/bloom-560m",
}


def tgi_parse(argv: list[str]) -> dict[str, Any]:
    """clap-like: `--opt value`, `--opt=value`, `-p value`; env var fallback; unknown -> exit 2."""
    by_flag = {o: (env, kind) for o, env, kind in TGI_OPTIONS}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    rest = list(argv)
    while rest:
        item = rest.pop(0)
        flag, eq, val = item.partition("=")
        if flag == "-p":
            flag = "--port"
        if flag not in by_flag:
            sys.stderr.write(
                f"error: unexpected argument '{item}' found\n\nUsage: text-generation-launcher [OPTIONS]\n"
            )
            sys.exit(2)
        _, kind = by_flag[flag]
        if kind == "flag":
            if eq:
                sys.stderr.write(
                    f"error: unexpected value '{val}' for '{flag}' found; no more were expected\n"
                )
                sys.exit(2)
            values[flag] = True
        else:
            if not eq:
                if not rest:
                    sys.stderr.write(
                        f"error: a value is required for '{flag} <{flag[2:].upper()}>' "
                        "but none was supplied\n"
                    )
                    sys.exit(2)
                val = rest.pop(0)
            values[flag] = _tgi_value(flag, kind, val)
        sources[flag] = "argv"
    for flag, (env, kind) in by_flag.items():
        if flag not in values and os.environ.get(env) not in (None, ""):
            values[flag] = True if kind == "flag" else _tgi_value(flag, kind, os.environ[env])
            sources[flag] = f"env {env}"
    for flag, default in TGI_DEFAULTS.items():
        values.setdefault(flag, default)
        sources.setdefault(flag, "default")
    return {"values": values, "sources": sources}


def _tgi_value(flag: str, kind: str, val: str) -> Any:
    try:
        if kind == "int":
            return int(val)
        if kind == "float":
            return float(val)
    except ValueError:
        sys.stderr.write(f"error: invalid value '{val}' for '{flag}': invalid digit found in string\n")
        sys.exit(2)
    if kind in TGI_CHOICES and val not in TGI_CHOICES[kind]:
        sys.stderr.write(
            f"error: invalid value '{val}' for '{flag}'\n"
            f"  [possible values: {', '.join(TGI_CHOICES[kind])}]\n"
        )
        sys.exit(2)
    return val


# ----------------------------------------------------------------------------- metrics

VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{m}"}} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="{m}"}} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="{m}"}} 0.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="{m}"}} {pt}
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="{m}"}} {gt}
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{{engine="0",model_name="{m}"}} {pt}
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{{engine="0",model_name="{m}"}} 0.0
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{{engine="0",model_name="{m}"}} 0.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="length",model_name="{m}"}} {n}
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="{m}"}} {n}
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="{m}"}} 0.0
vllm:time_to_first_token_seconds_count{{engine="0",model_name="{m}"}} {n}
# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{{engine="0",le="+Inf",model_name="{m}"}} 0
vllm:inter_token_latency_seconds_sum{{engine="0",model_name="{m}"}} 0.0
vllm:inter_token_latency_seconds_count{{engine="0",model_name="{m}"}} 0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{{engine="0",le="+Inf",model_name="{m}"}} {n}
vllm:e2e_request_latency_seconds_sum{{engine="0",model_name="{m}"}} 0.0
vllm:e2e_request_latency_seconds_count{{engine="0",model_name="{m}"}} {n}
# HELP vllm:request_queue_time_seconds Histogram of time spent in WAITING phase for request.
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{{engine="0",le="+Inf",model_name="{m}"}} {n}
vllm:request_queue_time_seconds_sum{{engine="0",model_name="{m}"}} 0.0
vllm:request_queue_time_seconds_count{{engine="0",model_name="{m}"}} {n}
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{{block_size="16",engine="0",num_gpu_blocks="1024"}} 1.0
"""

TGI_METRICS = """\
# TYPE tgi_request_count counter
tgi_request_count {n}
# TYPE tgi_request_success counter
tgi_request_success {n}
# TYPE tgi_queue_size gauge
tgi_queue_size 0
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 0
# TYPE tgi_batch_current_max_tokens gauge
tgi_batch_current_max_tokens 0
# TYPE tgi_request_duration histogram
tgi_request_duration_bucket{{le="+Inf"}} {n}
tgi_request_duration_sum 0
tgi_request_duration_count {n}
# TYPE tgi_request_input_length histogram
tgi_request_input_length_bucket{{le="+Inf"}} {n}
tgi_request_input_length_sum {pt}
tgi_request_input_length_count {n}
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{{le="+Inf"}} {n}
tgi_request_generated_tokens_sum {gt}
tgi_request_generated_tokens_count {n}
"""

# ----------------------------------------------------------------------------- server


class State:
    def __init__(self, engine: str, record: dict[str, Any], served: str, api_key: str | None) -> None:
        self.engine = engine
        self.record = record
        self.served = served
        self.api_key = api_key
        self.lock = threading.Lock()
        self.requests = 0
        self.prompt_tokens = 0
        self.generated = 0


def sse(handler: BaseHTTPRequestHandler, model: str, text: str, chat: bool = True) -> None:
    """An OpenAI streamed completion: one chunk per character, then [DONE] (server-sent events)."""
    created = int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"
    chunks = []
    for i, char in enumerate(text):
        choice: dict[str, Any] = {"index": 0, "finish_reason": None}
        if chat:
            choice["delta"] = {"role": "assistant", "content": char} if i == 0 else {"content": char}
        else:
            choice["text"] = char
        chunks.append(
            {"id": "cmpl-standin", "object": obj, "created": created, "model": model, "choices": [choice]}
        )
    last: dict[str, Any] = {"index": 0, "finish_reason": "length"}
    last["delta" if chat else "text"] = {} if chat else ""
    chunks.append(
        {"id": "cmpl-standin", "object": obj, "created": created, "model": model, "choices": [last]}
    )
    data = b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n" for c in chunks)
    data += b"data: [DONE]\n\n"
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"{state.engine}-standin"

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write(f"[standin] {self.address_string()} - {fmt % args}\n")

        def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
            data = (
                body
                if isinstance(body, bytes)
                else (
                    body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
                )
            )
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if not state.api_key:
                return True
            if self.headers.get("Authorization", "") == f"Bearer {state.api_key}":
                return True
            self._send(401, {"error": "Unauthorized"})
            return False

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/health":
                self._send(200, b"", "text/plain")
            elif path == "/standin/args":
                self._send(200, state.record)
            elif path == "/metrics":
                tmpl = VLLM_METRICS if state.engine == "vllm" else TGI_METRICS
                text = tmpl.format(
                    m=state.served, n=state.requests, pt=state.prompt_tokens, gt=state.generated
                )
                self._send(200, text, "text/plain; version=0.0.4")
            elif path == "/v1/models":
                if not self._authorized():
                    return
                owner = "vllm" if state.engine == "vllm" else "text-generation-inference"
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": state.served, "object": "model", "created": 0, "owned_by": owner},
                        ],
                    },
                )
            elif path == "/info" and state.engine == "tgi":
                v = state.record["parsed"]["values"]
                self._send(
                    200,
                    {
                        "model_id": v["--model-id"],
                        "max_input_tokens": v.get("--max-input-tokens"),
                        "max_total_tokens": v.get("--max-total-tokens"),
                        "max_concurrent_requests": v.get("--max-concurrent-requests"),
                        "version": "standin",
                        "router": "text-generation-router (stand-in)",
                    },
                )
            elif path in ("/version", "/ping") and state.engine == "vllm":
                self._send(200, {"version": "standin"})
            else:
                self._send(404, {"error": "Not Found"})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": "invalid JSON"})
                return
            if path in ("/v1/chat/completions", "/v1/completions"):
                if not self._authorized():
                    return
                model = body.get("model")
                if state.engine == "vllm" and model not in (None, state.served):
                    self._send(
                        404,
                        {
                            "error": {
                                "message": f"The model `{model}` does not exist.",
                                "type": "NotFoundError",
                                "code": 404,
                            }
                        },
                    )
                    return
                max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
                text = "x" * min(max_tokens, 4)
                with state.lock:
                    state.requests += 1
                    state.prompt_tokens += 3
                    state.generated += len(text)
                if body.get("stream"):
                    sse(self, state.served, text, chat=path.endswith("chat/completions"))
                    return
                choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
                if path.endswith("chat/completions"):
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                self._send(
                    200,
                    {
                        "id": "cmpl-standin",
                        "object": "chat.completion" if "chat" in path else "text_completion",
                        "created": int(time.time()),
                        "model": state.served,
                        "choices": [choice],
                        "usage": {
                            "prompt_tokens": 3,
                            "completion_tokens": len(text),
                            "total_tokens": 3 + len(text),
                        },
                    },
                )
            elif path == "/generate" and state.engine == "tgi":
                if not self._authorized():
                    return
                with state.lock:
                    state.requests += 1
                self._send(200, {"generated_text": "x"})
            else:
                self._send(404, {"error": "Not Found"})

    return Handler


def fail(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.exit(1)


def main() -> int:
    prog = Path(sys.argv[0]).name
    argv = sys.argv[1:]
    if prog == "vllm":
        engine = "vllm"
        if not argv or argv[0] != "serve":
            fail("stand-in vllm: only `vllm serve` is implemented")
        args = vllm_parser().parse_args(argv[1:])
        parsed: dict[str, Any] = {k: v for k, v in vars(args).items()}
        model = args.model_tag
        served = (args.served_model_name or [model])[0]
        api_key = (args.api_key or [None])[0] or os.environ.get("VLLM_API_KEY")
        host, port = args.host or "0.0.0.0", args.port
        if args.gpu_memory_utilization is not None and not 0 < args.gpu_memory_utilization <= 1:
            fail(f"ValueError: gpu_memory_utilization must be in (0, 1], got {args.gpu_memory_utilization}")
    elif prog == "text-generation-launcher":
        engine = "tgi"
        parsed = tgi_parse(argv)
        values = parsed["values"]
        model = values["--model-id"]
        served = model
        api_key = values.get("--api-key")
        host, port = values["--hostname"], values["--port"]
        if (
            values.get("--max-input-tokens")
            and values.get("--max-total-tokens")
            and (values["--max-input-tokens"] >= values["--max-total-tokens"])
        ):
            fail('Error: ArgumentValidation("`max_input_tokens` must be < `max_total_tokens`")')
    else:
        fail(f"stand-in: unknown program name {prog!r}")
        return 1
    offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "YES", "yes")
    if model.startswith("/"):
        if not Path(model).exists():
            fail(f"OSError: {model} does not exist (stand-in checks the mounted model path)")
    elif offline:
        fail(f"OSError: HF_HUB_OFFLINE=1 and {model!r} is not a local path (cannot download)")
    record = {
        "standin": True,
        "engine": engine,
        "argv": [sys.argv[0], *argv],
        "environ": dict(os.environ),
        "parsed": parsed,
        "model": model,
        "served_model_name": served,
        "model_listing": sorted(os.listdir(model))
        if model.startswith("/") and Path(model).is_dir()
        else None,
    }
    try:
        RECORD_DIR.mkdir(parents=True, exist_ok=True)
        (RECORD_DIR / "argv.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    except OSError as exc:
        sys.stderr.write(f"[standin] could not write {RECORD_DIR}/argv.json: {exc}\n")
    delay = float(os.environ.get("STANDIN_STARTUP_DELAY_S", "2"))
    sys.stderr.write(f"[standin] {engine} stand-in: loading {model} ({delay}s)\n")
    time.sleep(delay)
    state = State(engine, record, served, api_key)
    httpd = ThreadingHTTPServer(("" if host in ("0.0.0.0", "::") else host, int(port)), make_handler(state))
    sys.stderr.write(f"[standin] {engine} stand-in serving {served} on {host}:{port}\n")
    httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

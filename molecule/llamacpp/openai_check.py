"""Check reported engine endpoints from the controller, as a client would.

Usage: ``python openai_check.py ENDPOINTS.json`` (the provision_engine_endpoints list that
converge recorded). For every endpoint: the contract's keys; GET health_url answers 200;
with the OpenAI Python SDK against base_url, /v1/models lists the served model, a plain
chat completion and a streamed one have the OpenAI shape; GET metrics_url is Prometheus text
with llama.cpp's metric names, and its token counters grew. Asserts structure only: the
tiny model emits gibberish and may stop early. Prints one JSON summary line; exit 1 on the
first failure, with the reason.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from openai import OpenAI

CONTRACT_KEYS = {"deployment", "engine", "model", "port", "base_url", "health_url", "metrics_url", "pool"}
# llama-server's Prometheus metrics (tools/server/README.md of the pinned version).
LLAMACPP_METRICS = (
    "llamacpp:prompt_tokens_total",
    "llamacpp:tokens_predicted_total",
    "llamacpp:requests_processing",
    "llamacpp:requests_deferred",
    "llamacpp:n_decode_total",
)


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def metrics(url: str) -> dict[str, float]:
    status, text = http_get(url)
    if status != 200:
        fail(f"{url} answered {status}")
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def check(endpoint: dict) -> dict:
    name = endpoint.get("deployment")
    if set(endpoint) != CONTRACT_KEYS:
        fail(f"{name}: keys {sorted(endpoint)} are not the contract's {sorted(CONTRACT_KEYS)}")
    if endpoint["engine"] != "llamacpp" or endpoint["metrics_url"] is None:
        fail(f"{name}: engine {endpoint['engine']}, metrics_url {endpoint['metrics_url']}")
    base = endpoint["base_url"]
    if not base.endswith(f":{endpoint['port']}/v1") or "0.0.0.0" in base or "127.0.0.1" in base:
        fail(f"{name}: base_url {base} is not http://<host address>:{endpoint['port']}/v1")

    status, body = http_get(endpoint["health_url"])
    if status != 200 or json.loads(body).get("status") != "ok":
        fail(f"{name}: {endpoint['health_url']} answered {status} {body!r}")
    before = metrics(endpoint["metrics_url"])

    client = OpenAI(base_url=base, api_key="not-needed", timeout=30, max_retries=0)
    served = [m.id for m in client.models.list().data]
    if endpoint["model"] not in served:
        fail(f"{name}: /v1/models lists {served}, not {endpoint['model']}")

    plain = client.chat.completions.create(
        model=endpoint["model"],
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    if plain.object != "chat.completion" or len(plain.choices) != 1:
        fail(f"{name}: plain completion {plain}")
    choice = plain.choices[0]
    if choice.message.role != "assistant" or not isinstance(choice.message.content, str):
        fail(f"{name}: plain completion message {choice.message}")
    if choice.finish_reason not in ("stop", "length"):
        fail(f"{name}: finish_reason {choice.finish_reason}")
    if not (plain.usage and 1 <= plain.usage.completion_tokens <= 8 and plain.usage.prompt_tokens > 0):
        fail(f"{name}: usage {plain.usage}")

    stream = client.chat.completions.create(
        model=endpoint["model"],
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=8,
        temperature=0,
        stream=True,
    )
    chunks = list(stream)
    if not chunks or any(c.object != "chat.completion.chunk" for c in chunks):
        fail(f"{name}: stream chunks {[c.object for c in chunks]}")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    if finishes not in (["stop"], ["length"]):
        fail(f"{name}: stream finish reasons {finishes}")
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]

    after = metrics(endpoint["metrics_url"])
    missing = [m for m in LLAMACPP_METRICS if m not in after]
    if missing:
        fail(f"{name}: {endpoint['metrics_url']} lacks {missing}")
    for counter in ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total"):
        if after[counter] <= before.get(counter, 0):
            fail(f"{name}: {counter} did not grow ({before.get(counter)} -> {after[counter]})")
    return {
        "deployment": name,
        "base_url": base,
        "models": served,
        "plain_completion_tokens": plain.usage.completion_tokens,
        "stream_chunks": len(chunks),
        "stream_content_chunks": len(deltas),
        "tokens_predicted_total": after["llamacpp:tokens_predicted_total"],
    }


def main(argv: list[str]) -> int:
    endpoints = json.loads(Path(argv[1]).read_text())
    if not endpoints:
        fail(f"{argv[1]}: no endpoints reported")
    print(json.dumps([check(endpoint) for endpoint in endpoints]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

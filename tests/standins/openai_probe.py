"""Check engine endpoints from the controller with the OpenAI Python SDK (tests only).

    python tests/standins/openai_probe.py ENDPOINTS_JSON [--api-key KEY]

ENDPOINTS_JSON is a list of `provision_engine_endpoints` items (docs/engines.md, the engine
contract). For each one: GET health_url answers 200; GET metrics_url (when not null) answers
Prometheus text; with the SDK against base_url: models.list() answers, a one-token chat
completion returns a `chat.completion`, and the same request with stream=True yields chunks
ending in a finish_reason. Prints one JSON line per endpoint; exits 1 on the first failure.

The Molecule scenarios ollama, vllm and tgi run it against the STAND-IN engines
(tests/standins), NOT the real ones: it checks the roles' wiring (addresses, ports, key,
served model names), not generated text.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Any

from openai import OpenAI


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read().decode(errors="replace")


def probe(endpoint: dict[str, Any], api_key: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"deployment": endpoint["deployment"]}
    status, _ = _get(endpoint["health_url"])
    assert status == 200, f"health {endpoint['health_url']} answered {status}"
    if endpoint.get("metrics_url"):
        status, text = _get(endpoint["metrics_url"])
        assert status == 200 and "# TYPE" in text, f"metrics {endpoint['metrics_url']}: {status}"
        result["metrics_lines"] = len(text.splitlines())
    client = OpenAI(base_url=endpoint["base_url"], api_key=api_key or "none", max_retries=0, timeout=60)
    result["models"] = [m.id for m in client.models.list().data]
    messages = [{"role": "user", "content": "ping"}]
    plain = client.chat.completions.create(model=endpoint["model"], messages=messages, max_tokens=1)
    assert plain.object == "chat.completion" and plain.choices, plain
    assert plain.usage is None or plain.usage.completion_tokens <= 1, plain.usage
    result["plain"] = plain.choices[0].message.content
    chunks = list(
        client.chat.completions.create(model=endpoint["model"], messages=messages, max_tokens=1, stream=True)
    )
    assert chunks and chunks[-1].choices[0].finish_reason, chunks
    result["stream_chunks"] = len(chunks)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoints", help="JSON list of provision_engine_endpoints items")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    endpoints = json.loads(args.endpoints)
    if not endpoints:
        print("no endpoints", file=sys.stderr)
        return 1
    for endpoint in endpoints:
        try:
            print(json.dumps(probe(endpoint, args.api_key), ensure_ascii=False))
        except Exception as exc:  # one line naming the deployment and what failed
            print(f"{endpoint.get('deployment')}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

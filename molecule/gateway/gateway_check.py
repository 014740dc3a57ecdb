"""Talk to the gateway from the controller, as OpenAI clients do.

Usage:
  python gateway_check.py check ORIGIN KEY OTHER_KEY   the whole client contract (below)
  python gateway_check.py burst ORIGIN KEY PATH MODEL N  N plain chat completions on
                                                        ORIGIN + PATH (e.g. /v1/), one JSON line
                                                        with the answering models and statuses

ORIGIN is http://<gateway address>:<port>. `check` asserts, with the OpenAI Python SDK: /v1/models
lists every served model (tiny-llama-test in pool general, tiny-fast in pool fast) and
/v1/fast/models only the fast pool's; plain and streamed chat completions are routed by the
model field (base_url ORIGIN/v1) and by the pool path (base_url ORIGIN/v1/fast, whatever the
model); legacy completions too; a wrong key and a missing key get 401 with OpenAI's error body
(invalid_api_key); an unknown model gets 404 model_not_found; engine admin paths (/metrics,
/slots, /props, Ollama's /api/tags) are 404 through the gateway; /health is the gateway's own.
Structure only: the tiny model emits gibberish. Prints one JSON summary line; exit 1 with the
reason on the first failure.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import openai
from openai import OpenAI

GENERAL_MODEL = "tiny-llama-test"
FAST_MODEL = "tiny-fast"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def http(
    method: str, url: str, headers: dict[str, str] | None = None, body: dict | None = None
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        fail(f"{method} {url} answered {status} with a body that is not JSON: {text[:300]!r}")
        raise


def openai_error(body: dict, code: str) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and error.get("code") == code
        and isinstance(error.get("message"), str)
        and error.get("type") in ("invalid_request_error", "server_error")
    )


def plain(client: OpenAI, model: str) -> openai.types.chat.ChatCompletion:
    reply = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4, temperature=0)
    if reply.object != "chat.completion" or len(reply.choices) != 1:
        fail(f"plain completion for {model}: {reply}")
    if reply.choices[0].message.role != "assistant" or not reply.usage or reply.usage.completion_tokens < 1:
        fail(f"plain completion for {model}: {reply}")
    return reply


def streamed(client: OpenAI, model: str) -> tuple[str, int]:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=4, temperature=0, stream=True
        )
    )
    if not chunks or any(c.object != "chat.completion.chunk" for c in chunks):
        fail(f"streamed completion for {model}: {[c.object for c in chunks]}")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    if finishes not in (["stop"], ["length"]):
        fail(f"streamed completion for {model}: finish reasons {finishes}")
    answered = {c.model for c in chunks}
    if len(answered) != 1:
        fail(f"streamed completion for {model}: chunks from {answered}")
    return answered.pop(), len(chunks)


def check(origin: str, key: str, other_key: str) -> dict:
    status, health = http("GET", f"{origin}/health")
    if status != 200 or health.get("status") != "ok" or set(health.get("pools", {})) != {"general", "fast"}:
        fail(f"/health answered {status} {health}")

    client = OpenAI(base_url=f"{origin}/v1", api_key=key, timeout=30, max_retries=0)
    fast = OpenAI(base_url=f"{origin}/v1/fast", api_key=key, timeout=30, max_retries=0)
    listed = sorted(m.id for m in client.models.list().data)
    if listed != sorted([GENERAL_MODEL, FAST_MODEL]):
        fail(f"/v1/models lists {listed}")
    fast_listed = [m.id for m in fast.models.list().data]
    if fast_listed != [FAST_MODEL]:
        fail(f"/v1/fast/models lists {fast_listed}")

    routed = {}
    # By model: the body's model field picks the pool (llama-server answers with its alias).
    for model in (GENERAL_MODEL, FAST_MODEL):
        reply = plain(client, model)
        if reply.model != model:
            fail(f"model {model} was answered by {reply.model}")
        answered, chunks = streamed(client, model)
        if answered != model:
            fail(f"streamed model {model} was answered by {answered}")
        routed[model] = {"plain": reply.model, "stream": answered, "chunks": chunks}
    # By path: /v1/fast/... goes to pool fast whatever the model says.
    reply = plain(fast, GENERAL_MODEL)
    answered, _ = streamed(fast, GENERAL_MODEL)
    if reply.model != FAST_MODEL or answered != FAST_MODEL:
        fail(f"/v1/fast/ with model {GENERAL_MODEL} was answered by {reply.model} / {answered}")
    # Legacy completions, routed the same way.
    legacy = client.completions.create(model=FAST_MODEL, prompt="Hello", max_tokens=2)
    if legacy.model != FAST_MODEL or legacy.object != "text_completion":
        fail(f"completions for {FAST_MODEL}: {legacy}")
    # The second key is accepted too.
    OpenAI(base_url=f"{origin}/v1", api_key=other_key, timeout=30, max_retries=0).models.list()

    # Keys: wrong and missing -> 401 with OpenAI's error body.
    try:
        OpenAI(
            base_url=f"{origin}/v1", api_key="sk-wrong-key-0000000000", timeout=30, max_retries=0
        ).models.list()
        fail("a wrong key was accepted")
    except openai.AuthenticationError as error:
        if error.status_code != 401 or not openai_error(
            error.body if "error" in (error.body or {}) else {"error": error.body}, "invalid_api_key"
        ):
            fail(f"wrong key: {error.status_code} {error.body}")
    try:
        OpenAI(
            base_url=f"{origin}/v1", api_key="sk-wrong-key-0000000000", timeout=30, max_retries=0
        ).chat.completions.create(model=GENERAL_MODEL, messages=MESSAGES, max_tokens=1)
        fail("a wrong key was accepted for a chat completion")
    except openai.AuthenticationError:
        pass
    for method, path, body in (
        ("GET", "/v1/models", None),
        ("POST", "/v1/chat/completions", {"model": GENERAL_MODEL, "messages": MESSAGES}),
    ):
        status, reply_body = http(method, f"{origin}{path}", body=body)
        if status != 401 or not openai_error(reply_body, "invalid_api_key"):
            fail(f"{method} {path} without a key answered {status} {reply_body}")

    # Unknown model -> 404 model_not_found.
    try:
        plain(client, "no-such-model")
        fail("an unknown model was served")
    except openai.NotFoundError as error:
        status, reply_body = http(
            "POST",
            f"{origin}/v1/chat/completions",
            {"Authorization": f"Bearer {key}"},
            {"model": "no-such-model", "messages": MESSAGES},
        )
        if status != 404 or not openai_error(reply_body, "model_not_found"):
            fail(f"unknown model: {error} / {status} {reply_body}")

    # Engine admin paths are not reachable through the gateway, even with a key.
    blocked = {}
    for path in (
        "/metrics",
        "/slots",
        "/props",
        "/api/tags",
        "/v1/fast/metrics",
        "/v1/fast/slots",
        "/health/../metrics",
    ):
        status, reply_body = http("GET", f"{origin}{path}", {"Authorization": f"Bearer {key}"})
        if status != 404 or not openai_error(reply_body, "unknown_url"):
            fail(f"{path} answered {status} {reply_body}")
        blocked[path] = status
    return {"models": listed, "routed": routed, "by_path": reply.model, "blocked": blocked}


def burst(origin: str, key: str, path: str, model: str, count: int) -> dict:
    answered, statuses = [], []
    for _ in range(count):
        status, body = http(
            "POST",
            f"{origin}{path}chat/completions",
            {"Authorization": f"Bearer {key}"},
            {"model": model, "messages": MESSAGES, "max_tokens": 2},
        )
        statuses.append(status)
        answered.append(body.get("model") if status == 200 else body.get("error", {}).get("code"))
    return {"statuses": statuses, "answered": answered}


def main(argv: list[str]) -> int:
    if argv[1] == "check":
        print(json.dumps(check(argv[2], argv[3], argv[4])))
    elif argv[1] == "burst":
        print(json.dumps(burst(argv[2], argv[3], argv[4], argv[5], int(argv[6]))))
    else:
        fail(f"unknown command {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

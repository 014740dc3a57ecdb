"""``python -m provision.lab.chat [INVENTORY] [--stream]``: one chat completion through the lab's
gateway with the OpenAI Python SDK, as any client would send it (base_url = the gateway's /v1,
the lab's API key). The quick start ends with it.

The tiny test model has random weights: its answer is gibberish; the point is the path (client,
gateway, key check, routing by the model field, llama.cpp on an engine node, and back).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from provision.errors import InvalidInput, ProvisionError

ROOT = Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provision.lab.chat", description=__doc__.splitlines()[0])
    parser.add_argument("inventory", nargs="?", type=Path, default=ROOT / "inventory" / "lab.yml")
    parser.add_argument("--model", default="tiny-llama-test")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plain", action="store_true", help="a plain completion (the default)")
    mode.add_argument("--stream", action="store_true", help="a streamed completion")
    mode.add_argument("--wrong-key", action="store_true", help="check: a wrong key gets 401")
    mode.add_argument("--admin-paths", action="store_true", help="check: engine admin paths are closed")
    args = parser.parse_args(argv)
    try:
        from openai import OpenAI

        from provision.bench import gateway_from_inventory

        base_url, key = gateway_from_inventory(args.inventory)
    except ImportError as exc:
        print(f"error: {exc}; install the lab extra: pip install 'provision[lab]'", file=sys.stderr)
        return 2
    except (InvalidInput, ProvisionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.wrong_key or args.admin_paths:
        return _checks(base_url, key, args.wrong_key)
    client = OpenAI(base_url=base_url, api_key=key or "none", timeout=30, max_retries=0)
    started = time.monotonic()
    messages = [{"role": "user", "content": "Say hello to the fleet."}]
    try:
        if args.stream:
            text = ""
            for chunk in client.chat.completions.create(
                model=args.model, messages=messages, max_tokens=16, stream=True
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
            model = args.model
        else:
            answer = client.chat.completions.create(model=args.model, messages=messages, max_tokens=16)
            text, model = answer.choices[0].message.content or "", answer.model
    except Exception as exc:  # the SDK's errors all say what happened; no traceback for users
        reason = f"{type(exc).__name__}: {exc}"
        print(f"error: the gateway at {base_url} did not answer: {reason}", file=sys.stderr)
        return 1
    print(f"gateway {base_url} answered in {time.monotonic() - started:.2f} s (model {model}):")
    print(f"  {text!r}  (random weights: gibberish is expected)")
    return 0


def _checks(base_url: str, key: str | None, wrong_key: bool) -> int:
    """The gateway's guard rails, as a client meets them."""
    import httpx
    from openai import AuthenticationError, OpenAI

    if wrong_key:
        client = OpenAI(base_url=base_url, api_key="sk-wrong-key-0000000000", timeout=30, max_retries=0)
        try:
            client.models.list()
        except AuthenticationError as exc:
            print(f"a wrong key: {exc.status_code}, as it should be")
            return 0
        print("error: the gateway accepted a wrong key", file=sys.stderr)
        return 1
    root = base_url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    opened = []
    for path in ("/metrics", "/slots", "/props", "/v1/metrics", "/api/tags"):
        status = httpx.get(root + path, headers=headers, timeout=10).status_code
        if status not in (401, 403, 404):
            opened.append(f"{path}: {status}")
    if opened:
        print(f"error: engine admin paths reachable through the gateway: {opened}", file=sys.stderr)
        return 1
    print("engine admin paths are closed at the gateway")
    return 0


if __name__ == "__main__":
    sys.exit(main())

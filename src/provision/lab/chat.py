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
    parser.add_argument("--stream", action="store_true")
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


if __name__ == "__main__":
    sys.exit(main())

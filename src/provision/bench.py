"""`provision bench`: load an OpenAI-compatible endpoint at rising concurrency and measure it.

For each concurrency level c, `requests` streaming chat completions run with at most c in
flight. Per request: TTFT (request sent -> first content token), end-to-end latency, output
tokens (the server's `usage` from the final chunk when it sends one, else one per content
chunk) and the error, if any. Per level: total output tokens/s (all output tokens / the
level's wall time), per-request decode tokens/s, TTFT and latency p50/p95, errors. Every
request has a timeout and every level a wall-time cap, so a run always ends by itself.

The target is a base URL (``http://HOST:PORT/v1``) or an inventory, whose gateway host
(group ``gateway``) is resolved with Ansible's own inventory and templating. The API key
comes from an environment variable or the inventory's ``gateway_api_keys``; it is sent as a
header and never printed, logged or written.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provision.connection import first_line
from provision.errors import EXIT_FAILED, EXIT_OK, InvalidInput, Problem, ProvisionError

DEFAULT_CONCURRENCY = "1,4,8,16,32,64"
DEFAULT_API_KEY_ENV = "PROVISION_API_KEY"
DEFAULT_PROMPT = (
    "Explain in a few sentences why an on-premises LLM server batches concurrent requests, "
    "and what that does to the time to the first token."
)
MAX_CONCURRENCY = 1024
GATEWAY_GROUP = "gateway"
INSTALL_FIX = "install the bench extra: pip install 'provision[bench]'"


class TargetFailed(ProvisionError):
    """The target did not answer as an OpenAI-compatible server should. Exit code 1."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message + (f"\n  fix: {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, str]:
        return {"message": self.message, "fix": self.fix}


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    concurrency: tuple[int, ...]
    requests: int | None = None
    max_tokens: int = 128
    prompt: str = DEFAULT_PROMPT
    model: str | None = None
    timeout_s: float = 120.0
    duration_cap_s: float = 300.0

    def requests_at(self, concurrency: int) -> int:
        """Requests sent at one level: --requests, else max(4 x concurrency, 16)."""
        return self.requests if self.requests is not None else max(4 * concurrency, 16)

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": list(self.concurrency),
            "requests": self.requests,
            "requests_per_level": [self.requests_at(c) for c in self.concurrency],
            "max_tokens": self.max_tokens,
            "prompt_chars": len(self.prompt),
            "timeout_s": self.timeout_s,
            "duration_cap_s": self.duration_cap_s,
        }


def parse_concurrency(text: str) -> tuple[int, ...]:
    """'1,4,8' -> (1, 4, 8): positive integers, no duplicates, kept in the order given."""
    fix = "a comma-separated list of positive integers, e.g. --concurrency 1,4,8,16"
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise InvalidInput([Problem("--concurrency", "", f"'{text}' is not a list of levels", fix)])
    levels: list[int] = []
    for part in parts:
        if not part.isdigit() or int(part) < 1:
            raise InvalidInput([Problem("--concurrency", "", f"'{part}' is not a positive integer", fix)])
        value = int(part)
        if value > MAX_CONCURRENCY:
            raise InvalidInput(
                [Problem("--concurrency", "", f"{value} requests in flight is above {MAX_CONCURRENCY}", fix)]
            )
        if value in levels:
            raise InvalidInput([Problem("--concurrency", "", f"level {value} is given twice", fix)])
        levels.append(value)
    return tuple(levels)


def make_settings(
    concurrency: str = DEFAULT_CONCURRENCY,
    requests: int | None = None,
    max_tokens: int = 128,
    prompt: str | None = None,
    model: str | None = None,
    timeout_s: float = 120.0,
    duration_cap_s: float = 300.0,
) -> Settings:
    """Validate every option; all problems at once (InvalidInput, exit 2)."""
    problems: list[Problem] = []
    levels: tuple[int, ...] = ()
    try:
        levels = parse_concurrency(concurrency)
    except InvalidInput as exc:
        problems += exc.problems
    if requests is not None and requests < 1:
        problems.append(Problem("--requests", "", f"{requests} is not a positive number", "use 1 or more"))
    if not 1 <= max_tokens <= 1_000_000:
        problems.append(Problem("--max-tokens", "", f"{max_tokens} is out of range", "use 1 to 1000000"))
    if prompt is not None and not prompt.strip():
        problems.append(Problem("--prompt", "", "the prompt is empty", "give some text, or leave it out"))
    if model is not None and not model.strip():
        problems.append(Problem("--model", "", "the model name is empty", "leave it out: /v1/models decides"))
    for name, value in (("--timeout", timeout_s), ("--duration-cap", duration_cap_s)):
        if not (math.isfinite(value) and value > 0):
            problems.append(Problem(name, "", f"{value} is not a positive number of seconds", "e.g. 60"))
    if problems:
        raise InvalidInput(problems)
    return Settings(
        concurrency=levels,
        requests=requests,
        max_tokens=max_tokens,
        prompt=prompt if prompt is not None else DEFAULT_PROMPT,
        model=model,
        timeout_s=timeout_s,
        duration_cap_s=duration_cap_s,
    )


# --- target ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    base_url: str
    source: str  # "url" or the inventory's path
    api_key: str | None = field(default=None, repr=False)
    key_source: str = "none"  # where the key came from; never the key
    key_env: str = DEFAULT_API_KEY_ENV  # the variable a key is read from

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "source": self.source,
            "api_key_sent": self.api_key is not None,
            "api_key_source": self.key_source,
        }


def looks_like_url(text: str) -> bool:
    return "://" in text


def parse_base_url(text: str) -> str:
    """Validate an OpenAI base URL; no path means /v1. Returns it without a trailing '/'."""
    fix = "give the OpenAI-compatible base URL, e.g. http://10.0.0.5:8080/v1, or an inventory file"
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidInput([Problem("TARGET", "", f"'{text}' is not a valid URL ({exc})", fix)]) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput([Problem("TARGET", "", f"'{text}': the scheme must be http or https", fix)])
    if not parts.hostname:
        raise InvalidInput([Problem("TARGET", "", f"'{text}' names no host", fix)])
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            [
                Problem(
                    "TARGET",
                    "",
                    "the URL carries credentials",
                    f"remove them from the URL and put the API key in ${DEFAULT_API_KEY_ENV}",
                )
            ]
        )
    if parts.query or parts.fragment:
        raise InvalidInput([Problem("TARGET", "", f"'{text}' has a query or fragment", fix)])
    path = parts.path.rstrip("/") or "/v1"
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{path}"


def _host_for_url(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def gateway_from_inventory(path: Path) -> tuple[str, str | None]:
    """(base URL, first gateway API key or None) of the inventory's gateway host.

    Resolved with Ansible's InventoryManager, VariableManager and Templar, so lookups and
    Jinja in inventory variables (inventory/lab.yml reads its hosts' addresses from the lab
    state dir) give what ansible-playbook would see.
    """
    from ansible.errors import AnsibleError

    from provision.connection import AnsibleInventory

    where = str(path)
    ansible_inventory = AnsibleInventory(path)
    hosts = ansible_inventory.hosts(GATEWAY_GROUP)
    if not hosts:
        raise InvalidInput(
            [
                Problem(
                    where,
                    GATEWAY_GROUP,
                    f"no host in group '{GATEWAY_GROUP}'",
                    "add the gateway host to group 'gateway', or pass the base URL (http://HOST:PORT/v1)",
                )
            ]
        )
    name = hosts[0]
    get = ansible_inventory.resolver(name)

    def resolve(var: str, default: Any) -> Any:
        try:
            return get(var, default)
        except AnsibleError as exc:
            raise InvalidInput(
                [
                    Problem(
                        where,
                        f"{name}.{var}",
                        f"cannot resolve it: {first_line(exc)}",
                        "make the variable resolvable (for the lab: `provision lab up` first), "
                        "or pass the base URL (http://HOST:PORT/v1)",
                    )
                ]
            ) from None

    address = str(resolve("ansible_host", name))
    gateway = resolve("provision_gateway", {}) or {}
    if not isinstance(gateway, dict):
        raise InvalidInput([Problem(where, "provision_gateway", "is not a mapping", "see README.md")])
    port = gateway.get("port", 80)
    scheme = "https" if gateway.get("tls") else "http"
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise InvalidInput(
            [Problem(where, "provision_gateway.port", f"'{port}' is not a port", "use 1-65535")]
        ) from None
    default_port = {"http": 80, "https": 443}[scheme]
    netloc = _host_for_url(address) + ("" if port == default_port else f":{port}")
    key: str | None = None
    try:
        keys = resolve("gateway_api_keys", [])
    except InvalidInput:
        keys = []  # e.g. vaulted without a password: the env variable is the way then
    if isinstance(keys, list) and keys and isinstance(keys[0], dict) and keys[0].get("key"):
        key = str(keys[0]["key"])
    return f"{scheme}://{netloc}/v1", key


def resolve_target(text: str, api_key_env: str = DEFAULT_API_KEY_ENV) -> Target:
    """TARGET (URL or inventory path) and the API key, from the environment or the inventory."""
    if not api_key_env or not api_key_env.replace("_", "").isalnum():
        raise InvalidInput(
            [
                Problem(
                    "--api-key-env", "", f"'{api_key_env}' is not a variable name", "e.g. PROVISION_API_KEY"
                )
            ]
        )
    env_key = os.environ.get(api_key_env) or None
    if looks_like_url(text):
        base = parse_base_url(text)
        return Target(base, "url", env_key, f"env {api_key_env}" if env_key else "none", api_key_env)
    path = Path(text)
    if not path.is_file():
        raise InvalidInput(
            [
                Problem(
                    "TARGET",
                    "",
                    f"'{text}' is neither a URL nor an inventory file",
                    "give http://HOST:PORT/v1 (the gateway or one engine) or an inventory file",
                )
            ]
        )
    base, inv_key = gateway_from_inventory(path)
    if env_key:
        return Target(base, str(path), env_key, f"env {api_key_env}", api_key_env)
    if inv_key:
        return Target(base, str(path), inv_key, "inventory gateway_api_keys[0]", api_key_env)
    return Target(base, str(path), None, "none", api_key_env)


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default)."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not in 0..100")
    data = sorted(values)
    if not data:
        return None
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


@dataclass
class Sample:
    """One request as measured. Times in seconds from the moment it was sent."""

    ok: bool
    latency_s: float
    ttft_s: float | None = None
    output_tokens: int = 0
    usage_reported: bool = False
    error: str | None = None
    resent: int = 0  # times sent again: the server closed a kept-alive connection before answering

    @property
    def decode_tps(self) -> float | None:
        """Tokens/s after the first token: (tokens - 1) / (latency - TTFT)."""
        if not self.ok or self.ttft_s is None or self.output_tokens < 2:
            return None
        span = self.latency_s - self.ttft_s
        return (self.output_tokens - 1) / span if span > 0 else None


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Level:
    concurrency: int
    planned: int
    samples: list[Sample]
    wall_s: float
    cut: int = 0  # requests not finished (or not sent) when the level's wall-time cap was reached

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    @property
    def resent(self) -> int:
        return sum(s.resent for s in self.samples)

    @property
    def error_kinds(self) -> dict[str, int]:
        return dict(Counter(s.error or "error" for s in self.samples if not s.ok))

    @property
    def output_tokens(self) -> int:
        return sum(s.output_tokens for s in self.ok)

    @property
    def total_tps(self) -> float | None:
        return self.output_tokens / self.wall_s if self.wall_s > 0 and self.ok else None

    @property
    def token_count(self) -> str:
        """'usage' (server's count), 'chunks' (content chunks counted) or 'mixed'."""
        reported = {s.usage_reported for s in self.ok}
        if reported == {True}:
            return "usage"
        return "chunks" if reported == {False} else "mixed"

    def stat(self, what: str, q: float) -> float | None:
        if what == "ttft":
            values = [s.ttft_s for s in self.ok if s.ttft_s is not None]
        elif what == "latency":
            values = [s.latency_s for s in self.ok]
        else:
            values = [v for v in (s.decode_tps for s in self.ok) if v is not None]
        return percentile(values, q)

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.planned,
            "completed": len(self.ok),
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "resent": self.resent,
            "cut_by_duration_cap": self.cut,
            "wall_s": _rounded(self.wall_s),
            "output_tokens": self.output_tokens,
            "token_count": self.token_count if self.ok else None,
            "total_tokens_per_s": _rounded(self.total_tps, 2),
            "request_tokens_per_s_p50": _rounded(self.stat("tps", 50), 2),
            "ttft_s_p50": _rounded(self.stat("ttft", 50)),
            "ttft_s_p95": _rounded(self.stat("ttft", 95)),
            "latency_s_p50": _rounded(self.stat("latency", 50)),
            "latency_s_p95": _rounded(self.stat("latency", 95)),
        }


@dataclass
class BenchResult:
    target: Target
    model: str
    settings: Settings
    levels: list[Level] = field(default_factory=list)
    stopped_early: str | None = None
    usage_requested: bool = True  # False: the server rejected stream_options, tokens are counted

    @property
    def ok(self) -> bool:
        return bool(self.levels) and not self.stopped_early and all(lv.errors == 0 for lv in self.levels)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target.as_dict(),
            "model": self.model,
            "settings": self.settings.as_dict(),
            "levels": [lv.as_dict() for lv in self.levels],
            "stopped_early": self.stopped_early,
            "usage_requested": self.usage_requested,
        }


# --- load ------------------------------------------------------------------------------------


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise TargetFailed("provision bench needs the httpx package", INSTALL_FIX) from None
    return httpx


def _headers(target: Target) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if target.api_key is not None:
        headers["Authorization"] = f"Bearer {target.api_key}"
    return headers


def _error_message(response: Any) -> str:
    """The OpenAI-style error message of a response, short; never headers."""
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, AttributeError):
        message = None
    text = str(message or response.text or "").strip().replace("\n", " ")
    return text[:200]


def _status_failure(target: Target, status: int, message: str, what: str) -> TargetFailed:
    if target.api_key:
        message = message.replace(target.api_key, "***")  # servers that echo the key
    said = f": {message}" if message else ""
    if status in (401, 403):
        if target.api_key is None:
            fix = (
                f"the server wants an API key: export {target.key_env}=<key> "
                "(or name another variable with --api-key-env)"
            )
        else:
            fix = (
                f"the key from {target.key_source} is not accepted: set a key the server knows "
                "(gateway: one of gateway_api_keys; llama-server: its --api-key)"
            )
        return TargetFailed(f"{target.base_url} refused the API key (HTTP {status}{said})", fix)
    if status == 404:
        return TargetFailed(
            f"{what} answered HTTP 404{said}",
            "the base URL must be the OpenAI API root, ending in /v1 (e.g. http://HOST:PORT/v1); "
            "with --model, a model the server serves (GET /v1/models)",
        )
    return TargetFailed(
        f"{what} answered HTTP {status}{said}", "look at the server's log; is the model loaded?"
    )


def _transport_failure(target: Target, exc: BaseException) -> TargetFailed:
    if "Timeout" in type(exc).__name__:
        return TargetFailed(
            f"{target.base_url} did not answer in time ({type(exc).__name__})",
            "check the server's log (is the model still loading?), or raise --timeout",
        )
    return TargetFailed(
        f"cannot reach {target.base_url}: {type(exc).__name__}: {first_line(exc)}",
        "check that the server runs and listens on that address and port, and that no firewall "
        "is in the way (the gateway: `provision up INVENTORY --only gateway`)",
    )


async def discover_model(client: Any, target: Target) -> str:
    """The first model id of GET /v1/models."""
    httpx = _import_httpx()
    url = f"{target.base_url}/models"
    try:
        response = await client.get(url, headers=_headers(target))
    except httpx.HTTPError as exc:
        raise _transport_failure(target, exc) from None
    if response.status_code != 200:
        raise _status_failure(target, response.status_code, _error_message(response), f"GET {url}")
    try:
        ids = [m["id"] for m in response.json()["data"] if isinstance(m, dict) and m.get("id")]
    except (ValueError, KeyError, TypeError):
        ids = []
    if not ids:
        raise TargetFailed(f"GET {url} lists no model", "pass the model name with --model")
    return str(ids[0])


# A pooled keep-alive connection the server has just closed fails the next request on it before
# any response byte ("Server disconnected without sending a response"): the server never saw
# that request. Clients resend it on a new connection (the OpenAI SDKs retry connection errors
# twice), so the bench does too, at most RESEND_LIMIT times, counting it in the level's "resent".
# Latency still runs from the first attempt.
RESEND_LIMIT = 2


async def preflight(client: Any, target: Target, model: str) -> bool:
    """One unmeasured 1-token streaming chat completion: the address, the key, the model and
    the API work. Returns whether the server takes `stream_options` (some reject it: 400/422)."""
    httpx = _import_httpx()
    url = f"{target.base_url}/chat/completions"
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for with_options in (True, False):
        if not with_options:
            body.pop("stream_options")
        for attempt in range(RESEND_LIMIT + 1):
            try:
                async with client.stream("POST", url, headers=_headers(target), json=body) as response:
                    await response.aread()
                break
            except httpx.RemoteProtocolError as exc:  # a closed keep-alive connection: resend
                if attempt == RESEND_LIMIT:
                    raise _transport_failure(target, exc) from None
            except httpx.HTTPError as exc:
                raise _transport_failure(target, exc) from None
        if response.status_code == 200:
            return with_options
        if not (with_options and response.status_code in (400, 422)):
            break
    raise _status_failure(target, response.status_code, _error_message(response), f"POST {url}")


def _chunk_tokens(chunk: dict[str, Any]) -> int:
    """Content-bearing choices in one chunk (content or reasoning text)."""
    count = 0
    for choice in chunk.get("choices") or []:
        delta = (choice.get("delta") or {}) if isinstance(choice, dict) else {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"):
            count += 1
    return count


async def one_request(
    client: Any, url: str, headers: dict[str, str], body: dict[str, Any], timeout_s: float
) -> Sample:
    """Send one streaming chat completion and measure it. Never raises for the server's faults."""
    httpx = _import_httpx()
    start = time.perf_counter()
    ttft: float | None = None
    chunks = 0
    usage_tokens: int | None = None
    done = False
    resent = 0

    def failed(error: str) -> Sample:
        return Sample(False, time.perf_counter() - start, ttft, 0, False, error, resent)

    try:
        async with asyncio.timeout(timeout_s):
            while True:
                answered = False
                try:
                    async with client.stream("POST", url, headers=headers, json=body) as response:
                        answered = True
                        if response.status_code != 200:
                            await response.aread()
                            return failed(f"HTTP {response.status_code}")
                        async for line in response.aiter_lines():
                            if not line.startswith("data:"):
                                continue
                            data = line[5:].strip()
                            if data == "[DONE]":
                                done = True
                                break
                            try:
                                chunk = json.loads(data)
                            except ValueError:
                                return failed("bad SSE data")
                            if not isinstance(chunk, dict):
                                return failed("bad SSE data")
                            if chunk.get("error"):
                                return failed("error in stream")
                            found = _chunk_tokens(chunk)
                            if found and ttft is None:
                                ttft = time.perf_counter() - start
                            chunks += found
                            usage = chunk.get("usage")
                            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                                usage_tokens = usage["completion_tokens"]
                    break
                except httpx.RemoteProtocolError:
                    if answered or resent >= RESEND_LIMIT:
                        raise
                    resent += 1
    except TimeoutError:
        return failed(f"timeout ({timeout_s:g}s)")
    except httpx.HTTPError as exc:
        return failed(type(exc).__name__)
    if not done:
        return failed("stream ended early")
    latency = time.perf_counter() - start
    if usage_tokens is not None:
        return Sample(True, latency, ttft, usage_tokens, True, resent=resent)
    return Sample(True, latency, ttft, chunks, False, resent=resent)


async def run_level(
    client: Any, target: Target, model: str, settings: Settings, concurrency: int, usage: bool = True
) -> Level:
    """`requests_at(concurrency)` requests, at most `concurrency` in flight, within the cap."""
    planned = settings.requests_at(concurrency)
    url = f"{target.base_url}/chat/completions"
    headers = _headers(target)
    body = {
        "model": model,
        "messages": [{"role": "user", "content": settings.prompt}],
        "max_tokens": settings.max_tokens,
        "stream": True,
    }
    if usage:
        body["stream_options"] = {"include_usage": True}
    gate = asyncio.Semaphore(concurrency)
    samples: list[Sample] = []
    last_end = 0.0
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal last_end
        async with gate:
            sample = await one_request(client, url, headers, body, settings.timeout_s)
            samples.append(sample)
            last_end = time.perf_counter()

    tasks = [asyncio.create_task(worker()) for _ in range(planned)]
    _done, pending = await asyncio.wait(tasks, timeout=settings.duration_cap_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        wall = settings.duration_cap_s
    else:
        wall = last_end - start
    return Level(concurrency, planned, samples, wall, cut=planned - len(samples))


def client_limits(settings: Settings) -> tuple[Any, Any]:
    httpx = _import_httpx()
    most = max(settings.concurrency)
    limits = httpx.Limits(max_connections=most + 2, max_keepalive_connections=most + 2)
    timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
    return limits, timeout


async def run_bench(
    target: Target, settings: Settings, on_level: Callable[[Level], None] | None = None
) -> BenchResult:
    """Preflight, then every level in order. Stops when a whole level failed."""
    httpx = _import_httpx()
    limits, timeout = client_limits(settings)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        try:
            async with asyncio.timeout(settings.timeout_s):
                model = settings.model or await discover_model(client, target)
            async with asyncio.timeout(settings.timeout_s):
                usage = await preflight(client, target, model)
        except TimeoutError:
            raise TargetFailed(
                f"{target.base_url} did not answer within {settings.timeout_s:g}s",
                "check the server's log (is the model still loading?), or raise --timeout",
            ) from None
        result = BenchResult(target, model, settings, usage_requested=usage)
        for concurrency in settings.concurrency:
            level = await run_level(client, target, model, settings, concurrency, usage)
            result.levels.append(level)
            if on_level:
                on_level(level)
            if level.samples and not level.ok:
                kinds = ", ".join(f"{k} x{n}" for k, n in level.error_kinds.items())
                result.stopped_early = f"every request at concurrency {concurrency} failed ({kinds})"
                break
    return result


def bench(target: Target, settings: Settings, on_level: Callable[[Level], None] | None = None) -> BenchResult:
    return asyncio.run(run_bench(target, settings, on_level))


# --- output ----------------------------------------------------------------------------------


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def level_table(result: BenchResult) -> Table:
    table = Table(title=escape(f"{result.model} @ {result.target.host}"), title_justify="left")
    for col in (
        "concurrency",
        "requests",
        "errors",
        "total t/s",
        "t/s per request",
        "TTFT p50",
        "TTFT p95",
        "latency p50",
        "latency p95",
    ):
        table.add_column(col, justify="right")
    for lv in result.levels:
        done = f"{len(lv.samples)}/{lv.planned}" if lv.cut else str(lv.planned)
        table.add_row(
            str(lv.concurrency),
            done,
            f"[red]{lv.errors}[/]" if lv.errors else "0",
            _rate(lv.total_tps),
            _rate(lv.stat("tps", 50)),
            _secs(lv.stat("ttft", 50)),
            _secs(lv.stat("ttft", 95)),
            _secs(lv.stat("latency", 50)),
            _secs(lv.stat("latency", 95)),
        )
    return table


def print_result(console: Console, result: BenchResult) -> None:
    console.print(level_table(result))
    counts = {lv.token_count for lv in result.levels if lv.ok}
    how = {
        "usage": "the server's usage (stream_options.include_usage)",
        "chunks": "content chunks counted (the server sent no usage; about one token per chunk)",
        "mixed": "the server's usage where it sent one, else content chunks",
    }
    for count in sorted(counts):
        console.print(f"  output tokens: {how[count]}")
    s = result.settings
    console.print(
        f"  max_tokens {s.max_tokens}, timeout {s.timeout_s:g}s per request, "
        f"cap {s.duration_cap_s:g}s per level; t/s per request is the p50 decode rate after the first token"
    )
    for lv in result.levels:
        if lv.errors:
            kinds = ", ".join(f"{k} x{n}" for k, n in lv.error_kinds.items())
            console.print(f"  [red]errors[/] at concurrency {lv.concurrency}: {escape(kinds)}")
        if lv.cut:
            console.print(
                f"  [yellow]cut[/] at concurrency {lv.concurrency}: {lv.cut} request(s) unfinished after the "
                f"{s.duration_cap_s:g}s cap (raise --duration-cap or lower --requests)"
            )
    if result.stopped_early:
        console.print(f"  [bold red]stopped:[/] {escape(result.stopped_early)}")


# --- the command -----------------------------------------------------------------------------


def bench_command(
    target_text: str,
    settings_args: dict[str, Any],
    api_key_env: str,
    as_json: bool,
    chart: Path | None,
    out: Console,
    err: Console,
) -> int:
    """`provision bench`: validate, run, print (table or JSON), chart. Returns the exit code."""

    def emit(data: dict[str, Any]) -> None:
        out.file.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    try:
        settings = make_settings(**settings_args)
        if chart is not None and chart.suffix.lower() != ".png":
            raise InvalidInput(
                [Problem("--chart", "", f"'{chart}' is not a .png file", "e.g. --chart bench.png")]
            )
        target = resolve_target(target_text, api_key_env)
    except InvalidInput as exc:
        if as_json:
            emit({"ok": False, "errors": [p.as_dict() for p in exc.problems]})
        else:
            from provision.report import print_problems

            print_problems(err, exc.problems)
        return exc.exit_code

    def progress(level: Level) -> None:
        if not as_json:
            done = f"{len(level.ok)}/{level.planned} ok, {level.errors} error(s)"
            err.print(
                f"concurrency {level.concurrency}: {done}, "
                f"{_rate(level.total_tps)} t/s total, {level.wall_s:.1f}s",
                highlight=False,
            )

    try:
        result = bench(target, settings, progress)
    except TargetFailed as exc:
        if as_json:
            emit({"ok": False, "target": target.as_dict(), "error": exc.as_dict()})
        else:
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
            if exc.fix:
                err.print(f"  fix: {escape(exc.fix)}", highlight=False)
        return exc.exit_code

    data = result.as_dict()
    if chart is not None:
        from provision.benchchart import ChartUnavailable, write_chart

        try:
            write_chart(result, chart)
            data["chart"] = {"path": str(chart), "written": True}
            if not as_json:
                err.print(f"chart written to {escape(str(chart))}", highlight=False)
        except ChartUnavailable as exc:
            data["chart"] = {"path": str(chart), "written": False, "skipped": str(exc)}
            err.print(f"[yellow]chart skipped:[/] {escape(str(exc))}", highlight=False)
    if as_json:
        emit(data)
    else:
        print_result(out, result)
    return EXIT_OK if result.ok else EXIT_FAILED

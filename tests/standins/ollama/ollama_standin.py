#!/usr/bin/python3
"""STAND-IN for the `ollama` binary (NOT Ollama): tests only.

The real binary cannot be downloaded here, so `tests/standins/build.py ollama` packs this
program as `bin/ollama` of a release-shaped archive `ollama-linux-amd64.tgz`, and the
`ollama` role installs it exactly like the real one. It implements what the role and the
engine contract use, with stdlib only:

  ollama serve                 reads OLLAMA_HOST, OLLAMA_MODELS, OLLAMA_* like the real server
                               (envconfig), records argv + environment, serves the API below
  ollama -v | --version        "ollama version is X"
  ollama list | ps             tables like the real CLI
  ollama pull NAME             POST /api/pull (recorded in $OLLAMA_MODELS/.standin/pulls.jsonl)
  ollama create NAME -f FILE   parses the Modelfile, POST /api/create (recorded, raw Modelfile
                               included, in $OLLAMA_MODELS/.standin/creates.jsonl)
  ollama show NAME [--modelfile]
  ollama rm NAME...            DELETE /api/delete (recorded in $OLLAMA_MODELS/.standin/deletes.jsonl)

HTTP: HEAD/GET / ("Ollama is running"), /api/version, /api/tags, /api/ps, /api/pull,
/api/create, DELETE /api/delete (200, empty body; 404 for an unknown model),
/api/show, /api/generate, /api/chat, /v1/models, /v1/chat/completions,
/v1/completions, and GET /standin/env (argv, environment, what the server parsed).

`/api/ps` reports size_vram from OLLAMA_STANDIN_VRAM: "full" (size_vram == size, on the GPU),
"partial" (half), "none" (0: CPU, the default, as on a host without a GPU).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = "@VERSION@"  # replaced by build.py with the version the archive stands in for
STANDIN = True


# --------------------------------------------------------------------------- environment


def _clean(name: str) -> str:
    return os.environ.get(name, "").strip().strip("\"'").strip()


def parse_host(value: str) -> tuple[str, str, int]:
    """OLLAMA_HOST as envconfig.Host() reads it: [scheme://]host[:port], default 127.0.0.1:11434."""
    scheme, sep, hostport = value.partition("://")
    default_port = 11434
    if not sep:
        scheme, hostport = "http", value
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport = hostport.rstrip("/")
    host, port = "127.0.0.1", default_port
    if hostport:
        m = re.fullmatch(r"\[?([^\]]*?)\]?(?::(\d+))?", hostport)
        if m and m.group(1):
            host = m.group(1)
        if m and m.group(2):
            port = int(m.group(2))
    return scheme, host, port


def parse_duration(value: str, default: float = 300.0) -> float:
    """OLLAMA_KEEP_ALIVE / keep_alive: seconds as a number, or a Go duration; negative = forever."""
    value = str(value).strip()
    if value == "":
        return default
    try:
        seconds = float(int(value))
    except ValueError:
        total = 0.0
        parts = re.findall(r"(-?\d+(?:\.\d+)?)(h|m|s|ms)", value)
        if not parts or "".join(a + b for a, b in parts) != value.lstrip("+"):
            return default
        for number, unit in parts:
            total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        seconds = total
    return float("inf") if seconds < 0 else seconds


def models_dir() -> Path:
    if "OLLAMA_MODELS" in os.environ:
        return Path(os.environ["OLLAMA_MODELS"])
    return Path.home() / ".ollama" / "models"


def full_name(name: str) -> str:
    name = name.strip()
    if "/" not in name.split(":")[0] and ":" not in name:
        return f"{name}:latest"
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def now_iso(offset_s: float = 0.0) -> str:
    if offset_s == float("inf"):
        return "2318-08-09T00:00:00Z"
    t = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- Modelfile


def parse_modelfile(text: str) -> dict[str, Any]:
    """The Modelfile commands the role writes: FROM, SYSTEM, TEMPLATE, PARAMETER (+ LICENSE)."""
    out: dict[str, Any] = {"parameters": {}}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command, _, rest = line.strip().partition(" ")
        command = command.upper()
        rest = rest.strip()
        if rest.startswith('"""'):
            body = rest[3:]
            if '"""' in body:
                value = body[: body.index('"""')]
            else:
                chunks = [body]
                while i < len(lines) and '"""' not in lines[i]:
                    chunks.append(lines[i])
                    i += 1
                if i >= len(lines):
                    raise ValueError(f'unterminated """ in {command}')
                chunks.append(lines[i][: lines[i].index('"""')])
                i += 1
                value = "\n".join(chunks)
        else:
            value = rest
        if command == "FROM":
            out["from"] = value
        elif command in ("SYSTEM", "TEMPLATE", "LICENSE", "ADAPTER", "MESSAGE"):
            out[command.lower()] = value
        elif command == "PARAMETER":
            key, _, raw = value.partition(" ")
            raw = raw.strip()
            if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
                raw = json.loads(raw)
            out["parameters"].setdefault(key, []).append(raw)
        else:
            raise ValueError(f"unknown Modelfile command {command!r}")
    if "from" not in out:
        raise ValueError("no FROM line in the Modelfile")
    return out


# --------------------------------------------------------------------------- server state


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / ".standin"
        self.lock = threading.Lock()
        self.loaded: dict[str, float] = {}  # name -> expiry (monotonic seconds)
        self.meta.mkdir(parents=True, exist_ok=True)
        (root / "blobs").mkdir(exist_ok=True)
        (root / "manifests").mkdir(exist_ok=True)
        self.state_file = self.meta / "state.json"
        if not self.state_file.exists():
            self._write({"models": {}})

    def _read(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        tmp.replace(self.state_file)

    def record(self, kind: str, entry: dict[str, Any]) -> None:
        entry = {"time": now_iso(), **entry}
        with (self.meta / f"{kind}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def models(self) -> dict[str, Any]:
        with self.lock:
            return self._read()["models"]

    def get(self, name: str) -> dict[str, Any] | None:
        return self.models().get(full_name(name))

    def put(self, name: str, model: dict[str, Any]) -> None:
        with self.lock:
            data = self._read()
            data["models"][full_name(name)] = model
            self._write(data)
        repo, _, tag = full_name(name).rpartition(":")
        manifest = self.root / "manifests" / "registry.ollama.ai" / "library" / repo / tag
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"schemaVersion": 2, "standin": True, "digest": model["digest"]}))

    def delete(self, name: str) -> bool:
        with self.lock:
            data = self._read()
            if data["models"].pop(full_name(name), None) is None:
                return False
            self._write(data)
            self.loaded.pop(full_name(name), None)
        repo, _, tag = full_name(name).rpartition(":")
        (self.root / "manifests" / "registry.ollama.ai" / "library" / repo / tag).unlink(missing_ok=True)
        return True


def vram_for(size: int) -> int:
    mode = os.environ.get("OLLAMA_STANDIN_VRAM", "none").strip().lower()
    return {"full": size, "partial": size // 2}.get(mode, 0)


# --------------------------------------------------------------------------- HTTP server


class Handler(BaseHTTPRequestHandler):
    server_version = "ollama-standin"
    store: Store
    serve_record: dict[str, Any]

    def log_message(self, fmt: str, *args: Any) -> None:
        sys.stderr.write(f"[standin] {self.address_string()} - {fmt % args}\n")

    # helpers
    def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
        data = (
            body
            if isinstance(body, bytes)
            else (body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode())
        )
        self.send_response(code)
        self.send_header(
            "Content-Type", ctype + ("; charset=utf-8" if "json" in ctype or "text" in ctype else "")
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        return json.loads(raw or b"{}")

    def _stream(self, lines: list[dict[str, Any]]) -> None:
        data = b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in lines)
        self._send(200, data, "application/x-ndjson")

    def _sse(self, model: str, text: str, chat: bool) -> None:
        """OpenAI streamed completion (server-sent events), one chunk per character, then [DONE]."""
        obj = "chat.completion.chunk" if chat else "text_completion"
        chunks = []
        for i, char in enumerate(text):
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = {"role": "assistant", "content": char} if i == 0 else {"content": char}
            else:
                choice["text"] = char
            chunks.append(
                {
                    "id": "chatcmpl-standin",
                    "object": obj,
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                }
            )
        last: dict[str, Any] = {
            "index": 0,
            "finish_reason": "length",
            ("delta" if chat else "text"): {} if chat else "",
        }
        chunks.append(
            {
                "id": "chatcmpl-standin",
                "object": obj,
                "created": int(time.time()),
                "model": model,
                "choices": [last],
            }
        )
        data = b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n" for c in chunks)
        self._send(200, data + b"data: [DONE]\n\n", "text/event-stream")

    def _not_found(self, name: str) -> None:
        self._send(404, {"error": f"model '{name}' not found"})

    def _load(self, name: str, keep_alive: Any = None) -> None:
        ka = parse_duration(keep_alive if keep_alive is not None else os.environ.get("OLLAMA_KEEP_ALIVE", ""))
        with self.store.lock:
            if ka == 0:
                self.store.loaded.pop(full_name(name), None)
            else:
                self.store.loaded[full_name(name)] = time.monotonic() + ka

    # routes
    def do_DELETE(self) -> None:
        path = self.path.split("?")[0]
        if path != "/api/delete":
            self._send(405, {"error": "method not allowed"})
            return
        try:
            body = self._body()
        except json.JSONDecodeError as exc:
            self._send(400, {"error": f"invalid JSON: {exc}"})
            return
        name = body.get("model") or body.get("name") or ""
        if not name:
            self._send(400, {"error": "model is required"})
            return
        if not self.store.delete(name):
            self._not_found(name)
            return
        self.store.record("deletes", {"name": full_name(name)})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/":
            self._send(200, "Ollama is running", "text/plain")
        elif path == "/api/version":
            self._send(200, {"version": VERSION})
        elif path == "/api/tags":
            models = [
                {
                    "name": n,
                    "model": n,
                    "modified_at": m["modified_at"],
                    "size": m["size"],
                    "digest": m["digest"],
                    "details": {"format": "gguf", "family": "llama"},
                }
                for n, m in sorted(self.store.models().items())
            ]
            self._send(200, {"models": models})
        elif path == "/api/ps":
            out = []
            now = time.monotonic()
            for name, expiry in sorted(self.store.loaded.items()):
                if expiry < now:
                    continue
                model = self.store.get(name)
                if not model:
                    continue
                out.append(
                    {
                        "name": name,
                        "model": name,
                        "size": model["size"],
                        "digest": model["digest"],
                        "details": {"format": "gguf", "family": "llama"},
                        "expires_at": now_iso(expiry - now),
                        "size_vram": vram_for(model["size"]),
                        "context_length": int(os.environ.get("OLLAMA_CONTEXT_LENGTH") or 4096),
                    }
                )
            self._send(200, {"models": out})
        elif path == "/v1/models":
            data = [
                {"id": n, "object": "model", "created": 0, "owned_by": "library"}
                for n in sorted(self.store.models())
            ]
            self._send(200, {"object": "list", "data": data})
        elif path == "/standin/env":
            self._send(200, self.serve_record)
        else:
            self._send(404, "404 page not found", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        try:
            body = self._body()
        except json.JSONDecodeError as exc:
            self._send(400, {"error": f"invalid JSON: {exc}"})
            return
        if path == "/api/pull":
            name = body.get("model") or body.get("name") or ""
            if not name:
                self._send(400, {"error": "model is required"})
                return
            digest = "sha256:" + hashlib.sha256(("pull:" + full_name(name)).encode()).hexdigest()
            size = 1_000_000 + len(full_name(name)) * 4096
            self.store.put(
                name,
                {
                    "from": None,
                    "modelfile": f"FROM {full_name(name)}\n",
                    "size": size,
                    "digest": digest,
                    "modified_at": now_iso(),
                    "pulled": True,
                },
            )
            self.store.record("pulls", {"name": full_name(name)})
            lines = [
                {"status": "pulling manifest"},
                {"status": f"pulling {digest[7:19]}", "digest": digest, "total": size, "completed": size},
                {"status": "verifying sha256 digest"},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
            if body.get("stream") is False:
                self._send(200, lines[-1])
            else:
                self._stream(lines)
        elif path == "/api/create":
            name = body.get("model") or body.get("name") or ""
            base = body.get("from") or ""
            if not name or not base:
                self._send(400, {"error": "model and from are required"})
                return
            if base.startswith("/") or base.startswith("."):
                size = 2_000_000
            else:
                parent = self.store.get(base)
                if not parent:
                    self._send(404, {"error": f"model '{base}' not found"})
                    return
                size = parent["size"]
            digest = "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            self.store.put(
                name,
                {
                    "from": base,
                    "modelfile": body.get("modelfile", ""),
                    "system": body.get("system"),
                    "template": body.get("template"),
                    "parameters": body.get("parameters") or {},
                    "size": size,
                    "digest": digest,
                    "modified_at": now_iso(),
                    "pulled": False,
                },
            )
            with self.store.lock:
                self.store.loaded.pop(full_name(name), None)  # a rebuilt model is reloaded on use
            self.store.record(
                "creates",
                {
                    "name": full_name(name),
                    "from": base,
                    "system": body.get("system"),
                    "template": body.get("template"),
                    "parameters": body.get("parameters") or {},
                    "modelfile": body.get("modelfile", ""),
                },
            )
            lines = [
                {"status": "using existing layer"},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
            if body.get("stream") is False:
                self._send(200, lines[-1])
            else:
                self._stream(lines)
        elif path == "/api/show":
            name = body.get("model") or body.get("name") or ""
            model = self.store.get(name)
            if not model:
                self._not_found(name)
                return
            params = model.get("parameters") or {}
            self._send(
                200,
                {
                    "modelfile": model.get("modelfile", ""),
                    "parameters": "\n".join(f"{k} {v}" for k, vs in params.items() for v in vs),
                    "template": model.get("template") or "",
                    "system": model.get("system") or "",
                    "details": {"format": "gguf", "family": "llama", "parent_model": model.get("from") or ""},
                    "model_info": {"general.architecture": "llama"},
                    "modified_at": model["modified_at"],
                },
            )
        elif path in ("/api/generate", "/api/chat"):
            name = body.get("model") or ""
            if not self.store.get(name):
                self._not_found(name)
                return
            self._load(name, body.get("keep_alive"))
            has_input = bool(body.get("prompt")) if path == "/api/generate" else bool(body.get("messages"))
            reply: dict[str, Any] = {"model": name, "created_at": now_iso(), "done": True}
            if path == "/api/generate":
                reply["response"] = "안" if has_input else ""
            else:
                reply["message"] = {"role": "assistant", "content": "안" if has_input else ""}
            reply["done_reason"] = "length" if has_input else "load"
            if has_input:
                reply.update(prompt_eval_count=3, eval_count=1)
            if body.get("stream") is False or not has_input:
                self._send(200, reply)
            else:
                self._stream([reply])
        elif path in ("/v1/chat/completions", "/v1/completions"):
            name = body.get("model") or ""
            if not self.store.get(name):
                self._send(404, {"error": {"message": f"model '{name}' not found", "type": "api_error"}})
                return
            self._load(name)
            max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 16
            text = "안" * min(int(max_tokens), 1 if int(max_tokens) <= 1 else 4)
            if body.get("stream"):
                self._sse(name, text, chat=path == "/v1/chat/completions")
                return
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
            if path == "/v1/chat/completions":
                choice["message"] = {"role": "assistant", "content": text}
                obj = "chat.completion"
            else:
                choice["text"] = text
                obj = "text_completion"
            self._send(
                200,
                {
                    "id": "chatcmpl-standin",
                    "object": obj,
                    "created": int(time.time()),
                    "model": name,
                    "system_fingerprint": "fp_ollama",
                    "choices": [choice],
                    "usage": {
                        "prompt_tokens": 3,
                        "completion_tokens": len(text),
                        "total_tokens": 3 + len(text),
                    },
                },
            )
        else:
            self._send(404, "404 page not found", "text/plain")


def serve() -> int:
    scheme, host, port = parse_host(_clean("OLLAMA_HOST"))
    root = models_dir()
    try:
        store = Store(root)
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)  # the real server fails the same way
        return 1
    record = {
        "standin": True,
        "argv": sys.argv,
        "uid": os.getuid(),
        "user": os.environ.get("USER") or os.environ.get("LOGNAME"),
        "environ": dict(os.environ),
        "parsed": {
            "host": host,
            "port": port,
            "scheme": scheme,
            "models": str(root),
            "keep_alive_s": parse_duration(_clean("OLLAMA_KEEP_ALIVE")),
        },
        "version": VERSION,
    }
    (store.meta / "serve.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    Handler.store = store
    Handler.serve_record = record
    bind = "" if host in ("0.0.0.0", "::") else host
    httpd = ThreadingHTTPServer((bind, port), Handler)
    print(f"[standin] ollama serve (stand-in for {VERSION}) listening on {host}:{port}", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
    return 0


# --------------------------------------------------------------------------- client CLI


def client_base() -> str:
    scheme, host, port = parse_host(_clean("OLLAMA_HOST"))
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(client_base() + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read().decode()
            code = resp.status
    except urllib.error.HTTPError as exc:
        raw, code = exc.read().decode(), exc.code
    lines = [json.loads(x) for x in raw.splitlines() if x.strip().startswith("{")]
    return code, (lines[-1] if lines else raw)


def human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(size)


def die(msg: str) -> int:
    print(f"Error: {msg}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(
            "Usage:\n  ollama [flags]\n  ollama [command]\n\n"
            "(provision stand-in: serve, list, ps, pull, create, show, rm)"
        )
        return 0
    cmd, args = argv[0], argv[1:]
    try:
        if cmd in ("-v", "--version"):
            try:
                _, info = call("GET", "/api/version")
                print(f"ollama version is {info['version']}")
            except (urllib.error.URLError, OSError, KeyError, TypeError):
                print("Warning: could not connect to a running Ollama instance")
                print(f"Warning: client version is {VERSION}")
            return 0
        if cmd == "serve":
            return serve()
        if cmd in ("list", "ls"):
            _, info = call("GET", "/api/tags")
            print(f"{'NAME':<40}{'ID':<16}{'SIZE':<10}MODIFIED")
            for m in info["models"]:
                print(f"{m['name']:<40}{m['digest'][7:19]:<16}{human(m['size']):<10}{m['modified_at']}")
            return 0
        if cmd == "ps":
            _, info = call("GET", "/api/ps")
            print(f"{'NAME':<40}{'ID':<16}{'SIZE':<10}{'PROCESSOR':<20}UNTIL")
            for m in info["models"]:
                share = m["size_vram"] / m["size"] if m["size"] else 0
                proc = (
                    "100% GPU"
                    if share >= 1
                    else "100% CPU"
                    if share <= 0
                    else f"{round((1 - share) * 100)}%/{round(share * 100)}% CPU/GPU"
                )
                print(
                    f"{m['name']:<40}{m['digest'][7:19]:<16}{human(m['size']):<10}{proc:<20}{m['expires_at']}"
                )
            return 0
        if cmd == "pull":
            if len(args) != 1:
                return die("accepts 1 arg(s)")
            code, last = call("POST", "/api/pull", {"model": args[0]})
            if code != 200:
                return die(last.get("error", last) if isinstance(last, dict) else last)
            print("pulling manifest\nverifying sha256 digest\nwriting manifest\nsuccess")
            return 0
        if cmd == "create":
            name, file = None, "Modelfile"
            rest = list(args)
            while rest:
                item = rest.pop(0)
                if item in ("-f", "--file"):
                    file = rest.pop(0)
                elif item.startswith("-"):
                    return die(f"unknown flag: {item}")
                else:
                    name = item
            if not name:
                return die("accepts 1 arg(s)")
            text = Path(file).read_text(encoding="utf-8")
            try:
                parsed = parse_modelfile(text)
            except ValueError as exc:
                return die(str(exc))
            base = parsed["from"]
            if base.startswith("/") or base.startswith("."):
                if not Path(base).is_file():
                    return die(f"open {base}: no such file or directory")
                base = str(Path(base).resolve())
            params = {k: (v[0] if len(v) == 1 else v) for k, v in parsed["parameters"].items()}
            body = {
                "model": name,
                "from": base,
                "system": parsed.get("system"),
                "template": parsed.get("template"),
                "parameters": params,
                "modelfile": text,
            }
            print("gathering model components")
            code, last = call("POST", "/api/create", body)
            if code != 200:
                return die(last.get("error", last) if isinstance(last, dict) else last)
            print("writing manifest\nsuccess")
            return 0
        if cmd == "rm":
            if not args:
                return die("requires at least 1 arg(s)")
            for name in args:
                code, info = call("DELETE", "/api/delete", {"model": name})
                if code != 200:
                    return die(info.get("error", info) if isinstance(info, dict) else info)
                print(f"deleted '{name}'")
            return 0
        if cmd == "show":
            names = [a for a in args if not a.startswith("-")]
            if len(names) != 1:
                return die("accepts 1 arg(s)")
            code, info = call("POST", "/api/show", {"model": names[0]})
            if code != 200:
                return die(info.get("error", info) if isinstance(info, dict) else info)
            if "--modelfile" in args:
                print(info["modelfile"], end="" if info["modelfile"].endswith("\n") else "\n")
            elif "--parameters" in args:
                print(info["parameters"])
            elif "--system" in args:
                print(info["system"])
            elif "--template" in args:
                print(info["template"])
            else:
                print("  Model\n    architecture        llama\n")
            return 0
    except (urllib.error.URLError, ConnectionError) as exc:
        return die(f"could not connect to ollama app, is it running? ({exc})")
    return die(f'unknown command "{cmd}" for "ollama"')


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

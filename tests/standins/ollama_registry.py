"""STAND-IN for the Ollama registry (registry.ollama.ai). Not the real registry.

Serves models that a test builds in memory (`Registry.add_model`) with the subset of the
registry's HTTP behaviour that Ollama's own client uses (ollama/ollama `server/images.go`,
`server/download.go`) and that provision's client (provision.modelstore.ollama) relies on:

- `GET|HEAD /v2/<namespace>/<model>/manifests/<tag>`: the manifest's exact bytes (`schemaVersion`
  2, `mediaType` application/vnd.docker.distribution.manifest.v2+json, `config`, `layers`
  [{`mediaType`, `digest`, `size`}]), that Content-Type, and `Docker-Content-Digest` (the
  distribution spec's header); an unknown model or tag answers 404 with a distribution-spec
  error body (`MANIFEST_UNKNOWN`; the real registry's body may differ, its 404 is what counts).
- `GET|HEAD /v2/<namespace>/<model>/blobs/<digest>`: 307 Temporary Redirect to
  `/cdn/<hex>?expires=...`, as the real registry redirects blobs to its CDN (here the same
  server plays the CDN, on the same loopback address); 404 for a blob the model lacks.
- `GET|HEAD /cdn/<hex>`: the blob; `Range: bytes=N-` / `bytes=N-M` answered with 206 and
  `Content-Range`, 416 beyond the end.

Test hooks (not registry behaviour): `rate` (bytes/s: throttles blob bodies so a test can kill a
download halfway), `served` (body bytes sent per digest, so a test can prove a resume did not
start over), `requests` (method, path, Range of every request), `redirects` (how many blob
redirects), `ignore_range` (answer 200 with the whole blob, as a server without Range support
would), `corrupt` (digests whose served bytes get one byte flipped), `cut_after` ({digest: n}:
drop the connection after n body bytes, once). Binds 127.0.0.1 only.

Run: `python tests/standins/ollama_registry.py --store OLLAMA_MODELS_DIR [--port N] [--rate B]`
serves every model of an Ollama store (manifests/<host>/<namespace>/<model>/<tag>, blobs/).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA = "application/vnd.docker.container.image.v1+json"
OLLAMA = "application/vnd.ollama.image."


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, rate: int = 0) -> None:
        self.manifests: dict[tuple[str, str], bytes] = {}  # (namespace/model, tag) -> bytes
        self.blobs: dict[str, bytes] = {}  # digest -> bytes
        self.rate = rate
        self.served: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.redirects = 0
        self.ignore_range = False
        self.corrupt: set[str] = set()
        self.cut_after: dict[str, int] = {}
        self.lock = threading.Lock()

    def add_model(self, name: str, layers: list[tuple[str, bytes]], file_type: str = "F32") -> bytes:
        """`name` is `namespace/model:tag`; layers are (media type suffix after
        application/vnd.ollama.image., bytes). Returns the manifest bytes it serves."""
        repo, tag = name.rsplit(":", 1)
        entries = []
        for kind, data in layers:
            digest = digest_of(data)
            self.blobs[digest] = data
            entries.append({"mediaType": OLLAMA + kind, "digest": digest, "size": len(data)})
        config = json.dumps(
            {
                "model_format": "gguf",
                "model_family": "llama",
                "model_families": ["llama"],
                "model_type": "tiny",
                "file_type": file_type,
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [e["digest"] for e in entries]},
            },
            separators=(",", ":"),
        ).encode()
        self.blobs[digest_of(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA,
                "config": {"mediaType": CONFIG_MEDIA, "digest": digest_of(config), "size": len(config)},
                "layers": entries,
            },
            separators=(",", ":"),
        ).encode()
        self.manifests[(repo, tag)] = manifest
        return manifest

    @classmethod
    def from_store(cls, store: Path, rate: int = 0) -> Registry:
        """Every model of an Ollama store (OLLAMA_MODELS layout), under its namespace/model:tag."""
        reg = cls(rate)
        for path in sorted((store / "manifests").glob("*/*/*/*")):
            raw = path.read_bytes()
            reg.manifests[(f"{path.parent.parent.name}/{path.parent.name}", path.name)] = raw
            data = json.loads(raw)
            for layer in [data.get("config"), *data.get("layers", [])]:
                if layer:
                    blob = store / "blobs" / layer["digest"].replace(":", "-")
                    reg.blobs[layer["digest"]] = blob.read_bytes()
        return reg


class Handler(BaseHTTPRequestHandler):
    registry: Registry
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, body, {"Content-Type": "application/json"})

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlparse(self.path)
        path = unquote(url.path)
        reg = self.registry
        with reg.lock:
            reg.requests.append((self.command, path, self.headers.get("Range")))
        m = re.fullmatch(r"/v2/([\w.-]+/[\w.-]+)/manifests/([\w.-]+)", path)
        if m:
            raw = reg.manifests.get((m.group(1), m.group(2)))
            if raw is None:
                return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return self._send(
                200, raw, {"Content-Type": MANIFEST_MEDIA, "Docker-Content-Digest": digest_of(raw)}
            )
        m = re.fullmatch(r"/v2/([\w.-]+/[\w.-]+)/blobs/(sha256:[0-9a-f]{64})", path)
        if m:
            if m.group(2) not in self._model_digests(m.group(1)):
                return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            with reg.lock:
                reg.redirects += 1
            host, port = self.server.server_address[:2]
            cdn = f"http://{host}:{port}/cdn/{m.group(2)[7:]}?expires={int(time.time()) + 3600}&sig=standin"
            return self._send(307, b"", {"Location": cdn})
        m = re.fullmatch(r"/cdn/([0-9a-f]{64})", path)
        if m:
            return self._blob("sha256:" + m.group(1))
        return self._error(404, "NAME_UNKNOWN", "not found")

    def _model_digests(self, repo: str) -> set[str]:
        out: set[str] = set()
        for (r, _tag), raw in self.registry.manifests.items():
            if r == repo:
                data = json.loads(raw)
                out.update(layer["digest"] for layer in [data["config"], *data["layers"]])
        return out

    def _blob(self, digest: str) -> None:
        reg = self.registry
        data = reg.blobs.get(digest)
        if data is None:
            return self._error(404, "BLOB_UNKNOWN", "blob unknown")
        if digest in reg.corrupt and data:  # one byte flipped in the middle: same size, wrong hash
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
        size = len(data)
        start, end = 0, size - 1
        rng = None if reg.ignore_range else self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size or start > end:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{digest[7:]}"')
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if self.command == "HEAD":
            return None
        with reg.lock:
            cut = reg.cut_after.pop(digest, None)
        pos = start
        sent = 0
        step = 16 * 1024
        while pos <= end:
            n = min(step, end + 1 - pos)
            if cut is not None:
                n = min(n, cut - sent)
                if n <= 0:  # drop the connection mid-body, as a network failure would
                    self.close_connection = True
                    return None
            try:
                self.wfile.write(data[pos : pos + n])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return None
            pos += n
            sent += n
            with reg.lock:
                reg.served[digest] = reg.served.get(digest, 0) + n
            if reg.rate:
                time.sleep(n / reg.rate)
        return None


def serve(registry: Registry, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start in a thread on 127.0.0.1; returns the server and its URL (for --registry)."""
    handler = type("BoundHandler", (Handler,), {"registry": registry})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description="STAND-IN Ollama registry (tests only)")
    parser.add_argument("--store", type=Path, required=True, help="an OLLAMA_MODELS folder to serve")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=int, default=0)
    args = parser.parse_args()
    server, url = serve(Registry.from_store(args.store, args.rate), args.port)
    print(url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()

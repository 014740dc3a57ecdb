"""STAND-IN for the Hugging Face Hub's HTTP API. Not the real hub.

Serves repositories from a folder (`ROOT/<owner>/<name>/<files>`) with the subset of the
hub's documented HTTP contract that provision's client (provision.modelstore.hub) uses:

- `GET /api/models/<owner>/<name>[/revision/<rev>][?blobs=true]`: `id`, `sha` (a commit id,
  40 hex), `gated` (false or "manual"), `siblings` [{`rfilename`, `size`, and for files over
  the LFS threshold `lfs`: {`sha256`, `size`}}] (sizes only with `blobs=true`, as on the hub).
- `GET|HEAD /<owner>/<name>/resolve/<rev>/<path>`: the file, `Range: bytes=N-` answered with
  206 and `Content-Range`, headers `ETag`, `X-Repo-Commit`, and for LFS files
  `X-Linked-Etag` / `X-Linked-Size` (the real hub redirects LFS files to its CDN; the stand-in
  serves them itself).
- gated repositories answer 401 with `X-Error-Code: GatedRepo` without a token, 403 with a
  token that is not in the allowed list.

Test hooks (not hub behaviour): `rate` (bytes/s, throttles file bodies so a test can kill a
download halfway) and `served` (bytes served per path, so a test can prove a resume did not
start over). Run: `python tests/standins/hf_hub.py ROOT --port N [--gated owner/name]
[--token T] [--rate BYTES]`.
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

LFS_THRESHOLD = 10 * 1024  # the hub stores big files in LFS; small text files in git


class Hub:
    def __init__(
        self, root: Path, gated: set[str] | None = None, tokens: set[str] | None = None, rate: int = 0
    ) -> None:
        self.root = root
        self.gated = gated or set()
        self.tokens = tokens or set()
        self.rate = rate
        self.served: dict[str, int] = {}
        self.ranges: list[str] = []
        self._sha: dict[Path, str] = {}

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()  # one fixed commit per repository

    def sha256(self, path: Path) -> str:
        if path not in self._sha:
            self._sha[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._sha[path]

    def files(self, repo: str) -> list[Path]:
        base = self.root / repo
        return sorted(p for p in base.rglob("*") if p.is_file())


class Handler(BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _auth(self, repo: str) -> bool:
        if repo not in self.hub.gated:
            return True
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if not token:
            self._error(401, "GatedRepo", "Access to this model is restricted. You must be authenticated.")
            return False
        if token not in self.hub.tokens:
            self._error(
                403, "GatedRepo", "Access to this model is restricted and you are not in the authorized list."
            )
            return False
        return True

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        url = urlparse(self.path)
        path = unquote(url.path)
        m = re.fullmatch(r"/api/models/([\w.-]+/[\w.-]+)(?:/revision/([^/]+))?", path)
        if m:
            return self._info(m.group(1), "blobs=true" in url.query)
        m = re.fullmatch(r"/([\w.-]+/[\w.-]+)/resolve/([^/]+)/(.+)", path)
        if m:
            return self._file(m.group(1), m.group(2), m.group(3), head)
        self._error(404, "EntryNotFound", "not found")

    def _info(self, repo: str, blobs: bool) -> None:
        if not (self.hub.root / repo).is_dir():
            return self._error(404, "RepoNotFound", "Repository not found")
        siblings = []
        for p in self.hub.files(repo):
            item: dict[str, object] = {"rfilename": str(p.relative_to(self.hub.root / repo))}
            if blobs:
                size = p.stat().st_size
                item["size"] = size
                if size >= LFS_THRESHOLD:
                    item["lfs"] = {"sha256": self.hub.sha256(p), "size": size, "pointerSize": 134}
            siblings.append(item)
        body = json.dumps(
            {
                "id": repo,
                "modelId": repo,
                "sha": self.hub.commit(repo),
                "gated": "manual" if repo in self.hub.gated else False,
                "private": False,
                "siblings": siblings,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, repo: str, rev: str, rel: str, head: bool) -> None:
        target = self.hub.root / repo / rel
        if ".." in rel.split("/") or not target.is_file():
            return self._error(404, "EntryNotFound", "Entry not found")
        if rev not in (self.hub.commit(repo), "main"):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        if not self._auth(repo):
            return None
        size = target.stat().st_size
        start = 0
        rng = self.headers.get("Range")
        if rng:
            self.hub.ranges.append(rng)
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            start = int(m.group(1)) if m else 0
        if start > size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206 if rng else 200)
        etag = (
            self.hub.sha256(target)
            if size >= LFS_THRESHOLD
            else hashlib.sha1(target.read_bytes()).hexdigest()
        )
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", self.hub.commit(repo))
        if size >= LFS_THRESHOLD:
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(size))
        self.send_header("Accept-Ranges", "bytes")
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        if head:
            return None
        with target.open("rb") as fh:
            fh.seek(start)
            while chunk := fh.read(64 * 1024):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return None
                self.hub.served[rel] = self.hub.served.get(rel, 0) + len(chunk)
                if self.hub.rate:
                    time.sleep(len(chunk) / self.hub.rate)
        return None


def serve(hub: Hub, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start in a thread; returns the server and its endpoint URL (for HF_ENDPOINT)."""
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description="STAND-IN Hugging Face Hub (tests only)")
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gated", action="append", default=[])
    parser.add_argument("--token", action="append", default=[])
    parser.add_argument("--rate", type=int, default=0)
    args = parser.parse_args()
    server, url = serve(Hub(args.root, set(args.gated), set(args.token), args.rate), args.port)
    print(url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()

"""The read-only probe `provision status` runs on each host: `ssh HOST python3 -` with this file
on stdin (the request is appended as a JSON literal, so nothing reaches a command line).

Standard library only (the host has the Python 3 Ansible needs). It changes nothing on the host:
it reads files, runs `nvidia-smi`/`systemctl is-active`/`docker inspect`, and asks each planned
deployment for its health URL and a one-token chat completion, the engine contract's check.
Raw command output goes back as it is; the controller parses it (provision.status).
It prints one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any


def _run(argv: list[str], timeout: float = 5.0) -> dict[str, Any]:
    if not shutil.which(argv[0]):
        return {"missing": True}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"rc": -1, "out": "", "err": f"timed out after {timeout} s"}
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr[-400:]}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _default_ipv4() -> str:
    """The source address of the default route (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def _http(url: str, body: dict[str, Any] | None, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read(65536).decode("utf-8", "replace")
            status = resp.status
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "seconds": round(time.monotonic() - started, 3), "error": exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        return {"status": 0, "seconds": round(time.monotonic() - started, 3), "error": str(exc)[:200]}
    return {"status": status, "seconds": round(time.monotonic() - started, 3), "body": text[:2000]}


def _count_files(top: str) -> int | None:
    """Regular files under top (not symlinks such as model.gguf, nothing hidden: .provision/);
    None when top is missing or unreadable."""
    try:
        os.listdir(top)
    except OSError:
        return None
    count = 0
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        count += sum(1 for f in files if not f.startswith(".") and not os.path.islink(os.path.join(root, f)))
    return count


def _deployment(dep: dict[str, Any], address: str, timeout: float) -> dict[str, Any]:
    base = f"http://{address}:{dep['port']}"
    out: dict[str, Any] = {"name": dep["name"]}
    if dep.get("unit"):
        out["unit"] = _run(["systemctl", "is-active", dep["unit"]]).get("out", "").strip()
    if dep.get("container"):
        inspect = _run(
            ["docker", "inspect", "--format", "{{.State.Status}} {{.Config.Image}}", dep["container"]]
        )
        out["container"] = inspect.get("out", "").strip() or inspect.get("err", "").strip()
    model_dir = dep.get("model_dir")
    if model_dir:
        out["model_files"] = _count_files(model_dir)
    headers = {"Authorization": f"Bearer {dep['api_key']}"} if dep.get("api_key") else {}
    out["health"] = _http(base + dep["health_path"], None, headers, timeout)
    if out["health"]["status"] == 200:
        body = {
            "model": dep["model"],
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
            "temperature": 0,
        }
        answer = _http(base + "/v1/chat/completions", body, headers, timeout)
        try:
            parsed = json.loads(answer.pop("body", "") or "{}")
        except ValueError:
            parsed = {}
        answer["completion"] = parsed.get("object") == "chat.completion" and bool(parsed.get("choices"))
        out["completion"] = answer
    return out


def main(request: dict[str, Any]) -> None:
    started = time.monotonic()
    report: dict[str, Any] = {"hostname": socket.gethostname()}
    uptime = _read("/proc/uptime")
    report["uptime_s"] = float(uptime.split()[0]) if uptime else None
    report["nvidia_smi"] = _run(request["gpu_query"])
    banner = _run(["nvidia-smi"]) if not report["nvidia_smi"].get("missing") else {}
    report["nvidia_smi_banner"] = banner.get("out", "")[:1500]
    report["driver_proc"] = _read("/proc/driver/nvidia/version")
    report["cuda_toolkit"] = _read("/usr/local/cuda/version.json")
    links = {}
    for name, path in request.get("links", {}).items():
        links[name] = os.path.realpath(path) if os.path.lexists(path) else None
    report["links"] = links
    address = request.get("address") or _default_ipv4()
    report["address"] = address
    timeout = float(request.get("timeout_s", 5))
    report["deployments"] = [_deployment(d, address, timeout) for d in request.get("deployments", [])]
    report["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(report))

"""Reliability of the converged local lab under load (issue 8): run by molecule/fleet's
side_effect step, after `provision up inventory/lab.yml` converged the lab (PROVISION_LAB_DIR).

Every test is bounded in time and stops by itself; the load is a fixed number of client threads
sending small chat completions through the real gateway with the lab's API key. The figures go
to PROVISION_RELIABILITY_OUT (JSON lines) when set; docs/reliability.md records a run.

  (a) a rolling config change (`provision apply`) under constant load: zero failed requests
  (b) one engine killed under load: under 1% failed, and the engine serves again by itself
  (c) `provision apply` interrupted mid-run (SIGINT), then re-run: converges, nothing left broken
  (d) a node unreachable during `provision up`: the others converge, the recap names it, exit 1
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from openai import APIError, OpenAI

from provision.bench import gateway_from_inventory
from provision.connection import resolve

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventory" / "lab.yml"
MODEL = "tiny-llama-test"
PY = sys.executable

pytestmark = pytest.mark.skipif(
    not os.environ.get("PROVISION_RELIABILITY"),
    reason="runs on the converged lab (molecule/fleet side_effect)",
)


def record(name: str, **figures: Any) -> None:
    out = os.environ.get("PROVISION_RELIABILITY_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": name, **figures}) + "\n")


@dataclass
class Load:
    """Constant load through the gateway: `workers` threads, one request at a time each, with the
    OpenAI Python SDK (default retries)."""

    base_url: str
    key: str | None
    workers: int = 4
    max_seconds: float = 300.0  # a hard stop even if stop() is never called
    results: list[tuple[float, bool, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _worker(self) -> None:
        # The OpenAI Python SDK as users run it: its default retries (2) cover a connection the
        # server closed while idle, which every nginx reload does to idle keep-alive
        # connections; a failure here is one the user would see.
        client = OpenAI(base_url=self.base_url, api_key=self.key or "none", timeout=30)
        messages = [{"role": "user", "content": "hi"}]
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                answer = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)
                ok, why = answer.object == "chat.completion", ""
            except APIError as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"[:200]
            self.results.append((started, ok, why))
        client.close()

    def __enter__(self) -> Load:
        for _ in range(self.workers):
            t = threading.Thread(target=self._worker, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> list[tuple[float, bool, str]]:
        return [r for r in self.results if not r[1]]


class Gateway(tuple):
    """(base URL, API key); its repr hides the key, since pytest prints fixtures on failure."""

    def __repr__(self) -> str:
        return f"Gateway({self[0]!r}, key=<hidden>)"


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    return Gateway(gateway_from_inventory(LAB))


def provision(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "provision", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def on_host(host: str, command: str) -> str:
    conn = resolve(LAB, [host])[host]
    control = Path.home() / ".cache" / "provision" / "ssh"
    control.mkdir(parents=True, exist_ok=True, mode=0o700)
    proc = subprocess.run(
        [*conn.ssh_argv(control), command], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout.strip()


def changed_inventory(tmp_path: Path, concurrency: int) -> Path:
    """inventory/lab.yml with the engines' concurrency changed (a fleet-wide config change)."""
    text = LAB.read_text()
    changed = re.sub(r"(?m)^(\s+concurrency:) \d+$", rf"\1 {concurrency}", text)
    assert changed != text
    path = tmp_path / "lab-changed.yml"
    path.write_text(changed)
    return path


def wait_healthy(seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        proc = provision("status", str(LAB), "--json", timeout=120)
        data = json.loads(proc.stdout)
        if data["ok"] or time.monotonic() > deadline:
            return data
        time.sleep(3)


def test_a_rolling_change_under_load_fails_no_request(gateway, tmp_path):
    base_url, key = gateway[0], gateway[1]
    changed = changed_inventory(tmp_path, 3)
    started = time.monotonic()
    with Load(base_url, key) as load:
        time.sleep(2)
        forward = provision("apply", str(changed), "--only", "engines", "--json")
        back = provision("apply", str(LAB), "--only", "engines", "--json")
        time.sleep(2)
    seconds = time.monotonic() - started
    assert forward.returncode == 0, forward.stdout[-2000:] + forward.stderr[-2000:]
    assert back.returncode == 0, back.stdout[-2000:] + back.stderr[-2000:]
    rolled = json.loads(forward.stdout)["rolled"]
    assert rolled == ["lab-node1", "lab-node2"]
    record("rolling", requests=load.total, failed=len(load.failed), seconds=round(seconds, 1), rolled=rolled)
    assert load.total > 50
    assert load.failed == [], load.failed[:5]


def test_b_a_killed_engine_costs_under_one_percent_and_recovers(gateway):
    base_url, key = gateway[0], gateway[1]
    unit = "llamacpp-tiny.service"
    pid_before = on_host("lab-node1", f"systemctl show -p MainPID --value {unit}")
    assert pid_before.isdigit() and int(pid_before) > 0
    with Load(base_url, key) as load:
        time.sleep(3)
        killed_at = time.monotonic()
        # the engine this lab's role started: ended by its own PID
        on_host("lab-node1", f"kill -9 {int(pid_before)}")
        recovered_s = None
        while time.monotonic() - killed_at < 60:
            pid = on_host("lab-node1", f"systemctl show -p MainPID --value {unit}")
            health = on_host("lab-node1", "python3 -c \"import urllib.request,socket;"
                             "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.connect(('10.255.255.255',1));"
                             "a=s.getsockname()[0];print(urllib.request.urlopen(f'http://{a}:8080/health',timeout=2).status)\""
                             " 2>/dev/null || true")  # fmt: skip
            if pid.isdigit() and pid not in ("0", pid_before) and health == "200":
                recovered_s = time.monotonic() - killed_at
                break
            time.sleep(1)
        time.sleep(10)  # the gateway sends it traffic again after fail_timeout at the latest
    assert recovered_s is not None, "the engine did not come back within 60 s"
    share = len(load.failed) / max(load.total, 1)
    record(
        "engine_killed",
        requests=load.total,
        failed=len(load.failed),
        failed_pct=round(100 * share, 3),
        engine_back_after_s=round(recovered_s, 1),
    )
    assert load.total > 50
    assert share < 0.01, load.failed[:5]
    after = [r for r in load.results if r[0] > killed_at + recovered_s]
    assert after and all(ok for _, ok, _ in after[-20:]), "traffic did not recover"


def test_c_an_interrupted_apply_then_a_rerun_converges(tmp_path):
    changed = changed_inventory(tmp_path, 3)
    proc = subprocess.Popen(
        [PY, "-m", "provision", "apply", str(changed), "--only", "engines"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    interrupted_in = ""
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    for line in proc.stdout:
        # the real run (after the dry run): a rolled host is drained and waits for its requests
        if "Rolling: read each deployment" in line:
            interrupted_in = line.strip()
            proc.send_signal(signal.SIGINT)
            break
        if time.monotonic() > deadline:
            break
    try:
        rest = proc.communicate(timeout=300)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        rest = proc.communicate()[0]
    assert interrupted_in, "the run ended before it reached a rolled host"
    assert proc.returncode == 130, rest[-2000:]
    assert "interrupted" in rest.lower()
    rerun = provision("apply", str(LAB), "--only", "engines", "--json")
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    again = provision("apply", str(LAB), "--only", "engines", "--json")
    assert json.loads(again.stdout)["rolled"] == []
    status = wait_healthy()
    record("interrupted", interrupted_at=interrupted_in[:120], rerun_ok=True, status_ok=status["ok"])
    assert status["ok"], json.dumps(status)[:2000]


def test_d_an_unreachable_node_is_named_and_the_others_converge():
    subprocess.run(["docker", "stop", "-t", "5", "lab-node2"], check=True, capture_output=True, timeout=120)
    try:
        run = provision("up", str(LAB), "--json")
    finally:
        subprocess.run(["docker", "start", "lab-node2"], check=True, capture_output=True, timeout=120)
    assert run.returncode == 1, run.stdout[-2000:]
    data = json.loads(run.stdout)
    hosts = data["hosts"]
    assert hosts["lab-node2"]["unreachable"] >= 1
    assert hosts["lab-node1"]["failed"] == 0 and hosts["lab-node1"]["unreachable"] == 0
    assert hosts["lab-gw"]["failed"] == 0 and hosts["lab-gw"]["unreachable"] == 0
    assert any(f["host"] == "lab-node2" and f["unreachable"] for f in data["failures"])
    # back: the node's systemd starts its engine again; a re-run converges everything
    rerun = provision("up", str(LAB), "--json")
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    status = wait_healthy()
    record(
        "unreachable",
        exit_code=run.returncode,
        unreachable=[h for h, r in hosts.items() if r["unreachable"]],
        converged=[h for h, r in hosts.items() if not r["unreachable"] and not r["failed"]],
        rerun_ok=True,
    )
    assert status["ok"], json.dumps(status)[:2000]

"""provision bench end to end against a real llama-server on loopback (the cached build,
serving the project's tiny random-weight model).

The tiny model writes gibberish and may stop before max_tokens: these tests check the
structure of what is measured, never the text or exact token counts.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app

KEY = "bench-e2e-key-0123456789abcdef"
MODEL = "tiny-llama-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def binary() -> str:
    build = subprocess.run(
        [sys.executable, "-m", "provision.engines.llamacpp_build", "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"llama-server build failed: {build.stderr[-500:]}")
    return str(json.loads(build.stdout)["path"])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from provision.lab.tinymodel import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("bench-model") / "tiny.gguf")


def _serve(binary: str, model: Path, extra: list[str], log: Path) -> Iterator[str]:
    """Start llama-server on a free loopback port, yield its base URL, stop it by its PID."""
    port = _free_port()
    argv = [binary, "-m", str(model), "--alias", MODEL, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-c", "1024", "-np", "4", "--metrics", "-t", "1", *extra]
    with log.open("wb") as out:
        # the key goes through the command line of this test's own server only, on loopback
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited {proc.returncode}: {log.read_text()[-800:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama-server did not become healthy in 60 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(binary, model, tmp_path_factory) -> Iterator[str]:
    yield from _serve(binary, model, [], tmp_path_factory.mktemp("srv") / "llama-server.log")


@pytest.fixture(scope="module")
def keyed_server(binary, model, tmp_path_factory) -> Iterator[str]:
    yield from _serve(binary, model, ["--api-key", KEY], tmp_path_factory.mktemp("srv") / "keyed.log")


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("PROVISION_API_KEY", raising=False)


def _matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_bench_measures_every_level_as_json_with_a_png_chart(server, no_key, tmp_path):
    chart = tmp_path / "out" / "bench.png"
    argv = ["bench", server, "--concurrency", "1,4", "--requests", "8", "--max-tokens", "16"]
    started = time.monotonic()
    result = CliRunner().invoke(app, [*argv, "--json", "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 120
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["stopped_early"] is None
    assert data["model"] == MODEL  # the first id of GET /v1/models
    assert data["target"] == {
        "base_url": server,
        "source": "url",
        "api_key_sent": False,
        "api_key_source": "none",
    }
    assert data["settings"]["concurrency"] == [1, 4]
    assert data["settings"]["requests_per_level"] == [8, 8]
    assert [lv["concurrency"] for lv in data["levels"]] == [1, 4]
    for lv in data["levels"]:
        assert lv["requests"] == lv["completed"] == 8
        assert lv["errors"] == 0 and lv["error_kinds"] == {} and lv["cut_by_duration_cap"] == 0
        assert 1 <= lv["output_tokens"] <= 8 * 16
        assert lv["token_count"] in ("usage", "chunks")
        assert lv["wall_s"] > 0 and lv["total_tokens_per_s"] > 0
        assert 0 < lv["ttft_s_p50"] <= lv["ttft_s_p95"]
        assert 0 < lv["latency_s_p50"] <= lv["latency_s_p95"]
        assert lv["ttft_s_p50"] <= lv["latency_s_p50"]
    if _matplotlib():
        assert data["chart"] == {"path": str(chart), "written": True}
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # matplotlib is the optional bench extra: the run still succeeds, the chart says why
        assert data["chart"]["written"] is False and "provision[bench]" in data["chart"]["skipped"]
        assert not chart.exists()


def test_bench_prints_the_table(server, no_key):
    argv = ["bench", server, "--concurrency", "2", "--requests", "4", "--max-tokens", "8"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    for column in ("concurrency", "requests", "errors", "total t/s", "TTFT p50", "TTFT p95", "latency p95"):
        assert column in result.stdout
    assert f"{MODEL} @ 127.0.0.1:" in result.stdout
    assert "output tokens:" in result.stdout
    assert "concurrency 2: 4/4 ok, 0 error(s)" in result.stderr


def test_the_duration_cap_stops_a_level(server, no_key):
    argv = ["bench", server, "--concurrency", "1", "--requests", "500", "--max-tokens", "64"]
    started = time.monotonic()
    result = CliRunner().invoke(app, [*argv, "--duration-cap", "0.5", "--json"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    (level,) = json.loads(result.stdout)["levels"]
    assert level["cut_by_duration_cap"] > 0
    assert level["completed"] + level["errors"] + level["cut_by_duration_cap"] == 500
    assert level["wall_s"] == 0.5
    assert elapsed < 30


def test_a_wrong_key_is_refused_with_the_fix_and_exit_1(keyed_server, monkeypatch):
    monkeypatch.setenv("PROVISION_API_KEY", "wrong-key-0123456789abcdef")
    result = CliRunner().invoke(app, ["bench", keyed_server, "--concurrency", "1", "--requests", "1"])
    assert result.exit_code == 1
    assert f"error: {keyed_server} refused the API key (HTTP 401" in result.stderr
    assert "fix: the key from env PROVISION_API_KEY is not accepted" in result.stderr
    assert "wrong-key" not in result.output and "Traceback" not in result.output


def test_no_key_for_a_keyed_server_says_which_variable_to_set(keyed_server, monkeypatch):
    monkeypatch.delenv("BENCH_KEY", raising=False)
    argv = ["bench", keyed_server, "--concurrency", "1", "--api-key-env", "BENCH_KEY", "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert "refused the API key" in error["message"]
    assert "export BENCH_KEY=<key>" in error["fix"]


def test_the_right_key_from_the_environment(keyed_server, monkeypatch):
    monkeypatch.setenv("BENCH_KEY", KEY)
    argv = ["bench", keyed_server, "--concurrency", "1", "--requests", "2", "--max-tokens", "4"]
    result = CliRunner().invoke(app, [*argv, "--api-key-env", "BENCH_KEY", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"]["api_key_source"] == "env BENCH_KEY"
    assert data["levels"][0]["completed"] == 2
    assert KEY not in result.output


def test_an_inventory_target_uses_its_gateway_and_its_first_key(keyed_server, no_key, tmp_path, monkeypatch):
    port = int(keyed_server.rsplit(":", 1)[1].split("/")[0])
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(
        f"""
all:
  vars:
    provision_gateway: {{port: {port}}}
    gateway_api_keys:
      - {{name: bench, key: "{{{{ lookup('ansible.builtin.env', 'BENCH_E2E_KEY') }}}}"}}
  children:
    gateway:
      hosts:
        gw: {{ansible_host: 127.0.0.1}}
"""
    )
    monkeypatch.setenv("BENCH_E2E_KEY", KEY)
    argv = ["bench", str(inventory), "--concurrency", "2", "--requests", "2", "--max-tokens", "4", "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"]["base_url"] == keyed_server
    assert data["target"]["api_key_source"] == "inventory gateway_api_keys[0]"
    assert KEY not in result.output


def test_without_matplotlib_the_run_succeeds_and_the_chart_is_skipped(server, no_key, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the bench extra were not installed
    chart = tmp_path / "bench.png"
    argv = [
        "bench",
        server,
        "--concurrency",
        "1",
        "--requests",
        "2",
        "--max-tokens",
        "4",
        "--chart",
        str(chart),
    ]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "chart skipped: matplotlib is not installed" in result.stderr
    assert "pip install 'provision[bench]'" in result.stderr
    assert not chart.exists()
    assert "total t/s" in result.stdout

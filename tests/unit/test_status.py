"""provision status: parsers from fixture files, the drift rules, and a real probe run on this
machine against a real llama-server (loopback) through the same code path as over SSH."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from provision.cli import app
from provision.connection import Connection
from provision.display import print_status
from provision.status import (
    DeploymentStatus,
    FleetStatus,
    HostStatus,
    _drift,
    _judge,
    engine_version,
    image_tag,
    parse_cuda_version,
    parse_gpus,
)

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / "tests" / "fixtures" / "gpu"


def test_gpus_from_the_real_h100_query():
    gpus = parse_gpus((GPU / "h100-80gb-ubuntu2404" / "query-gpu-noheader-nounits.csv").read_text())
    assert len(gpus) == 1
    assert gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert gpus[0].memory_total_mib == 81559 and gpus[0].driver == "580.159.04"


def test_two_gpus_and_cuda_from_the_banner():
    d = GPU / "a100-80gb-pcie-x2"
    gpus = parse_gpus((d / "query-gpu-noheader-nounits.csv").read_text())
    assert [g.index for g in gpus] == [0, 1]
    assert parse_cuda_version((d / "nvidia-smi.txt").read_text(), None) == "12.8"
    toolkit = json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.8.1"}})
    assert parse_cuda_version((d / "nvidia-smi.txt").read_text(), toolkit) == "12.8.1"
    assert parse_cuda_version("", None) is None


def test_versions_from_install_paths_and_images():
    assert engine_version("llamacpp", "/opt/provision/llamacpp/0.3.36") == "0.3.36"
    assert engine_version("llamacpp", "/opt/provision/llamacpp/0.3.36-cuda") == "0.3.36-cuda"
    assert engine_version("ollama", "/opt/ollama/0.12.10/bin/ollama") == "0.12.10"
    assert engine_version("ollama", None) is None
    assert image_tag("running vllm/vllm-openai:v0.28.0@sha256:61fc") == "v0.28.0"
    assert image_tag("running registry:5000/tgi") is None
    assert image_tag("") is None


def test_drift_names_what_differs():
    conn = Connection(host="n1", address="n1", vars={"llamacpp_version": "0.3.36"})
    host = HostStatus("n1", True, gpus_declared=2, engines={"llamacpp": "0.3.30", "ollama": None})
    drift = _drift(conn, host)
    assert "llamacpp: 0.3.30 installed, 0.3.36 pinned" in drift
    assert any(d.startswith("ollama: not installed") for d in drift)
    assert "GPUs: 0 found, 2 declared" in drift
    ok = HostStatus("n1", True, engines={"llamacpp": "0.3.36-cuda"})
    assert _drift(conn, ok) == []


def test_judge_keeps_the_model_dir_and_its_file_count():
    host = HostStatus("n1", True)
    seen = {"health": {"status": 200}, "completion": {"completion": "x", "seconds": 0.1}, "model_files": 3}
    d = _judge({"name": "a", "engine": "llamacpp", "model_dir": "/m/a"}, seen, host)
    assert (d.model_dir, d.model_files, d.healthy) == ("/m/a", 3, True)
    bare = _judge({"name": "b", "engine": "ollama"}, {}, host)
    assert (bare.model_dir, bare.model_files) == ("", None)


def test_status_table_shows_the_model_files():
    deployments = [
        DeploymentStatus("three", "vllm", True, "ok (0.10 s one-token)", 3, "/data/models/a/AWQ"),
        DeploymentStatus("single", "vllm", True, "ok (0.10 s one-token)", 1, "/data/models/b/AWQ"),
        DeploymentStatus("gone", "tgi", False, "health no answer", None, "/data/models/c/FP8"),
        DeploymentStatus("hollow", "llamacpp", False, "health 503", 0, "/data/models/d/F16"),
        DeploymentStatus("pulled", "ollama", True, "ok (0.20 s one-token)", None, ""),
    ]
    status = FleetStatus("inv.yml", [HostStatus("n1", True, deployments=deployments)], 1.0)
    console = Console(record=True, width=250, color_system=None)
    print_status(console, status)
    lines = console.export_text().splitlines()

    def line(name: str) -> str:
        return next(x for x in lines if f"{name}: " in x)

    assert "three: ok (0.10 s one-token); 3 model files" in line("three")
    assert "single: ok (0.10 s one-token); 1 model file" in line("single")
    assert "model files" not in line("single")
    assert "gone: health no answer; model dir missing" in line("gone")
    assert "hollow: health 503; model dir empty" in line("hollow")
    assert "model" not in line("pulled").split("pulled: ")[1]  # no model_dir planned: nothing to count
    as_json = status.as_dict()["hosts"]["n1"]["deployments"]
    assert [(d["model_files"], d["model_dir"]) for d in as_json][2:] == [
        (None, "/data/models/c/FP8"),
        (0, "/data/models/d/F16"),
        (None, ""),
    ]


# ----------------------------------------------------------------------------- a real probe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """A real llama-server (the cached build) serving the tiny model on loopback."""
    build = subprocess.run(
        [sys.executable, "-m", "provision.engines.llamacpp_build", "--json"],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(f"llama-server build failed: {build.stderr[-500:]}")
    binary = json.loads(build.stdout)["path"]
    from provision.lab.tinymodel import write_tiny_gguf

    model = write_tiny_gguf(tmp_path_factory.mktemp("m") / "tiny.gguf")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "512", "-np", "2",
         "--alias", "tiny-llama-test", "--metrics", "-t", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_status_probes_a_real_deployment(llama_server, tmp_path):
    inventory = tmp_path / "local.yml"
    inventory.write_text(
        f"""
all:
  vars:
    provision_pools: {{general: {{path: /v1/, default: true}}}}
  hosts:
    here:
      ansible_connection: local
      ansible_python_interpreter: {sys.executable}
      provision_engine_bind_address: 127.0.0.1
      provision_memory_gib: 2
      provision_deployments:
        - {{name: tiny, engine: llamacpp, model: tiny-llama-test, quantization: F32, context: 256,
            concurrency: 2, pool: general, port: {llama_server}}}
"""
    )
    result = CliRunner().invoke(app, ["status", str(inventory), "--json"])
    data = json.loads(result.output)
    host = data["hosts"]["here"]
    assert host["reachable"], host["error"]
    (dep,) = host["deployments"]
    assert dep["healthy"], dep["detail"]
    assert dep["detail"].startswith("ok (")
    # this machine has no llama-server under /opt/provision: reported as drift, so exit 1
    if not os.path.exists("/opt/provision/llamacpp/current"):
        assert any(d.startswith("llamacpp: not installed") for d in host["drift"])
        assert result.exit_code == 1 and data["ok"] is False


def test_status_reports_an_unhealthy_deployment_and_an_unreachable_host(tmp_path):
    inventory = tmp_path / "bad.yml"
    inventory.write_text(
        f"""
all:
  vars:
    provision_pools: {{general: {{path: /v1/, default: true}}}}
  hosts:
    here:
      ansible_connection: local
      provision_engine_bind_address: 127.0.0.1
      provision_memory_gib: 2
      provision_deployments:
        - {{name: tiny, engine: llamacpp, model: tiny-llama-test, quantization: F32, context: 256,
            pool: general, port: {_free_port()}}}
    gone:
      ansible_host: 127.0.0.1
      ansible_port: {_free_port()}
"""
    )
    result = CliRunner().invoke(app, ["status", str(inventory), "--json", "--timeout", "2"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["hosts"]["gone"]["reachable"] is False and data["hosts"]["gone"]["error"]
    (dep,) = data["hosts"]["here"]["deployments"]
    assert not dep["healthy"] and dep["detail"].startswith("health")
    assert dep["model_dir"].endswith("/tiny-llama-test/F32")


def test_status_counts_the_files_in_the_model_dir(tmp_path):
    """The probe (run locally, as over SSH) counts model_dir's files; the table says so."""
    models = tmp_path / "models"
    inventory = tmp_path / "files.yml"
    inventory.write_text(
        f"""
all:
  vars:
    provision_pools: {{general: {{path: /v1/, default: true}}}}
    provision_models_dir: {models}
  hosts:
    here:
      ansible_connection: local
      provision_engine_bind_address: 127.0.0.1
      provision_memory_gib: 2
      provision_deployments:
        - {{name: tiny, engine: llamacpp, model: tiny-llama-test, quantization: F32, context: 256,
            pool: general, port: {_free_port()}}}
"""
    )
    args = ["status", str(inventory), "--json", "--timeout", "2"]
    (dep,) = json.loads(CliRunner().invoke(app, args).output)["hosts"]["here"]["deployments"]
    assert dep["model_dir"] == f"{models}/tiny-llama-test/F32" and dep["model_files"] is None
    model_dir = Path(dep["model_dir"])
    model_dir.mkdir(parents=True)
    for name in ("tiny.gguf", "extra/weights.bin", ".provision/manifest.json", ".stamp"):
        (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / name).write_text("x")
    (model_dir / "model.gguf").symlink_to("tiny.gguf")  # the models stage's link is no file of its own
    (dep,) = json.loads(CliRunner().invoke(app, args).output)["hosts"]["here"]["deployments"]
    assert dep["model_files"] == 2  # tiny.gguf and extra/weights.bin; nothing hidden, no link


def test_status_limit_names_unknown_hosts():
    result = CliRunner().invoke(app, ["status", str(ROOT / "inventory" / "example.yml"), "--limit", "nope"])
    assert result.exit_code == 2
    assert "no such host: nope" in result.output


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs an ssh client")
def test_ssh_command_is_multiplexed_and_batch(tmp_path):
    conn = Connection("n", "10.0.0.5", user="root", port=2222, key_file="/k", common_args=["-o", "X=1"])
    argv = conn.ssh_argv(tmp_path)
    assert argv[0] == "ssh" and argv[-1] == "root@10.0.0.5"
    assert "BatchMode=yes" in argv and f"ControlPath={tmp_path}/%C" in argv
    assert argv[argv.index("-p") + 1] == "2222" and "X=1" in argv

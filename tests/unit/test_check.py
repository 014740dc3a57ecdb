"""`provision check` and `provision models estimate` on valid input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "inventories" / "good"
FIELDS = {
    "host",
    "name",
    "engine",
    "model",
    "quantization",
    "tensor_parallel",
    "context_tokens",
    "concurrency",
    "weights_gib",
    "kv_cache_gib",
    "overhead_gib",
    "total_gib",
    "capacity_gib",
    "fits",
}


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_example_inventory_is_the_reference_architecture():
    result = run("check", str(ROOT / "inventory/example.yml"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["errors"] == []
    deps = {d["name"]: d for d in data["deployments"]}
    assert set(deps) == {"general", "korean", "fast", "korean-dev"}
    for d in deps.values():
        assert set(d) >= FIELDS, FIELDS - set(d)
    assert deps["general"]["model"] == "llama-3.3-70b" and deps["general"]["tensor_parallel"] == 2
    assert deps["korean"]["model"] == "qwen2.5-72b" and deps["korean"]["quantization"] == "Q4_K_M"
    assert deps["fast"]["model"] == "llama-3.1-8b"
    assert deps["korean-dev"]["engine"] == "ollama"
    # vLLM gets the resolved flags the role will consume
    s = deps["general"]["settings"]
    assert s["tensor_parallel_size"] == 2 and s["max_model_len"] == 8192 and s["max_num_seqs"] == 16
    assert 0.80 <= s["gpu_memory_utilization"] <= 0.95 and s["kv_cache_memory_bytes"] > 0
    # a TP-2 deployment is sized per GPU: about half the weights on each
    assert 19 < deps["general"]["weights_gib"] < 21


def test_example_inventory_human_output():
    result = run("check", str(ROOT / "inventory/example.yml"))
    assert result.exit_code == 0
    assert "worker-general-1" in result.output and "GiB" in result.output and "OK" in result.output


def test_lab_inventory_checks():
    assert run("check", str(ROOT / "inventory/lab.yml")).exit_code == 0


@pytest.mark.parametrize("inv", ["inventory/example.yml", "inventory/lab.yml"])
def test_inventories_are_standard_ansible(inv: str):
    exe = shutil.which("ansible-inventory") or str(
        Path(__import__("sys").executable).parent / "ansible-inventory"
    )
    proc = subprocess.run([exe, "-i", str(ROOT / inv), "--list"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["_meta"]["hostvars"], "hosts are listed"
    assert "[WARNING]" not in proc.stderr, proc.stderr


def test_plan_that_does_not_fit_exits_1_and_says_what_would():
    result = run("check", str(GOOD / "does_not_fit.yml"))
    assert result.exit_code == 1, result.output
    assert "does not fit" in result.output
    assert "partial GPU offload" in result.output and "several times slower" in result.output
    assert "more GPUs" in result.output
    data = json.loads(run("check", str(GOOD / "does_not_fit.yml"), "--json").stdout)
    assert data["ok"] is False and data["deployments"][0]["fits"] is False
    assert data["deployments"][0]["suggestions"]


def test_shared_gpu_sums_reservations():
    data = json.loads(run("check", str(GOOD / "shared_gpu.yml"), "--json").stdout)
    gpu = data["hosts"][0]["gpus"][0]
    assert gpu["deployments"] == ["a", "b"]
    assert gpu["used_gib"] == pytest.approx(0.9 * gpu["capacity_gib"], rel=0.01)
    assert data["ok"] is True


def test_estimate_json_fields():
    result = run(
        "models",
        "estimate",
        "llama-3.1-70b",
        "--quant",
        "Q4_K_M",
        "--context",
        "8192",
        "--concurrency",
        "4",
        "--tp",
        "2",
        "--engine",
        "vllm",
        "--json",
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)["deployments"][0]
    assert set(d) >= FIELDS
    assert d["tensor_parallel"] == 2 and d["fits"] is True


def test_estimate_reports_largest_context_and_concurrency():
    d = json.loads(
        run(
            "models",
            "estimate",
            "llama-3.1-8b",
            "--quant",
            "AWQ",
            "--gpu",
            "RTX-4090",
            "--context",
            "8192",
            "--concurrency",
            "4",
            "--json",
        ).stdout
    )["deployments"][0]
    assert d["max_context"] >= 8192 and d["max_concurrency"] >= 4
    assert d["settings"]["max_num_seqs"] == 4


def test_estimate_too_big_exits_1():
    result = run("models", "estimate", "llama-3.1-405b", "--quant", "FP16", "--gpu", "A100-80GB", "--tp", "8")
    assert result.exit_code == 1
    assert "smaller quant" in result.output or "more GPUs" in result.output


def test_estimate_unknown_model_exits_2():
    result = run("models", "estimate", "llama-9000", "--quant", "Q4_K_M")
    assert result.exit_code == 2 and "unknown model" in result.output


def test_models_list_has_every_family():
    data = json.loads(run("models", "list", "--json").stdout)
    ids = {m["id"] for m in data["models"]}
    for must in [
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "llama-3.2-1b",
        "llama-3.2-3b",
        "llama-3.3-70b",
        "mistral-7b",
        "mixtral-8x7b",
        "mistral-large-2",
        "qwen2.5-0.5b",
        "qwen2.5-72b",
        "deepseek-v2",
        "deepseek-v3",
        "gemma-2-2b",
        "gemma-2-9b",
        "gemma-2-27b",
        "solar-10.7b",
        "phi-3-mini",
        "phi-3.5-mini",
        "yi-1.5-6b",
        "yi-1.5-9b",
        "yi-1.5-34b",
    ]:
        assert must in ids, must


def test_local_gguf_replaces_catalog_numbers(tmp_path):
    """model_path names a real GGUF: the plan uses its exact bytes and shapes."""
    from provision.lab.tinymodel import write_tiny_gguf

    write_tiny_gguf(tmp_path / "tiny.gguf", f16=True)
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "all:\n  vars:\n    provision_pools: {general: {path: /v1/}}\n  hosts:\n    n1:\n"
        "      provision_gpus: {model: RTX-4090, count: 1}\n      provision_deployments:\n"
        "        - {name: t, engine: llamacpp, model: tiny-llama-test, model_path: tiny.gguf,"
        " context: 512, concurrency: 1, pool: general}\n"
    )
    d = json.loads(run("check", str(inv), "--json").stdout)["deployments"][0]
    assert d["quantization"] == "F16"  # from the file, not the default Q4_K_M
    assert d["model_source"].startswith("gguf:")
    from provision.fleetplan import plan_fleet
    from provision.inventory import load_fleet

    plan = plan_fleet(load_fleet(inv), tmp_path).deployments[0]
    assert plan.weights_gib * 1024**3 == pytest.approx(278528 + 1280, abs=2)  # exact tensor bytes


def test_unreadable_local_model_is_invalid_input(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"NOTGGUF" * 10)
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "all:\n  vars:\n    provision_pools: {general: {path: /v1/}}\n  hosts:\n    n1:\n"
        "      provision_deployments:\n"
        "        - {name: t, engine: llamacpp, model: x, model_path: broken.gguf, pool: general}\n"
    )
    r = run("check", str(inv))
    assert r.exit_code == 2 and "cannot read the model" in r.output and "fix:" in r.output


def test_detected_gpu_memory_replaces_the_declared(tmp_path, monkeypatch):
    """Facts cached by the last run (gpu_facts) win over the GPU table when they differ."""
    facts = tmp_path / "facts"
    facts.mkdir()
    (facts / "worker-fast-1").write_text(
        json.dumps({"provision_gpu_facts": {"status": "ok", "count": 1, "memory_mib": 20480}})
    )
    monkeypatch.setenv("PROVISION_FACT_CACHE", str(facts))
    data = json.loads(run("check", str(ROOT / "inventory/example.yml"), "--json").stdout)
    fast = next(h for h in data["hosts"] if h["host"] == "worker-fast-1")
    assert fast["gpus"][0]["capacity_gib"] == 20.0
    assert any("detected 20.0 GiB" in w for w in data["warnings"])


def test_plan_passes_the_inventorys_own_values_to_roles():
    """Roles read these as they are: weight, engine_args, the Ollama Modelfile, catalog sources."""
    from provision.up import extravars, plan_for

    plan = extravars(plan_for(ROOT / "inventory" / "example.yml"))["provision_plan"]
    deps = {d["name"]: d for h in plan.values() for d in h["deployments"]}
    ollama = deps["korean-dev"]
    assert ollama["ollama"]["modelfile"]["name"] == "korean-dev"
    assert "{{ .System }}" in ollama["ollama"]["modelfile"]["template"]
    assert ollama["ollama_tag"] and ollama["ollama_tag"].startswith("llama3.1:70b")
    assert deps["general"]["hf_repo"].endswith("-GGUF")  # Q4_K_M: the catalog's GGUF repository
    assert deps["general"]["license"] and deps["general"]["source"] is None
    assert deps["general"]["weight"] == 1 and deps["general"]["engine_args"] == {}
    assert "ollama" not in deps["general"]

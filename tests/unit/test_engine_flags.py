"""The engine roles' flags, rendered from the planner's own deployment dicts.

The filter plugins of roles ollama, vllm and tgi are pure Python; they are imported by path
(like test_json_merge.py does for provision_lib's module) and fed the dicts `provision up`
hands the roles (`extravars(plan_for(inventory))`). The Ollama drop-in is rendered with the
role's real template.

Tests marked "STAND-IN" also feed the rendered arguments to the stand-ins' strict parsers
(tests/standins/engine_standin.py, tests/standins/ollama/ollama_standin.py), which accept only
the options of the pinned engine versions: NOT the real engines.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import pytest
import yaml

from provision.up import extravars, plan_for

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ollama = _load("ollama_filters", ROOT / "roles/ollama/filter_plugins/ollama_filters.py")
vllm = _load("vllm_filters", ROOT / "roles/vllm/filter_plugins/vllm_filters.py")
net = _load("provision_net", ROOT / "roles/provision_lib/filter_plugins/provision_net.py")
tgi = _load("tgi_filters", ROOT / "roles/tgi/filter_plugins/tgi_filters.py")
engine_standin = _load("engine_standin", ROOT / "tests/standins/engine_standin.py")
ollama_standin = _load("ollama_standin", ROOT / "tests/standins/ollama/ollama_standin.py")

FilterError = ollama.AnsibleFilterError


@pytest.fixture(scope="module")
def example_plan() -> dict[str, Any]:
    return extravars(plan_for(ROOT / "inventory/example.yml"))["provision_plan"]


def _deployment(plan: dict[str, Any], host: str, name: str) -> dict[str, Any]:
    return next(d for d in plan[host]["deployments"] if d["name"] == name)


def _inventory_ollama_block(name: str) -> dict[str, Any]:
    """The deployment's `ollama:` block from inventory/example.yml (the planner's dict does not
    carry it yet; the role reads it as deployment.ollama)."""
    inv = yaml.safe_load((ROOT / "inventory/example.yml").read_text())
    deps = inv["all"]["children"]["gpu_nodes"]["children"]["ollama_nodes"]["vars"]["provision_deployments"]
    return next(d for d in deps if d["name"] == name)["ollama"]


# ----------------------------------------------------------------------------- Ollama


def _render_override(deployments: list[dict[str, Any]], env: dict[str, str]) -> str:
    jenv = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROOT / "roles/ollama/templates")),
        trim_blocks=True,  # Ansible's template module default
        keep_trailing_newline=True,
    )
    jenv.filters["ollama_systemd_environment"] = ollama.ollama_systemd_environment
    return jenv.get_template("override.conf.j2").render(
        ansible_managed="Ansible managed", ollama_deployments=deployments, _ollama_env=env
    )


def test_override_conf_from_the_example_plan(example_plan: dict[str, Any]) -> None:
    host = example_plan["worker-ollama-1"]
    deps = [d for d in host["deployments"] if d["engine"] == "ollama"]
    env = ollama.ollama_environment(deps, "10.0.1.40", "/data/models/ollama", host["gpus_declared"])
    text = _render_override(deps, env)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "[Service]",
        'Environment="OLLAMA_HOST=10.0.1.40:11434"',
        'Environment="OLLAMA_MODELS=/data/models/ollama"',
        'Environment="OLLAMA_NUM_PARALLEL=4"',
        'Environment="OLLAMA_CONTEXT_LENGTH=8192"',
        'Environment="OLLAMA_KEEP_ALIVE=30m"',
        'Environment="OLLAMA_MAX_LOADED_MODELS=2"',
        'Environment="OLLAMA_MAX_QUEUE=512"',
        'Environment="OLLAMA_FLASH_ATTENTION=1"',
        'Environment="OLLAMA_KV_CACHE_TYPE=f16"',
    ]
    assert "korean-dev" in text.splitlines()[2]  # the header names the deployments


def test_ollama_pins_its_gpus_only_when_it_has_part_of_the_host() -> None:
    dep = _ollama_dep("a", gpus=[1])
    env = ollama.ollama_environment([dep], "10.0.0.5", "/m", gpus_declared=2)
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    env_all = ollama.ollama_environment([_ollama_dep("a", gpus=[0, 1])], "10.0.0.5", "/m", gpus_declared=2)
    assert "CUDA_VISIBLE_DEVICES" not in env_all


def _ollama_dep(name: str, ollama_tag: str | None = None, **settings: Any) -> dict[str, Any]:
    base = {
        "num_parallel": 2,
        "context_length": 4096,
        "keep_alive": "30m",
        "max_loaded_models": 1,
        "max_queue": 512,
        "flash_attention": True,
        "kv_cache_type": "f16",
        "num_gpu": None,
        "model_name": name,
        "gpus": [0],
    }
    base.update(settings)
    return {
        "name": name,
        "engine": "ollama",
        "model": "llama-3.1-8b",
        "quantization": "Q4_K_M",
        "port": 11434,
        "pool": "p",
        "settings": base,
        "ollama_tag": ollama_tag,
    }


def test_one_server_takes_the_largest_parallel_and_context_and_refuses_disagreement() -> None:
    a = _ollama_dep("a", num_parallel=2, context_length=4096)
    b = _ollama_dep("b", num_parallel=6, context_length=2048)
    env = ollama.ollama_environment([a, b], "10.0.0.5", "/m")
    assert env["OLLAMA_NUM_PARALLEL"] == "6"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "4096"
    with pytest.raises(FilterError, match="keep_alive"):
        ollama.ollama_environment([a, _ollama_dep("c", keep_alive="5m")], "10.0.0.5", "/m")
    c = _ollama_dep("c")
    c["port"] = 11435
    with pytest.raises(FilterError, match="ports"):
        ollama.ollama_environment([a, c], "10.0.0.5", "/m")


def test_quantized_kv_cache_needs_flash_attention() -> None:
    dep = _ollama_dep("a", kv_cache_type="q8_0", flash_attention=False)
    with pytest.raises(FilterError, match="flash attention"):
        ollama.ollama_environment([dep], "10.0.0.5", "/m")


def test_systemd_quoting_escapes_quotes_backslashes_and_percent() -> None:
    assert ollama.ollama_systemd_environment({"A": 'x "y" 50% \\z'}) == [
        'Environment="A=x \\"y\\" 50%% \\\\z"'
    ]
    with pytest.raises(FilterError):
        ollama.ollama_systemd_environment({"A": "two\nlines"})


def test_ipv6_bind_address_is_bracketed() -> None:
    env = ollama.ollama_environment([_ollama_dep("a")], "fd00::5", "/m")
    assert env["OLLAMA_HOST"] == "[fd00::5]:11434"


def test_korean_modelfile_from_the_field_guide_example(example_plan: dict[str, Any]) -> None:
    dep = dict(_deployment(example_plan, "worker-ollama-1", "korean-dev"))
    dep["ollama"] = _inventory_ollama_block("korean-dev")
    text = ollama.ollama_modelfile(dep, "llama3.1:70b-instruct-q4_K_M")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body[:8] == [
        "FROM llama3.1:70b-instruct-q4_K_M",
        "PARAMETER temperature 0.7",
        "PARAMETER top_p 0.9",
        "PARAMETER top_k 40",
        "PARAMETER num_ctx 8192",
        "PARAMETER repeat_penalty 1.1",
        'PARAMETER stop "<|eot_id|>"',
        'PARAMETER stop "<|end_of_text|>"',
    ]
    assert 'TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>' in text
    assert 'SYSTEM """당신은 한국 IT 기업의 시니어 개발자입니다.\n모든 답변은 한국어로 합니다.' in text


def test_korean_modelfile_round_trips_through_the_standin_parser(example_plan: dict[str, Any]) -> None:
    """STAND-IN: the Modelfile parser of tests/standins/ollama (not Ollama's) reads back every command."""
    dep = dict(_deployment(example_plan, "worker-ollama-1", "korean-dev"))
    block = _inventory_ollama_block("korean-dev")
    dep["ollama"] = block
    parsed = ollama_standin.parse_modelfile(ollama.ollama_modelfile(dep, "llama3.1:70b-instruct-q4_K_M"))
    assert parsed["from"] == "llama3.1:70b-instruct-q4_K_M"
    assert parsed["system"] == block["modelfile"]["system"]
    assert parsed["template"] == block["modelfile"]["template"]
    assert parsed["parameters"]["stop"] == ["<|eot_id|>", "<|end_of_text|>"]
    assert parsed["parameters"]["num_ctx"] == ["8192"]


def test_modelfile_adds_num_ctx_and_a_planned_partial_offload() -> None:
    dep = _ollama_dep("tiny", context_length=512, num_gpu=20)
    text = ollama.ollama_modelfile(dep, "/data/models/tiny/model.gguf")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == ["FROM /data/models/tiny/model.gguf", "PARAMETER num_ctx 512", "PARAMETER num_gpu 20"]


def test_modelfile_records_the_placed_models_digest() -> None:
    dep = _ollama_dep("a")
    plain = ollama.ollama_modelfile(dep, "/m/model.gguf")
    marked = ollama.ollama_modelfile(dep, "/m/model.gguf", "sha256:abc")
    assert "manifest digest sha256:abc" in marked and "digest" not in plain
    assert marked != ollama.ollama_modelfile(dep, "/m/model.gguf", "sha256:abd")


def test_modelfile_refuses_text_that_would_end_its_string() -> None:
    dep = _ollama_dep("a")
    dep["ollama"] = {"modelfile": {"name": "a", "system": 'say """hi"""'}}
    with pytest.raises(FilterError, match='"""'):
        ollama.ollama_modelfile(dep, "x:y")


def test_base_model_prefers_the_placed_gguf_then_the_role_map_then_the_catalog() -> None:
    dep = _ollama_dep("a", ollama_tag="llama3.1:8b-instruct-q4_K_M")
    assert ollama.ollama_base_model(dep, {}, "/m/a.gguf") == "/m/a.gguf"
    assert ollama.ollama_base_model(dep, {}) == "llama3.1:8b-instruct-q4_K_M"
    assert ollama.ollama_base_model(dep, {"llama-3.1-8b": "mine:8b"}) == "mine:8b"
    plain = _ollama_dep("b")
    assert ollama.ollama_base_model(plain, {"llama-3.1-8b:Q4_K_M": "llama3.1:8b"}) == "llama3.1:8b"
    with pytest.raises(FilterError, match="ollama_model_tags"):
        ollama.ollama_base_model(plain, {})


# ----------------------------------------------------------------------------- vLLM


def test_vllm_args_for_the_general_pool(example_plan: dict[str, Any]) -> None:
    dep = _deployment(example_plan, "worker-general-1", "general")
    # The example plans Q4_K_M: vLLM serves the single GGUF file the models stage placed.
    layout = vllm.vllm_model_layout(dep, ["Llama-3.3-70B-Instruct-Q4_K_M.gguf"])
    args = vllm.vllm_serve_args(dep, layout, "10.0.1.10")
    assert args == [
        "/models/Llama-3.3-70B-Instruct-Q4_K_M.gguf",
        "--served-model-name",
        "llama-3.3-70b",
        "--host",
        "10.0.1.10",
        "--port",
        "8000",
        "--tensor-parallel-size",
        "2",
        "--gpu-memory-utilization",
        "0.9",
        "--max-model-len",
        "8192",
        "--max-num-seqs",
        "16",
        "--max-num-batched-tokens",
        "8192",
        "--dtype",
        "auto",
        "--kv-cache-dtype",
        "auto",
        "--enable-prefix-caching",
    ]


def test_vllm_args_for_a_single_file_gguf_with_kv_bytes(example_plan: dict[str, Any]) -> None:
    dep = _deployment(example_plan, "worker-fast-1", "fast")
    files = ["/data/models/llama-3.1-8b/Q4_K_M/model.Q4_K_M.gguf", "tokenizer.json", "config.json"]
    layout = vllm.vllm_model_layout(dep, files)
    assert layout == {
        "model": "/models/model.Q4_K_M.gguf",
        "tokenizer": "/models",
        "hf_config_path": "/models",
        "gguf": True,
    }
    args = vllm.vllm_serve_args(dep, layout, "10.0.1.30", memory="kv_bytes")
    assert args[args.index("--kv-cache-memory-bytes") + 1] == str(dep["settings"]["kv_cache_memory_bytes"])
    assert "--gpu-memory-utilization" not in args
    assert args[-4:] == ["--tokenizer", "/models", "--hf-config-path", "/models"]


def test_vllm_serves_a_snapshot_directory() -> None:
    dep = {"name": "x", "quantization": "AWQ", "model_dir": "/m"}
    layout = vllm.vllm_model_layout(dep, ["config.json", "tokenizer.json", "model.safetensors"])
    assert layout == {"model": "/models", "tokenizer": "", "hf_config_path": "", "gguf": False}
    with pytest.raises(FilterError, match=r"config\.json"):
        vllm.vllm_model_layout(dep, ["model.safetensors"])


def test_vllm_refuses_split_gguf() -> None:
    dep = {"name": "x", "quantization": "Q4_K_M", "model_dir": "/m"}
    with pytest.raises(FilterError, match="single-file GGUF"):
        vllm.vllm_model_layout(dep, ["a-00001-of-00002.gguf", "a-00002-of-00002.gguf"])


def test_vllm_quantization_is_named_only_when_vllm_cannot_detect_it() -> None:
    assert (
        vllm.vllm_quantization({"quantization": "AWQ"}, {"quantization_config": {"quant_method": "awq"}})
        == ""
    )
    assert (
        vllm.vllm_quantization({"quantization": "GPTQ"}, {"quantization_config": {"quant_method": "gptq"}})
        == ""
    )
    assert (
        vllm.vllm_quantization({"quantization": "FP8"}, {"quantization_config": {"quant_method": "fp8"}})
        == ""
    )
    assert vllm.vllm_quantization({"quantization": "FP8"}, {"torch_dtype": "bfloat16"}) == "fp8"
    assert vllm.vllm_quantization({"quantization": "Q4_K_M"}, {}) == ""
    assert vllm.vllm_quantization({"quantization": "BF16"}, {}) == ""


def test_vllm_kv_cache_dtype_mapping_and_refusals(example_plan: dict[str, Any]) -> None:
    dep = _deployment(example_plan, "worker-fast-1", "fast")
    layout = {"model": "/models"}
    for planner, flag in (("bf16", "bfloat16"), ("fp8", "fp8")):
        d = {**dep, "settings": {**dep["settings"], "kv_cache_dtype": planner}}
        args = vllm.vllm_serve_args(d, layout, "10.0.0.1")
        assert args[args.index("--kv-cache-dtype") + 1] == flag
    for bad in ("fp16", "q8_0"):
        d = {**dep, "settings": {**dep["settings"], "kv_cache_dtype": bad}}
        with pytest.raises(FilterError, match="kv-cache-dtype"):
            vllm.vllm_serve_args(d, layout, "10.0.0.1")


def test_vllm_engine_args_and_the_api_key_never_on_the_command_line(example_plan: dict[str, Any]) -> None:
    dep = _deployment(example_plan, "worker-fast-1", "fast")
    args = vllm.vllm_serve_args(
        dep,
        {"model": "/models"},
        "10.0.0.1",
        extra={"enforce-eager": True, "swap_space": 4, "trust-remote-code": False},
    )
    assert args[-3:] == ["--enforce-eager", "--swap-space", "4"]
    with pytest.raises(FilterError, match="never on the command line"):
        vllm.vllm_serve_args(dep, {"model": "/models"}, "10.0.0.1", extra={"api-key": "secret"})
    with pytest.raises(FilterError, match="from the plan"):
        vllm.vllm_serve_args(dep, {"model": "/models"}, "10.0.0.1", extra={"max_model_len": 4096})


def test_vllm_container_env() -> None:
    assert vllm.vllm_container_env(True, True, False) == {
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NCCL_P2P_DISABLE": "1",
        "NCCL_IB_DISABLE": "0",
    }
    assert vllm.vllm_container_env(False, usage_stats=True) == {}
    with pytest.raises(FilterError, match="secret"):
        vllm.vllm_container_env(True, extra={"VLLM_API_KEY": "x"})


def test_vllm_args_pass_the_standin_parser(example_plan: dict[str, Any]) -> None:
    """STAND-IN: the strict `vllm serve` parser of tests/standins/engine_standin.py (the option
    list checked against vLLM v0.28.0, not vLLM itself) accepts every argument list the role renders."""
    parser = engine_standin.vllm_parser()
    for host, name in (
        ("worker-general-1", "general"),
        ("worker-korean-1", "korean"),
        ("worker-fast-1", "fast"),
    ):
        dep = _deployment(example_plan, host, name)
        for memory in ("utilization", "kv_bytes"):
            args = vllm.vllm_serve_args(
                dep,
                {"model": "/models", "tokenizer": "/models", "hf_config_path": "/models"},
                "10.0.0.1",
                memory=memory,
                quantization="fp8",
            )
            parsed = parser.parse_args(args)
            assert parsed.served_model_name == [dep["settings"]["served_model_name"]]
            assert parsed.tensor_parallel_size == dep["settings"]["tensor_parallel_size"]


# ----------------------------------------------------------------------------- TGI

TGI_INVENTORY = """
all:
  vars:
    provision_models_dir: /data/models
    provision_pools:
      general: {path: /v1/, default: true}
      fast: {path: /v1/fast/}
  hosts:
    w1:
      provision_gpus: {model: A100-80GB, count: 3}
      provision_deployments:
        - {name: korean-tgi, engine: tgi, model: qwen2.5-72b, quantization: AWQ, tensor_parallel: 2,
           context: 8192, concurrency: 16, pool: general}
        - {name: small, engine: tgi, model: llama-3.1-8b, quantization: FP8, context: 4096,
           concurrency: 8, pool: fast, port: 8082, gpus: [2]}
"""


@pytest.fixture(scope="module")
def tgi_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("tgi") / "inventory.yml"
    path.write_text(TGI_INVENTORY)
    return extravars(plan_for(path))["provision_plan"]


def test_tgi_args_for_a_sharded_deployment(tgi_plan: dict[str, Any]) -> None:
    dep = _deployment(tgi_plan, "w1", "korean-tgi")
    args = tgi.tgi_launcher_args(dep, "/models", "10.0.1.50", master_port=29581)
    assert args == [
        "--model-id",
        "/models",
        "--hostname",
        "10.0.1.50",
        "--port",
        "8081",
        "--num-shard",
        "2",
        "--max-input-tokens",
        "8191",
        "--max-total-tokens",
        "8192",
        "--max-batch-prefill-tokens",
        "8192",
        "--max-concurrent-requests",
        "128",
        "--cuda-memory-fraction",
        "0.9",
        "--master-port",
        "29581",
        "--usage-stats",
        "off",
    ]
    assert dep["settings"]["shm_size"] == "2g"


def test_tgi_args_for_fp8_on_load(tgi_plan: dict[str, Any]) -> None:
    dep = _deployment(tgi_plan, "w1", "small")
    quantize = tgi.tgi_quantize(dep, {"torch_dtype": "bfloat16"})
    args = tgi.tgi_launcher_args(dep, "/models", "10.0.1.50", quantize=quantize)
    assert "--master-port" not in args
    assert args[args.index("--quantize") + 1] == "fp8"
    assert args[args.index("--max-input-tokens") + 1] == "4095"
    assert (
        tgi.tgi_quantize(
            _deployment(tgi_plan, "w1", "korean-tgi"), {"quantization_config": {"quant_method": "awq"}}
        )
        == ""
    )


def test_tgi_refusals(tgi_plan: dict[str, Any]) -> None:
    dep = _deployment(tgi_plan, "w1", "small")
    with pytest.raises(FilterError, match="never on the command line"):
        tgi.tgi_launcher_args(dep, "/models", "10.0.0.1", extra={"api-key": "x"})
    bad = {**dep, "settings": {**dep["settings"], "max_input_tokens": 4096}}
    with pytest.raises(FilterError, match="below"):
        tgi.tgi_launcher_args(bad, "/models", "10.0.0.1")
    with pytest.raises(FilterError, match="usage_stats"):
        tgi.tgi_launcher_args(dep, "/models", "10.0.0.1", usage_stats="maybe")


def test_tgi_args_pass_the_standin_parser(tgi_plan: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """STAND-IN: the strict launcher parser of tests/standins/engine_standin.py (TGI 3.x's option
    list, not TGI itself) accepts the rendered arguments and reads API_KEY from the environment."""
    monkeypatch.setenv("API_KEY", "k")
    for name in ("korean-tgi", "small"):
        dep = _deployment(tgi_plan, "w1", name)
        args = tgi.tgi_launcher_args(
            dep,
            "/models",
            "10.0.0.1",
            quantize="fp8",
            master_port=29581,
            extra={"disable-custom-kernels": True},
        )
        parsed = engine_standin.tgi_parse(args)
        assert parsed["values"]["--num-shard"] == dep["settings"]["num_shard"]
        assert parsed["values"]["--api-key"] == "k"
        assert parsed["sources"]["--api-key"] == "env API_KEY"


def test_tgi_container_env() -> None:
    assert tgi.tgi_container_env(True, None, True) == {"HF_HUB_OFFLINE": "1", "NCCL_IB_DISABLE": "1"}
    with pytest.raises(FilterError, match="secret"):
        tgi.tgi_container_env(True, extra={"API_KEY": "x"})


# ----------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.0.1.10", True),
        ("172.20.0.2", True),
        ("192.168.1.5", True),
        ("100.64.3.4", True),
        ("127.0.0.1", True),
        ("fd00::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("8.8.8.8", False),
        ("not-an-ip", False),
    ],
)
def test_private_addresses(address: str, private: bool) -> None:
    assert net.provision_private_address(address) is private


# --- role ollama: a model imported from an Ollama library bundle (docs/models.md) and pruning --

LIBRARY_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)
BUNDLED: dict[str, Any] = {
    "params": {"stop": ["<|start_header_id|>", "<|eot_id|>"], "temperature": 0.6, "num_ctx": 131072},
    "template": LIBRARY_TEMPLATE,
    "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nstand-in text",
}


def _lib_dep(**ollama_block: Any) -> dict[str, Any]:
    return {
        "name": "lib",
        "engine": "ollama",
        "model": "llama-3.2-1b",
        "settings": {"context_length": 4096, "num_gpu": None, "model_name": "lib"},
        **({"ollama": ollama_block} if ollama_block else {}),
    }


def test_bundle_metadata_reaches_the_modelfile() -> None:
    text = ollama.ollama_modelfile(_lib_dep(), "/data/models/lib/model.gguf", "sha256:abc", BUNDLED)
    parsed = ollama_standin.parse_modelfile(text)
    assert parsed["from"] == "/data/models/lib/model.gguf"
    assert parsed["template"] == LIBRARY_TEMPLATE
    assert parsed["license"] == BUNDLED["license"]
    assert parsed["parameters"]["stop"] == ["<|start_header_id|>", "<|eot_id|>"]
    assert parsed["parameters"]["temperature"] == ["0.6"]
    # the planner sized the context for this GPU: the library's 131072 would not fit
    assert parsed["parameters"]["num_ctx"] == ["4096"]


def test_the_inventory_wins_key_by_key() -> None:
    spec = {"parameters": {"temperature": 0.2, "num_ctx": 2048}, "template": "{{ .Prompt }}"}
    dep = _lib_dep(modelfile=spec)
    parsed = ollama_standin.parse_modelfile(ollama.ollama_modelfile(dep, "/m/model.gguf", "", BUNDLED))
    assert parsed["parameters"]["temperature"] == ["0.2"]
    assert parsed["parameters"]["num_ctx"] == ["2048"]
    assert parsed["parameters"]["stop"] == ["<|start_header_id|>", "<|eot_id|>"]  # from the bundle
    assert parsed["template"] == "{{ .Prompt }}"


def test_without_a_bundle_the_modelfile_is_unchanged() -> None:
    """Deployments converged before bundles existed must not rebuild: same text as before."""
    dep = _lib_dep()
    dep["settings"]["num_gpu"] = 20
    assert ollama.ollama_modelfile(dep, "/m/model.gguf") == ollama.ollama_modelfile(
        dep, "/m/model.gguf", "", {}
    )
    body = [x for x in ollama.ollama_modelfile(dep, "/m/model.gguf").splitlines() if not x.startswith("#")]
    assert body == ["FROM /m/model.gguf", "PARAMETER num_ctx 4096", "PARAMETER num_gpu 20"]


def test_a_malformed_params_file_is_refused() -> None:
    with pytest.raises(Exception, match=r"params\.json"):
        ollama.ollama_modelfile(_lib_dep(), "/m/model.gguf", "", {"params": ["stop"]})


def test_managed_models_and_the_stale_ones() -> None:
    """--prune removes only what the role built or pulled and no deployment uses now."""
    state = {"url": "http://10.0.0.5:11434", "models": ["old-served:latest", "llama3.1:8b", "kept:latest"]}
    lists = ollama.ollama_managed_models(state, ["kept:latest", "new:latest"], ["llama3.1:8b"], ["qwen:7b"])
    assert lists["managed"] == ["kept:latest", "llama3.1:8b", "new:latest", "old-served:latest", "qwen:7b"]
    # llama3.1:8b is still a served model's base; qwen:7b was pulled and no one builds on it now
    assert lists["stale"] == ["old-served:latest", "qwen:7b"]
    assert ollama.ollama_managed_models(None, [], [], []) == {"managed": [], "stale": []}


def test_bundle_metadata_from_slurp_results() -> None:
    import base64

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    results = [
        {"item": "ollama/params.json", "content": b64('{"stop": ["<|eot_id|>"]}')},
        {"item": "ollama/template", "content": b64("{{ .Prompt }}")},
        {"item": "ollama/system", "skipped": True},
    ]
    assert ollama.ollama_bundle_metadata(results) == {
        "params": {"stop": ["<|eot_id|>"]},
        "template": "{{ .Prompt }}",
    }
    with pytest.raises(Exception, match="not JSON"):
        ollama.ollama_bundle_metadata([{"item": "ollama/params.json", "content": b64("{")}])

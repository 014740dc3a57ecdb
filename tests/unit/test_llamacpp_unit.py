"""The llamacpp role's systemd unit, rendered from real planner deployment dicts.

The template (roles/llamacpp/templates/llamacpp.service.j2) is plain Jinja, rendered here
with Ansible's template settings (trim_blocks). The deployments come from the planner
(provision.up.plan_for + extravars, exactly what the engines stage receives).
"""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import jinja2
import pytest
import yaml

from provision.up import extravars, plan_for

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "llamacpp"
BINARY = "/opt/provision/llamacpp/0.3.36/llama-server"


def plan(tmp_path: Path, text: str) -> dict:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(textwrap.dedent(text))
    return extravars(plan_for(inventory))["provision_plan"]


@pytest.fixture
def lab_plan() -> dict:
    return extravars(plan_for(ROOT / "inventory" / "lab.yml"))["provision_plan"]


@pytest.fixture
def gpu_plan(tmp_path: Path) -> dict:
    return plan(
        tmp_path,
        """
        all:
          vars:
            provision_models_dir: /srv/models
            provision_pools: {general: {path: /v1/, default: true}}
          hosts:
            gpu1:
              provision_gpus: {model: A100-80GB, count: 2}
              provision_deployments:
                - name: llama8b
                  engine: llamacpp
                  model: llama-3.1-8b
                  quantization: Q4_K_M
                  context: 8192
                  concurrency: 4
                  kv_cache_dtype: q8_0
                  gpus: [0, 1]
                  pool: general
        """,
    )


def render(deployment: dict, **overrides) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        trim_blocks=True,  # Ansible's template module default
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables = {
        "llamacpp_deployment": deployment,
        "llamacpp_model_file": f"{deployment['model_dir']}/model.gguf",
        "llamacpp_slots_endpoint": defaults["llamacpp_slots_endpoint"],
        "llamacpp_cors_origins": defaults["llamacpp_cors_origins"],
        "llamacpp_extra_args": defaults["llamacpp_extra_args"],
        "llamacpp_environment": defaults["llamacpp_environment"],
        "llamacpp_unit_hardening": defaults["llamacpp_unit_hardening"],
        "llamacpp_restart_sec": defaults["llamacpp_restart_sec"],
        "llamacpp_service_user": "llm",
        "llamacpp_service_group": "llm",
        "llamacpp_service_home": "/var/lib/llm",
        "_llamacpp_bind": "10.1.2.3",
        "_llamacpp_threads": "8",
        "_llamacpp_variant": "cuda" if deployment["settings"]["gpus"] else "cpu",
        "_llamacpp_binary": BINARY,
        "_llamacpp_binary_sha256": "0" * 64,
    }
    variables.update(overrides)
    return env.get_template("llamacpp.service.j2").render(**variables)


def directives(unit: str) -> dict[str, list[str]]:
    """Directive -> values, with ExecStart's continuation lines joined."""
    joined = unit.replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def exec_argv(unit: str) -> list[str]:
    (value,) = directives(unit)["ExecStart"]
    return shlex.split(value.replace("%%", "%").replace("$$", "$"))


def flag_values(argv: list[str]) -> dict[str, str | None]:
    """--flag -> its value (None for a switch)."""
    values: dict[str, str | None] = {}
    for i, word in enumerate(argv[1:], start=1):
        if word.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            values[word] = None if nxt is None or nxt.startswith("--") else nxt
    return values


def test_lab_deployment_flags_are_the_planners_settings(lab_plan):
    dep = lab_plan["lab-node1"]["deployments"][0]
    s = dep["settings"]
    argv = exec_argv(render(dep))
    assert argv[0] == BINARY
    flags = flag_values(argv)
    assert flags == {
        "--model": "/srv/models/tiny-llama-test/F32/model.gguf",
        "--host": "10.1.2.3",
        "--port": str(dep["port"]),
        "--alias": s["served_model_name"],
        "--ctx-size": str(s["ctx_size"]),
        "--parallel": str(s["parallel"]),
        "--no-kv-unified": None,
        "--n-gpu-layers": "0",
        "--flash-attn": "auto",
        "--fit": "off",
        "--threads": "8",
        "--device": "none",
        "--metrics": None,
        "--no-slots": None,
        "--no-ui": None,
        "--cors-origins": "localhost",
        "--log-colors": "off",
    }
    assert s["split_mode"] == "none"  # no GPUs: --device none instead of a split mode
    # context per request x slots: the planner's -c, not re-derived here
    assert s["ctx_size"] == dep["context_tokens"] * dep["concurrency"]


def test_cpu_unit_is_hardened_and_runs_as_the_service_user(lab_plan):
    unit = render(lab_plan["lab-node1"]["deployments"][0])
    d = directives(unit)
    assert d["User"] == ["llm"] and d["Group"] == ["llm"]
    assert d["Restart"] == ["on-failure"]
    assert d["Type"] == ["exec"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service",
    }.items():
        assert d[key] == [value], key
    assert d["Environment"] == ["PROVISION_BINARY_SHA256=" + "0" * 64]
    assert "CUDA_VISIBLE_DEVICES" not in unit
    assert d["WantedBy"] == ["multi-user.target"]


def test_gpu_deployment_flags_and_environment(gpu_plan):
    dep = gpu_plan["gpu1"]["deployments"][0]
    s = dep["settings"]
    assert s["gpus"] == [0, 1] and s["n_gpu_layers"] > 0  # the planner's, used as they are
    unit = render(dep)
    flags = flag_values(exec_argv(unit))
    assert flags["--n-gpu-layers"] == str(s["n_gpu_layers"])
    assert flags["--split-mode"] == s["split_mode"] == "layer"
    assert flags["--cache-type-k"] == flags["--cache-type-v"] == s["cache_type"] == "q8_0"
    assert flags["--ctx-size"] == str(8192 * 4)
    assert flags["--parallel"] == "4"
    assert "--device" not in flags
    d = directives(unit)
    assert "CUDA_VISIBLE_DEVICES=0,1" in d["Environment"]
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in d["Environment"]
    # GPU device nodes stay reachable; the driver may JIT
    for key in ("PrivateDevices", "ProtectClock", "MemoryDenyWriteExecute"):
        assert key not in d, key


@pytest.mark.parametrize(("planned", "flag"), [("auto", "auto"), (True, "on"), (False, "off"), ("on", "on")])
def test_flash_attn_values(lab_plan, planned, flag):
    dep = lab_plan["lab-node1"]["deployments"][0]
    dep = dict(dep, settings=dict(dep["settings"], flash_attn=planned))
    assert flag_values(exec_argv(render(dep)))["--flash-attn"] == flag


def test_f16_cache_sets_no_cache_type_flags(lab_plan):
    argv = exec_argv(render(lab_plan["lab-node1"]["deployments"][0]))
    assert not [w for w in argv if w.startswith("--cache-type")]


def test_options_quoting_and_extra_args(lab_plan):
    dep = lab_plan["lab-node1"]["deployments"][0]
    dep = dict(dep, settings=dict(dep["settings"], served_model_name="my model 100%"))
    unit = render(
        dep,
        llamacpp_model_file="/srv/models/a b/model.gguf",
        llamacpp_extra_args=["--temp", "0.2", "--verbose"],
        llamacpp_slots_endpoint=True,
        llamacpp_environment={"GGML_SCHED_MAX_COPIES": 1, "A": "x $HOME"},
    )
    argv = exec_argv(unit)
    flags = flag_values(argv)
    assert flags["--model"] == "/srv/models/a b/model.gguf"
    assert flags["--alias"] == "my model 100%"
    assert '"my model 100%%"' in unit  # systemd's % specifier escaped
    assert argv[-3:] == ["--temp", "0.2", "--verbose"]
    assert "--slots" in flags and "--no-slots" not in flags
    env = directives(unit)["Environment"]
    assert '"A=x $$HOME"' in env and "GGML_SCHED_MAX_COPIES=1" in env


def test_hardening_can_be_turned_off(lab_plan):
    d = directives(render(lab_plan["lab-node1"]["deployments"][0], llamacpp_unit_hardening=False))
    assert "ProtectSystem" not in d and "NoNewPrivileges" not in d


def test_role_defaults_and_argument_specs_agree():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    required = {name for name, spec in specs.items() if spec.get("required")}
    assert required == {"llamacpp_deployment"}
    assert set(defaults) == set(specs) - required
    for name, value in defaults.items():
        assert specs[name].get("default") == value, name

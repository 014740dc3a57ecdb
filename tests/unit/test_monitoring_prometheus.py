"""Role prometheus's scrape configuration and alert rules, rendered from real planner plans.

The templates (roles/prometheus/templates) are rendered with plain Jinja and Ansible's
template settings (trim_blocks), with the plan the planner makes for inventory/example.yml
(vLLM, Ollama, GPUs, a gateway) and inventory/lab.yml (llama.cpp), and host facts given here.
The rendered files go through the real promtool: `check config`, `check rules` and
`test rules` (the rules' own unit tests, one firing and one quiet case per alert).

promtool comes from Debian's `prometheus` package (`apt-get install --no-install-recommends
prometheus`), or set PROMTOOL to a promtool binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from provision.up import extravars, plan_for

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "prometheus"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
ALERTS = [
    "EngineDown",
    "MonitoringTargetDown",
    "EngineRequestsWaitingHigh",
    "EngineKVCacheNearFull",
    "EngineTimeToFirstTokenHigh",
    "GpuXidError",
    "GpuMemoryNearFull",
    "ModelDiskLow",
    "GatewayErrorRateHigh",
]


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.skip(
            "promtool not installed: apt-get install --no-install-recommends prometheus (or set PROMTOOL)"
        )
    return found


def env() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    # Ansible's filters the templates use.
    environment.filters["to_json"] = json.dumps
    environment.filters["bool"] = lambda value: str(value).lower() in ("1", "true", "yes", "on")
    return environment


def role_vars(**overrides: object) -> dict:
    """The role's defaults as Ansible would resolve them for provision_monitoring's defaults."""
    values = {k: v for k, v in DEFAULTS.items() if not (isinstance(v, str) and "{{" in v)}
    values.update(
        prometheus_port=9090,
        prometheus_scrape_interval="15s",
        prometheus_evaluation_interval="15s",
        prometheus_retention="15d",
        prometheus_node_exporter_port=9100,
        prometheus_dcgm_exporter_port=9400,
        prometheus_nginx_exporter_port=9113,
        prometheus_gateway_log_exporter_port=3903,
        prometheus_blackbox_exporter_address="127.0.0.1:9115",
        prometheus_alertmanager=False,
        ansible_managed="Ansible managed",
    )
    values.update(overrides)
    return values


def inventory_context(
    inventory: Path,
    addresses: dict[str, str],
    groups: dict[str, list[str]],
    host_vars: dict[str, dict] | None = None,
) -> dict:
    plan = extravars(plan_for(inventory))["provision_plan"]
    hostvars = {
        name: {
            "provision_host_plan": plan.get(name, {"deployments": [], "gpus_declared": 0}),
            "ansible_facts": {"default_ipv4": {"address": address}},
            **(host_vars or {}).get(name, {}),
        }
        for name, address in addresses.items()
    }
    return {
        "hostvars": hostvars,
        "groups": {"all": sorted(addresses), **groups},
        "prometheus_target_hosts": sorted(addresses),
    }


EXAMPLE_ADDRESSES = {
    "worker-general-1": "10.0.1.10",
    "worker-korean-1": "10.0.1.20",
    "worker-fast-1": "10.0.1.30",
    "worker-ollama-1": "10.0.1.40",
    "gw-1": "10.0.1.2",
    "mon-1": "10.0.1.3",
}


@pytest.fixture
def example() -> dict:
    return inventory_context(
        ROOT / "inventory" / "example.yml", EXAMPLE_ADDRESSES, {"gateway": ["gw-1"], "monitoring": ["mon-1"]}
    )


def render_config(context: dict, config_dir: Path, **overrides: object) -> dict:
    text = (
        env()
        .get_template("prometheus.yml.j2")
        .render(
            **role_vars(prometheus_config_dir=str(config_dir), **overrides),
            **context,
            inventory_hostname="mon-1",
            _prometheus_listen="10.0.1.3",
        )
    )
    (config_dir / "prometheus.yml").write_text(text)
    return yaml.safe_load(text)


def render_rules(directory: Path, rules_vars: dict | None = None, test_vars: dict | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "provision.rules.yml").write_text(
        env().get_template("provision.rules.yml.j2").render(**role_vars(**(rules_vars or {})))
    )
    (directory / "provision.rules.test.yml").write_text(
        env()
        .get_template("provision.rules.test.yml.j2")
        .render(**role_vars(**(test_vars or rules_vars or {})))
    )


def jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def targets(job: dict) -> list[tuple[str, dict]]:
    return [(target, group["labels"]) for group in job["static_configs"] for target in group["targets"]]


def test_example_inventory_targets(example: dict, tmp_path: Path) -> None:
    config = render_config(example, tmp_path)
    by_job = jobs(config)
    assert sorted(by_job) == ["engine", "engine_probe", "gateway", "gateway_log", "gpu", "node", "prometheus"]
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == [f"{tmp_path}/rules/*.yml"]
    # vLLM deployments: /metrics on the planned port of the host's address, with the plan's labels.
    assert targets(by_job["engine"]) == [
        ("10.0.1.30:8000", {"host": "worker-fast-1", "deployment": "fast", "engine": "vllm", "pool": "fast"}),
        (
            "10.0.1.10:8000",
            {"host": "worker-general-1", "deployment": "general", "engine": "vllm", "pool": "general"},
        ),
        (
            "10.0.1.20:8000",
            {"host": "worker-korean-1", "deployment": "korean", "engine": "vllm", "pool": "korean"},
        ),
    ]
    assert by_job["engine"]["metrics_path"] == "/metrics"
    # Ollama has no metrics: its API is probed through the blackbox exporter.
    probe = by_job["engine_probe"]
    assert targets(probe) == [
        (
            "http://10.0.1.40:11434/api/version",
            {"host": "worker-ollama-1", "deployment": "korean-dev", "engine": "ollama", "pool": "assistant"},
        )
    ]
    assert probe["metrics_path"] == "/probe" and probe["params"] == {"module": ["http_2xx"]}
    assert probe["relabel_configs"][-1] == {"target_label": "__address__", "replacement": "127.0.0.1:9115"}
    # Every host gets a node exporter; GPU hosts a DCGM exporter; the gateway its two exporters.
    assert [t for t, _ in targets(by_job["node"])] == [
        f"{EXAMPLE_ADDRESSES[h]}:9100" for h in sorted(EXAMPLE_ADDRESSES)
    ]
    assert [labels["host"] for _, labels in targets(by_job["gpu"])] == [
        "worker-fast-1",
        "worker-general-1",
        "worker-korean-1",
        "worker-ollama-1",
    ]
    assert targets(by_job["gateway"]) == [("10.0.1.2:9113", {"host": "gw-1"})]
    assert targets(by_job["gateway_log"]) == [("10.0.1.2:3903", {"host": "gw-1"})]
    assert targets(by_job["prometheus"]) == [("10.0.1.3:9090", {"host": "mon-1"})]
    assert "alerting" not in config


def test_example_config_passes_promtool(example: dict, tmp_path: Path) -> None:
    render_rules(tmp_path / "rules")
    (tmp_path / "rules" / "provision.rules.test.yml").unlink()
    render_config(example, tmp_path, prometheus_alertmanager=True)
    result = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout + result.stderr


def test_lab_inventory_llamacpp_targets(tmp_path: Path) -> None:
    context = inventory_context(
        ROOT / "inventory" / "lab.yml",
        {"lab-node1": "172.30.0.11", "lab-node2": "172.30.0.12", "lab-gw": "172.30.0.2"},
        {"gateway": ["lab-gw"], "monitoring": ["lab-gw"]},
        # lab-node2 binds its engines to another address; 0.0.0.0 falls back to the default one.
        {
            "lab-node2": {"provision_engine_bind_address": "192.168.50.12"},
            "lab-node1": {"provision_engine_bind_address": "0.0.0.0"},
        },
    )
    by_job = jobs(render_config(context, tmp_path))
    assert "gpu" not in by_job and "engine_probe" not in by_job
    assert targets(by_job["engine"]) == [
        (
            "172.30.0.11:8080",
            {"host": "lab-node1", "deployment": "tiny", "engine": "llamacpp", "pool": "general"},
        ),
        (
            "192.168.50.12:8080",
            {"host": "lab-node2", "deployment": "tiny", "engine": "llamacpp", "pool": "general"},
        ),
    ]


def test_rules_pass_promtool_check_and_their_unit_tests(tmp_path: Path) -> None:
    render_rules(tmp_path)
    tool = promtool()
    check = subprocess.run(
        [tool, "check", "rules", str(tmp_path / "provision.rules.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0 and "SUCCESS: 9 rules found" in check.stdout, check.stdout + check.stderr
    tests = subprocess.run(
        [tool, "test", "rules", str(tmp_path / "provision.rules.test.yml")], capture_output=True, text=True
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    rules = yaml.safe_load((tmp_path / "provision.rules.yml").read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ALERTS
    # One firing and one quiet test per alert.
    suite = yaml.safe_load((tmp_path / "provision.rules.test.yml").read_text())["tests"]
    for alert in ALERTS:
        cases = [c for t in suite for c in t["alert_rule_test"] if c["alertname"] == alert]
        assert sorted(bool(c["exp_alerts"]) for c in cases) == [False, True], alert


def test_rule_tests_follow_changed_thresholds(tmp_path: Path) -> None:
    changed = {
        "prometheus_alert_requests_waiting": 3,
        "prometheus_alert_kv_cache_usage": 0.8,
        "prometheus_alert_ttft_p95_seconds": 2,
        "prometheus_alert_gpu_memory_used_ratio": 0.9,
        "prometheus_alert_engine_down_for": "10m",
    }
    render_rules(tmp_path, changed)
    result = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "provision.rules.test.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "> 3\n" in (tmp_path / "provision.rules.yml").read_text()


def test_rule_tests_catch_a_threshold_the_tests_do_not_expect(tmp_path: Path) -> None:
    render_rules(
        tmp_path, {"prometheus_alert_requests_waiting": 100}, {"prometheus_alert_requests_waiting": 10}
    )
    result = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "provision.rules.test.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "EngineRequestsWaitingHigh" in result.stdout + result.stderr


def test_a_broken_extra_rule_fails_promtool_check_rules(tmp_path: Path) -> None:
    render_rules(tmp_path, {"prometheus_extra_rules": [{"alert": "Broken", "expr": "sum(rate(up[5m]"}]})
    result = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "provision.rules.yml")], capture_output=True, text=True
    )
    assert result.returncode != 0


def test_extra_rules_are_appended(tmp_path: Path) -> None:
    extra = {
        "alert": "EngineStalled",
        "expr": "vllm:num_requests_running > 0 and rate(vllm:generation_tokens_total[2m]) == 0",
        "for": "5m",
        "labels": {"severity": "warning"},
    }
    render_rules(tmp_path, {"prometheus_extra_rules": [extra]})
    rules = yaml.safe_load((tmp_path / "provision.rules.yml").read_text())["groups"][0]["rules"]
    assert rules[-1] == extra
    result = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "provision.rules.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

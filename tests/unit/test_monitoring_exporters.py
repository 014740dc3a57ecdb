"""Dashboards, Grafana provisioning, the DCGM exporter unit and the metric names they all use.

Rendered with plain Jinja (Ansible's trim_blocks). Grafana and the DCGM exporter cannot run in
this test environment (no Grafana packages, no GPU), so what can be checked is checked here:
the dashboards' JSON and data source, the provisioning files, the exporter's command line, and
that every metric name a dashboard or alert queries is exposed by something that is scraped:
names recorded from the real llama.cpp, node exporter, nginx exporter, mtail and Prometheus in
molecule/monitoring (metrics/recorded.txt), and the documented lists for vLLM, TGI, the DCGM
exporter and blackbox probes (metrics/*.txt, each naming its source).
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "molecule" / "monitoring"
DASHBOARDS = ROOT / "roles" / "grafana" / "files" / "dashboards"
DIGEST = "sha256:6c78381d83e2ccd84e9645d35d8768d98a52b73c75d1bb9395b5f030ce9bd3a4"


def load_checker():
    spec = importlib.util.spec_from_file_location("metric_names", SCENARIO / "metric_names.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(role: str, template: str, **context: object) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROOT / "roles" / role / "templates")),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["to_json"] = json.dumps
    environment.filters["bool"] = lambda value: str(value).lower() in ("1", "true", "yes", "on")
    return environment.get_template(template).render(ansible_managed="Ansible managed", **context)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    defaults = yaml.safe_load((ROOT / "roles" / "prometheus" / "defaults" / "main.yml").read_text())
    values = {k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)}
    path = tmp_path / "provision.rules.yml"
    path.write_text(render("prometheus", "provision.rules.yml.j2", **values))
    return path


def test_every_queried_metric_name_is_exposed(rules_file: Path) -> None:
    checker = load_checker()
    used = checker.used_names(rules_file, DASHBOARDS)
    assert sorted(used) == ["engines.json", "gateway.json", "gpus.json", "provision.rules.yml"]
    exposed = set().union(*(checker.exposed_names(p) for p in sorted((SCENARIO / "metrics").glob("*.txt"))))
    missing = {source: sorted(names - exposed) for source, names in used.items() if names - exposed}
    assert missing == {}
    # The real engine's names are the pinned llama.cpp's, recorded from a running llama-server.
    recorded = checker.exposed_names(SCENARIO / "metrics" / "recorded.txt")
    assert {
        "llamacpp:requests_deferred",
        "llamacpp:tokens_predicted_total",
        "nginx_http_requests_total",
        "gateway_http_responses_total",
        "provision_models_dir_info",
        "node_filesystem_avail_bytes",
        "up",
    } <= recorded


def test_the_name_check_can_fail(rules_file: Path, tmp_path: Path) -> None:
    checker = load_checker()
    only_llamacpp = tmp_path / "names.txt"
    only_llamacpp.write_text("llamacpp:requests_deferred\nup\n")
    assert checker.main(["metric_names.py", str(rules_file), str(DASHBOARDS), str(only_llamacpp)]) == 1
    assert checker.names_in(
        'sum by (host) (rate(a_total{code=~"5.."}[5m])) / on (instance) group_left (x) b > 0.5 and c'
    ) == {"a_total", "b", "c"}


@pytest.mark.parametrize("name", ["engines.json", "gpus.json", "gateway.json"])
def test_dashboards_use_the_provisioned_datasource(name: str) -> None:
    dashboard = json.loads((DASHBOARDS / name).read_text())
    assert dashboard["uid"].startswith("provision-") and "provision" in dashboard["tags"]
    assert dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "provision-prometheus"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == "provision-prometheus"


def test_grafana_provisioning_files() -> None:
    datasource = yaml.safe_load(
        render(
            "grafana",
            "datasource.yaml.j2",
            _grafana_datasource_uid="provision-prometheus",
            grafana_prometheus_url="http://10.0.1.3:9090\n",
        )
    )
    assert datasource == {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus (provision)",
                "uid": "provision-prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": "http://10.0.1.3:9090",
                "isDefault": True,
                "editable": False,
            }
        ],
    }
    provider = yaml.safe_load(
        render(
            "grafana", "dashboards.yaml.j2", grafana_dashboards_dir="/var/lib/grafana/dashboards/provision"
        )
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/provision"
    assert provider["providers"][0]["type"] == "file"
    grafana_vars = yaml.safe_load((ROOT / "roles" / "grafana" / "vars" / "main.yml").read_text())
    assert sorted(grafana_vars["_grafana_dashboards"]) == sorted(p.name for p in DASHBOARDS.glob("*.json"))


def test_dcgm_exporter_unit_runs_the_pinned_image() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "dcgm_exporter" / "defaults" / "main.yml").read_text())
    assert defaults["dcgm_exporter_image_digest"] == DIGEST
    unit = render(
        "dcgm_exporter",
        "dcgm-exporter.service.j2",
        dcgm_exporter_image=defaults["dcgm_exporter_image"],
        dcgm_exporter_image_tag=defaults["dcgm_exporter_image_tag"],
        _dcgm_exporter_ref=f"{defaults['dcgm_exporter_image']}@{DIGEST}",
        dcgm_exporter_config_dir="/etc/provision/dcgm-exporter",
        _dcgm_exporter_listen="10.0.1.10",
        dcgm_exporter_port=9400,
    )
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(start.removeprefix("ExecStart="))
    image = argv.index(f"nvcr.io/nvidia/k8s/dcgm-exporter@{DIGEST}")
    assert argv[:2] == ["/usr/bin/docker", "run"]
    assert {"--gpus", "all", "--network", "host"} <= set(argv[:image])
    assert argv[image + 1 :] == [
        "--collectors",
        "/etc/dcgm-exporter/provision-counters.csv",
        "--address",
        "10.0.1.10:9400",
    ]
    # The counters file exports exactly the fields the documented list (metrics/dcgm.txt) names.
    fields = [
        line.split(",")[0].strip()
        for line in (ROOT / "roles" / "dcgm_exporter" / "files" / "counters.csv").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert set(fields) == load_checker().exposed_names(SCENARIO / "metrics" / "dcgm.txt")


@pytest.mark.parametrize(
    ("models_dir", "mounts", "expected"),
    [
        ("/srv/models", ["/", "/srv", "/srv2"], "/srv"),
        ("/data/models", ["/", "/data/models"], "/data/models"),
        ("/data/models", ["/", "/dat"], "/"),
    ],
)
def test_node_exporter_finds_the_models_mount(models_dir: str, mounts: list[str], expected: str) -> None:
    template = yaml.safe_load((ROOT / "roles" / "node_exporter" / "vars" / "main.yml").read_text())
    mount = (
        jinja2.Environment()
        .from_string(template["_node_exporter_models_mount"])
        .render(node_exporter_models_dir=models_dir, ansible_facts={"mounts": [{"mount": m} for m in mounts]})
    )
    assert mount.strip() == expected

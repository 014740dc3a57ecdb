"""The gateway role's routing table and templates, from the real planner's output.

The filter plugin (roles/gateway/filter_plugins/gateway_routes.py) is imported as it is; the
templates are plain Jinja, rendered with Ansible's template settings (trim_blocks) and the two
Ansible filters they use (bool, hash). The plans come from provision.up (what the stages get).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import textwrap
from pathlib import Path

import jinja2
import pytest
import yaml

from provision.up import extravars, plan_for

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "gateway"

_spec = importlib.util.spec_from_file_location(
    "gateway_routes", ROLE / "filter_plugins" / "gateway_routes.py"
)
assert _spec and _spec.loader
gr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gr)

KEYS = [
    {"name": "alice", "key": "sk-alice-0123456789abcdef"},
    {"name": "bob", "key": "sk-bob-0123456789abcdef00"},
]


def example_plan() -> tuple[dict, dict]:
    inventory = ROOT / "inventory" / "example.yml"
    text = yaml.safe_load(inventory.read_text())
    return extravars(plan_for(inventory))["provision_plan"], text["all"]["vars"]["provision_pools"]


def example_hostvars(plan: dict) -> dict:
    """hostvars as the gateway play sees them: the plan and each host's default IPv4 address."""
    addresses = {
        "worker-general-1": "10.0.1.10",
        "worker-korean-1": "10.0.1.20",
        "worker-fast-1": "10.0.1.30",
        "worker-ollama-1": "10.0.1.40",
    }
    return {
        host: {
            "provision_host_plan": host_plan,
            "ansible_facts": {"default_ipv4": {"address": addresses.get(host, "10.0.1.99")}},
        }
        for host, host_plan in plan.items()
    }


def render(template: str, routes: dict, **overrides) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    env.filters["hash"] = lambda v, algorithm: hashlib.new(algorithm, str(v).encode()).hexdigest()
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables = {k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)}
    variables.update(
        gateway_port=80,
        gateway_server_name="llm-api.example.internal",
        gateway_tls=None,
        gateway_require_api_key=True,
        gateway_api_keys=KEYS,
        _gateway_routes=routes,
        _gateway_drained=[],
    )
    variables.update(overrides)
    return env.get_template(template).render(**variables)


@pytest.fixture
def example() -> tuple[list[dict], dict]:
    plan, pools = example_plan()
    backends = gr.gateway_backends(example_hostvars(plan), sorted(plan))
    return backends, gr.gateway_routes(pools, backends)


def server_block(conf: str) -> str:
    return conf[conf.index("\nserver {") :]


def test_backends_are_the_planned_deployments_at_their_hosts_addresses(example):
    backends, _ = example
    by_id = {b["id"]: b for b in backends}
    assert set(by_id) == {
        "worker-general-1--general",
        "worker-korean-1--korean",
        "worker-fast-1--fast",
        "worker-ollama-1--korean-dev",
    }
    assert by_id["worker-fast-1--fast"] | {} == {
        "id": "worker-fast-1--fast",
        "host": "worker-fast-1",
        "deployment": "fast",
        "engine": "vllm",
        "pool": "fast",
        "model": "llama-3.1-8b",
        "address": "10.0.1.30",
        "port": 8000,
        "weight": 1,
    }
    # Ollama's served name is settings.model_name (the Modelfile's model), on Ollama's port.
    assert by_id["worker-ollama-1--korean-dev"]["model"] == "korean-dev"
    assert by_id["worker-ollama-1--korean-dev"]["port"] == 11434


def test_address_follows_the_engine_roles_choice():
    dep = {
        "name": "d",
        "engine": "llamacpp",
        "pool": "p",
        "port": 8080,
        "settings": {"served_model_name": "m"},
    }
    facts = {"ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}}}
    plan = {"provision_host_plan": {"deployments": [dep]}}

    def address(**hv) -> str:
        return gr.gateway_backends({"h": plan | facts | hv}, ["h"])[0]["address"]

    assert address() == "10.0.0.5"
    assert address(provision_engine_bind_address="10.9.9.9") == "10.9.9.9"
    assert address(provision_engine_bind_address="0.0.0.0") == "10.0.0.5"
    assert address(llamacpp_bind_address="10.8.8.8", provision_engine_bind_address="10.9.9.9") == "10.8.8.8"
    assert address(llamacpp_advertise_address="10.7.7.7", llamacpp_bind_address="0.0.0.0") == "10.7.7.7"
    assert (
        gr.gateway_backends({"h": plan | facts}, ["h"], overrides={"h": "192.168.1.1"})[0]["address"]
        == "192.168.1.1"
    )
    # No facts, no address: an error that says what to do; and the host is reported as missing.
    with pytest.raises(Exception, match="facts were not gathered"):
        gr.gateway_backends({"h": plan}, ["h"])
    assert gr.gateway_hosts_missing_address({"h": plan}, ["h"]) == ["h"]
    assert gr.gateway_hosts_missing_address({"h": plan | facts}, ["h"]) == []
    # A host --limit left unplanned takes its part of the fleet plan.
    assert gr.gateway_backends({"h": facts}, ["h"], plans={"h": {"deployments": [dep]}})[0]["id"] == "h--d"


def test_weight_comes_from_the_deployment():
    dep = {
        "name": "d",
        "engine": "vllm",
        "pool": "p",
        "port": 8000,
        "weight": 3,
        "settings": {"served_model_name": "m"},
    }
    hv = {"h": {"provision_host_plan": {"deployments": [dep]}, "provision_engine_bind_address": "10.0.0.1"}}
    (backend,) = gr.gateway_backends(hv, ["h"])
    routes = gr.gateway_routes({"p": {"path": "/v1/"}}, [backend])
    line = render("backend.conf.j2", routes, b=backend).splitlines()[-1]
    assert line == "server 10.0.0.1:8000 weight=3 max_fails=3 fail_timeout=30s;"
    drained = render("backend.conf.j2", routes, b=backend, _gateway_drained=["h--d"]).splitlines()[-1]
    assert drained == "server 10.0.0.1:8000 weight=3 max_fails=3 fail_timeout=30s down;"
    # The drain switch's regular expression (tasks/drain.yml) toggles exactly this suffix.
    drain_re = re.compile(r"^(server [^;]*?)( down)?;$")
    assert drain_re.sub(r"\1 down;", line) == drained
    assert drain_re.sub(r"\1;", drained) == line
    assert drain_re.sub(r"\1 down;", drained) == drained


def test_routes_pools_models_and_defaults(example):
    _, routes = example
    assert routes["default_pool"] == "general"
    assert routes["models"] == {
        "korean-dev": "assistant",
        "llama-3.1-8b": "fast",
        "llama-3.3-70b": "general",
        "qwen2.5-72b": "korean",
    }
    assert routes["paths"] == {"/v1/assistant/": "assistant", "/v1/fast/": "fast", "/v1/korean/": "korean"}
    assert routes["live"] == ["assistant", "fast", "general", "korean"]
    assert [m["id"] for m in routes["model_list"]["data"]] == sorted(routes["models"])
    assert routes["health"]["pools"]["fast"] == {
        "path": "/v1/fast/",
        "default": False,
        "models": ["llama-3.1-8b"],
        "backends": 1,
    }


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ({}, "provision_pools is empty"),
        ({"a": {"path": "/v1/"}, "b": {"path": "/v1/"}}, "share the path"),
        (
            {"a": {"path": "/v1/", "default": True}, "b": {"path": "/v1/b/", "default": True}},
            "more than one default",
        ),
        ({"chat": {"path": "/v1/chat/"}}, "collides with an OpenAI endpoint"),
        ({"a": {"path": "/v2/"}}, "is not /v1/"),
        ({"other": {"path": "/v1/"}}, "which provision_pools does not define"),
    ],
)
def test_inconsistent_pools_are_refused(pools, message):
    backend = {
        "id": "h--d",
        "host": "h",
        "deployment": "d",
        "pool": "a",
        "model": "m",
        "address": "10.0.0.1",
        "port": 1,
        "engine": "vllm",
        "weight": 1,
    }
    with pytest.raises(Exception, match=message):
        gr.gateway_routes(pools, [backend])


def test_two_backends_on_one_address_and_port_are_refused():
    b = {
        "id": "h--d",
        "host": "h",
        "deployment": "d",
        "pool": "a",
        "model": "m",
        "address": "10.0.0.1",
        "port": 1,
    }
    with pytest.raises(Exception, match=r"both listen on 10\.0\.0\.1:1"):
        gr.gateway_routes({"a": {"path": "/v1/"}}, [b, b | {"id": "h--e", "deployment": "e"}])


def test_a_model_in_two_pools_routes_to_the_default_pool():
    b1 = {
        "id": "h--a",
        "host": "h",
        "deployment": "a",
        "pool": "fast",
        "model": "m",
        "address": "10.0.0.1",
        "port": 1,
    }
    b2 = b1 | {"id": "h--b", "deployment": "b", "pool": "general", "port": 2}
    routes = gr.gateway_routes(
        {"fast": {"path": "/v1/fast/"}, "general": {"path": "/v1/", "default": True}}, [b1, b2]
    )
    assert routes["models"] == {"m": "general"}


def test_http_conf_is_the_field_guides_layout_made_safe(example):
    _, routes = example
    conf = render("gateway.conf.j2", routes)
    server = server_block(conf)
    # One upstream per pool, its backends included from one file each, keepalive after least_conn.
    for pool in ("general", "korean", "fast", "assistant"):
        upstream = re.search(rf"upstream gw_pool_{pool} {{\n(.*?)\n}}", conf, re.S)
        assert upstream, pool
        lines = [line.strip() for line in upstream.group(1).splitlines() if not line.strip().startswith("#")]
        assert lines == [
            "least_conn;",
            f"include provision-gateway/backends/{pool}/*.conf;",
            "keepalive 32;",
            "keepalive_timeout 60s;",
        ]
    # Streaming-safe proxying and retries only before the first byte.
    for directive in (
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        'proxy_set_header Authorization "";',
        "proxy_next_upstream error timeout non_idempotent;",
        "proxy_next_upstream_tries 2;",
        "listen 80 default_server;",
        "server_name llm-api.example.internal;",
    ):
        assert f"    {directive}\n" in server, directive
    # The field guide's read timeouts per pool (120 s general and korean, 30 s fast).
    for pool, timeout in (("general", 120), ("korean", 120), ("fast", 30), ("assistant", 120)):
        location = re.search(rf"location \^~ /_gw/{pool}/ {{\n(.*?)\n    }}", server, re.S).group(1)
        assert "internal;" in location
        assert f"proxy_pass http://gw_pool_{pool}/;" in location
        assert f"proxy_read_timeout {timeout}s;" in location
    # Inference endpoints under /v1/ and each pool path, through njs.
    assert (
        "location ~ ^/v1/(?:(?:assistant|fast|korean)/)?(?:chat/completions|completions|embeddings)$ {"
        in server
    )
    assert server.count("js_content gateway.route;") == 1
    # The catch-all answers 404 (engine admin paths: /metrics, /slots, /props, /api/...).
    assert re.search(r"location / {\n        return 404 '", server)
    assert "proxy_pass" not in server.split("location / {")[1]


def nginx_strings(conf: str, directive: str) -> list[str]:
    """The single-quoted argument of `directive ... '...';` lines, unescaped as nginx does."""
    found = []
    for match in re.finditer(rf"{directive} '((?:[^'\\]|\\.)*)';", conf):
        found.append(re.sub(r"\\(['\"\\])", r"\1", match.group(1)))
    return found


def test_generated_bodies_are_json_as_nginx_sends_them(example):
    _, routes = example
    conf = render("gateway.conf.j2", routes)
    bodies = [json.loads(s) for s in nginx_strings(conf, r"return \d+")]
    models = [b for b in bodies if b.get("object") == "list"]
    assert [m["id"] for m in models[0]["data"]] == [
        "korean-dev",
        "llama-3.1-8b",
        "llama-3.3-70b",
        "qwen2.5-72b",
    ]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in models[0]["data"])
    # /v1/<pool>/models lists that pool's models
    assert [[m["id"] for m in b["data"]] for b in models[1:]] == [
        ["korean-dev"],
        ["llama-3.1-8b"],
        ["qwen2.5-72b"],
    ]
    errors = [b["error"] for b in bodies if "error" in b]
    assert {e["code"] for e in errors} == {"upstream_unavailable", "upstream_timeout", "unknown_url"}
    auth = [json.loads(s) for s in nginx_strings(conf, r'(?:default|"")')]
    assert [a["error"]["code"] for a in auth] == ["invalid_api_key", "invalid_api_key"]
    assert all(a["error"]["type"] == "invalid_request_error" for a in auth)


def test_dollar_and_quote_in_a_description_cannot_break_the_config():
    b = {
        "id": "h--d",
        "host": "h",
        "deployment": "d",
        "pool": "a",
        "model": "m$x'y",
        "address": "10.0.0.1",
        "port": 1,
        "engine": "vllm",
        "weight": 1,
    }
    routes = gr.gateway_routes({"a": {"path": "/v1/", "description": "it's $5"}}, [b])
    conf = render("gateway.conf.j2", routes)
    for s in nginx_strings(conf, r"return 200"):
        assert "$" not in s and "'" not in s
        json.loads(s.replace("\\\\", "\\"))


def test_api_keys_are_required_by_every_route_but_health(example):
    _, routes = example
    server = server_block(render("gateway.conf.j2", routes))
    locations = re.findall(r"\n    location (.*?) {\n(.*?)\n    }", server, re.S)
    guarded = {name for name, body in locations if 'if ($gateway_key_name = "")' in body}
    assert guarded == {
        "= /v1/models",
        "= /v1/assistant/models",
        "= /v1/fast/models",
        "= /v1/korean/models",
        "~ ^/v1/(?:(?:assistant|fast|korean)/)?(?:chat/completions|completions|embeddings)$",
    }
    open_server = server_block(render("gateway.conf.j2", routes, gateway_require_api_key=False))
    assert "$gateway_key_name" not in open_server


def test_keys_are_stored_as_sha256_only(example):
    _, routes = example
    keys = render("keys.map.j2", routes)
    assert "sk-" not in keys
    for k in KEYS:
        assert f'"{hashlib.sha256(k["key"].encode()).hexdigest()}" "{k["name"]}";' in keys


def test_json_access_log_has_the_routing_fields(example):
    _, routes = example
    conf = render("gateway.conf.j2", routes)
    fmt = conf[conf.index("log_format provision_gateway escape=json") :]
    fmt = fmt[: fmt.index("'}';") + 4]
    fields = re.findall(r'"(\w+)":', fmt)
    assert fields == [
        "time",
        "request_id",
        "remote_addr",
        "key_name",
        "method",
        "uri",
        "status",
        "body_bytes_sent",
        "request_time",
        "pool",
        "model",
        "upstream_addr",
        "upstream_status",
        "upstream_response_time",
        "upstream_header_time",
    ]
    assert "http_authorization" not in fmt


def test_tls_and_extra_directives(example):
    _, routes = example
    conf = render(
        "gateway.conf.j2",
        routes,
        gateway_status_port=0,
        gateway_port=443,
        gateway_tls={"certificate": "/etc/ssl/gw.pem", "key": "/etc/ssl/private/gw.key"},
        gateway_extra_server_directives=["add_header X-Test 1;"],
        gateway_extra_http_directives=["limit_req_zone $binary_remote_addr zone=gw:10m rate=50r/s;"],
    )
    server = server_block(conf)
    assert "    listen 443 ssl default_server;\n" in server
    assert "    ssl_certificate /etc/ssl/gw.pem;\n" in server
    assert "    ssl_certificate_key /etc/ssl/private/gw.key;\n" in server
    assert server.rstrip().endswith(
        "    add_header X-Test 1;\n}\nlimit_req_zone $binary_remote_addr zone=gw:10m rate=50r/s;"
    )


def test_stub_status_is_on_loopback_only(example):
    _, routes = example
    conf = render("gateway.conf.j2", routes)
    status = conf[conf.index("listen 127.0.0.1:8081;") :]
    assert (
        "location = /nginx_status {\n        stub_status;\n        allow 127.0.0.1;\n        deny all;"
        in status
    )
    assert "listen 127.0.0.1" not in render("gateway.conf.j2", routes, gateway_status_port=0)


def test_njs_module_carries_the_routing_table(example):
    _, routes = example
    js = render("gateway.js.j2", routes)
    table = json.loads(re.search(r"^var ROUTES = (.*);$", js, re.M).group(1))
    assert table == {
        "models": routes["models"],
        "paths": routes["paths"],
        "live": routes["live"],
        "default_pool": "general",
        "unknown_model": "reject",
    }
    assert "export default {route: route, keyHash: keyHash};" in js
    assert "r.internalRedirect('/_gw/' + pool + '/v1/' + endpoint);" in js


def test_lab_inventory_plans_two_backends_in_one_pool(tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        textwrap.dedent("""
        all:
          vars:
            provision_models_dir: /srv/models
            provision_pools: {general: {path: /v1/, default: true, read_timeout_s: 60}}
          children:
            engines:
              hosts: {n1: {}, n2: {}}
              vars:
                provision_memory_gib: 2
                provision_deployments:
                  - {name: tiny, engine: llamacpp, model: tiny-llama-test, quantization: F32, context: 256,
                     concurrency: 2, pool: general}
            gateway:
              hosts: {gw: {}}
        """)
    )
    plan = extravars(plan_for(inventory))["provision_plan"]
    hostvars = {
        h: {"provision_host_plan": p, "ansible_facts": {"default_ipv4": {"address": f"10.0.0.{i}"}}}
        for i, (h, p) in enumerate(sorted(plan.items()), start=1)
    }
    backends = gr.gateway_backends(hostvars, sorted(plan))
    routes = gr.gateway_routes({"general": {"path": "/v1/", "default": True, "read_timeout_s": 60}}, backends)
    assert [(b["id"], b["address"], b["port"]) for b in routes["pools"][0]["backends"]] == [
        ("n1--tiny", "10.0.0.2", 8080),
        ("n2--tiny", "10.0.0.3", 8080),
    ]
    conf = render("gateway.conf.j2", routes)
    # No pool path other than /v1/: the inference location has no pool alternative.
    assert "location ~ ^/v1/(?:chat/completions|completions|embeddings)$ {" in conf

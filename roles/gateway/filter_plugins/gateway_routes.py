"""The gateway's routing table, computed from the inventory (role gateway).

* ``gateway_backends(hostvars, hosts, plans, overrides)`` -> one item per planned deployment of
  ``hosts``: ``{id, host, deployment, engine, pool, model, address, port, weight}``. The plan of
  a host is ``hostvars[host].provision_host_plan`` (set by playbooks/_plan.yml), else
  ``plans[host]`` (the whole fleet's plan, for hosts a ``--limit`` left out). The address is the
  one the engine listens on, as the engine roles choose it (docs/engines.md): ``overrides[host]``,
  else ``<engine>_advertise_address``, else ``<engine>_bind_address``, else
  ``provision_engine_bind_address`` (not 0.0.0.0 / ::), else the host's default IPv4 address.
* ``gateway_routes(pools, backends)`` -> ``{pools, models, default_pool, paths, live}``:
  each pool with its upstream name, read timeout, backends and served models; a model served by
  several pools routes to the default pool if it is one of them, else to the first by name;
  ``paths`` maps each pool path other than /v1/ to its pool, ``live`` lists pools with backends,
  ``model_list`` and ``health`` are the bodies of GET /v1/models and GET /health.

Both raise AnsibleFilterError naming the problem and the fix. Plain Python: the unit tests
(tests/unit/test_gateway_*.py) call them with the planner's output.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - the unit tests import ansible too
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

# The OpenAI endpoints the gateway forwards; a pool name equal to their first segment would
# make /v1/<pool>/... ambiguous.
ENDPOINTS = ("chat/completions", "completions", "embeddings")
RESERVED_POOL_NAMES = {"chat", "completions", "embeddings", "models", "health"}
WILDCARDS = {"", "0.0.0.0", "::", "[::]"}
SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
POOL_PATH = re.compile(r"^/v1/([a-z0-9-]+/)?$")


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def backend_id(host: str, deployment: str) -> str:
    """The file name of a backend: <host>--<deployment>, safe characters only."""
    return SAFE_ID.sub("_", f"{host}--{deployment}")


def _address(host: str, hv: Any, engine: str, overrides: Mapping[str, str]) -> str:
    if overrides.get(host):
        return str(overrides[host])
    for name in (f"{engine}_advertise_address", f"{engine}_bind_address", "provision_engine_bind_address"):
        value = str(_get(hv, name, "")).strip()
        if value not in WILDCARDS:
            return value
    facts = _get(hv, "ansible_facts", {})
    ipv4 = _get(facts, "default_ipv4", {}) or _get(hv, "ansible_default_ipv4", {})
    address = _get(ipv4, "address", "")
    if not address:
        # no facts (the host was unreachable when they were gathered): the address Ansible
        # connects to, when it is an IP address, keeps the host's backend in the configuration
        # (passive health takes it out while it is down)
        fallback = str(_get(hv, "ansible_host", "")).strip()
        try:
            ipaddress.ip_address(fallback)
            return fallback
        except ValueError:
            pass
        raise AnsibleFilterError(
            f"gateway: no address for {host}'s deployments: its facts were not gathered (the gateway "
            f"play gathers them) and neither provision_engine_bind_address nor "
            f"gateway_backend_addresses['{host}'] is set"
        )
    return str(address)


def gateway_backends(
    hostvars: Any,
    hosts: list[str],
    plans: Mapping[str, Any] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    plans = plans or {}
    overrides = overrides or {}
    backends: list[dict[str, Any]] = []
    for host in hosts:
        hv = _get(hostvars, host, {})
        plan = _get(hv, "provision_host_plan") or _get(plans, host, {})
        for dep in _get(plan, "deployments", []) or []:
            name, engine = dep["name"], dep["engine"]
            settings = dep.get("settings") or {}
            model = settings.get("model_name") if engine == "ollama" else settings.get("served_model_name")
            if not model:
                key = "model_name" if engine == "ollama" else "served_model_name"
                raise AnsibleFilterError(
                    f"gateway: deployment {name} on {host} has no served model name in its settings "
                    f"({key}): is it the planner's dict?"
                )
            weight = int(dep.get("weight") or 1)
            if not 1 <= weight <= 100:
                raise AnsibleFilterError(
                    f"gateway: deployment {name} on {host}: weight {weight} is not 1..100"
                )
            backends.append(
                {
                    "id": backend_id(host, name),
                    "host": host,
                    "deployment": name,
                    "engine": engine,
                    "pool": dep["pool"],
                    "model": str(model),
                    "address": _address(host, hv, engine, overrides),
                    "port": int(dep["port"]),
                    "weight": weight,
                }
            )
    return backends


def gateway_hosts_missing_address(
    hostvars: Any,
    hosts: list[str],
    plans: Mapping[str, Any] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> list[str]:
    """Hosts with planned deployments whose address is not known yet (their facts are needed)."""
    missing = []
    for host in hosts:
        hv = _get(hostvars, host, {})
        plan = _get(hv, "provision_host_plan") or _get(plans or {}, host, {})
        for dep in _get(plan, "deployments", []) or []:
            try:
                _address(host, hv, dep["engine"], overrides or {})
            except AnsibleFilterError:
                missing.append(host)
                break
    return missing


def gateway_routes(pools: Mapping[str, Any], backends: list[Mapping[str, Any]]) -> dict[str, Any]:
    if not pools:
        raise AnsibleFilterError(
            "gateway: provision_pools is empty: define at least one pool (name: {path: /v1/})"
        )
    paths: dict[str, str] = {}
    for name, pool in pools.items():
        path = str(_get(pool, "path", ""))
        if not POOL_PATH.match(path):
            raise AnsibleFilterError(f"gateway: pool {name}: path {path!r} is not /v1/ or /v1/<name>/")
        if name in RESERVED_POOL_NAMES or path.strip("/").split("/")[-1] in RESERVED_POOL_NAMES:
            raise AnsibleFilterError(
                f"gateway: pool {name} ({path}) collides with an OpenAI endpoint name: rename it"
            )
        if path in paths:
            raise AnsibleFilterError(f"gateway: pools {paths[path]} and {name} share the path {path}")
        paths[path] = name
    defaults = [n for n, p in pools.items() if _get(p, "default", False) or _get(p, "path") == "/v1/"]
    if len(defaults) > 1:
        raise AnsibleFilterError(f"gateway: more than one default pool: {', '.join(sorted(defaults))}")
    for b in backends:
        if b["pool"] not in pools:
            raise AnsibleFilterError(
                f"gateway: deployment {b['deployment']} on {b['host']} serves pool {b['pool']!r}, "
                f"which provision_pools does not define ({', '.join(sorted(pools))})"
            )
    seen: dict[tuple[str, int], str] = {}
    for b in backends:
        key = (b["address"], b["port"])
        if key in seen:
            raise AnsibleFilterError(
                f"gateway: {b['id']} and {seen[key]} both listen on {b['address']}:{b['port']}"
            )
        seen[key] = b["id"]
    default_pool = defaults[0] if defaults else None
    out_pools = []
    for name in sorted(pools):
        pool = pools[name]
        members = sorted((b for b in backends if b["pool"] == name), key=lambda b: b["id"])
        out_pools.append(
            {
                "name": name,
                "path": str(pool["path"]),
                "upstream": f"gw_pool_{name}",
                "read_timeout_s": int(_get(pool, "read_timeout_s", 120)),
                "description": str(_get(pool, "description", "")),
                "default": name == default_pool,
                "backends": members,
                "models": sorted({b["model"] for b in members}),
            }
        )
    models: dict[str, str] = {}
    for pool in sorted(out_pools, key=lambda p: (not p["default"], p["name"])):
        if not pool["backends"]:
            continue
        for model in pool["models"]:
            models.setdefault(model, pool["name"])
    model_list = [
        {"id": model, "object": "model", "created": 0, "owned_by": "provision", "pool": pool}
        for model, pool in sorted(models.items())
    ]
    for p in out_pools:
        p["model_list"] = {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "provision", "pool": p["name"]}
                for m in p["models"]
            ]
            if p["backends"]
            else [],
        }
    health = {
        "status": "ok",
        "pools": {
            p["name"]: {
                "path": p["path"],
                "default": p["default"],
                "models": p["models"],
                "backends": len(p["backends"]),
            }
            for p in out_pools
        },
    }
    return {
        "pools": out_pools,
        # GET /v1/models (OpenAI's list format) and GET /health, answered by the gateway
        "model_list": {"object": "list", "data": model_list},
        "health": health,
        "models": dict(sorted(models.items())),
        "default_pool": default_pool,
        # pool path (other than /v1/) -> pool; pools with at least one backend
        "paths": {p["path"]: p["name"] for p in out_pools if p["path"] != "/v1/"},
        "live": [p["name"] for p in out_pools if p["backends"]],
    }


def gateway_drain_item(pair: Any, host: str) -> dict[str, Any]:
    """(gateway host, deployment dict) -> what tasks_from drain switches on that gateway."""
    gateway, dep = pair
    return {
        "gateway": gateway,
        "host": host,
        "deployment": dep["name"],
        "pool": dep["pool"],
        "id": backend_id(host, dep["name"]),
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "gateway_backends": gateway_backends,
            "gateway_hosts_missing_address": gateway_hosts_missing_address,
            "gateway_routes": gateway_routes,
            "gateway_backend_id": backend_id,
            "gateway_drain_item": gateway_drain_item,
        }

"""Read a standard Ansible YAML inventory into the fleet schema, with precise errors.

Variable precedence follows Ansible's defaults: `all` < parent groups < child groups
(deeper groups win, then `ansible_group_priority`, then name) < host, with
`group_vars/` and `host_vars/` files beside the inventory overriding inventory vars of the
same level. Every problem names the file, the YAML path, the reason and the fix.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from provision.errors import InvalidInput, Problem
from provision.schema import (
    FLEET_VARS,
    HOST_VARS,
    Fleet,
    Gateway,
    Host,
    Monitoring,
)
from provision.yamlsource import PathKey, Source, YamlError, format_path, load_yaml

GROUP_KEYS = ("hosts", "children", "vars")
KNOWN_VARS = {**HOST_VARS, **FLEET_VARS}


@dataclass
class Origin:
    """Where one variable's value was written."""

    source: Source
    path: PathKey

    def problem(self, sub: PathKey, message: str, fix: str) -> Problem:
        full = (*self.path, *sub)
        return Problem(
            file=self.source.file,
            path=format_path(full),
            message=message,
            fix=fix,
            line=self.source.line(full),
        )


@dataclass
class Group:
    name: str
    vars: dict[str, tuple[Any, Origin]] = field(default_factory=dict)
    children: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    priority: int = 1


@dataclass
class RawInventory:
    file: str
    groups: dict[str, Group]
    host_vars: dict[str, dict[str, tuple[Any, Origin]]]
    problems: list[Problem]


def _problem(src: Source, path: PathKey, message: str, fix: str) -> Problem:
    return Problem(src.file, format_path(path), message, fix, src.line(path))


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "empty"}.get(
        type(value), type(value).__name__
    )


class _Reader:
    def __init__(self, src: Source) -> None:
        self.src = src
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.host_vars: dict[str, dict[str, tuple[Any, Origin]]] = {}
        self.problems: list[Problem] = []

    def read_vars(self, data: Any, path: PathKey, target: dict[str, tuple[Any, Origin]]) -> None:
        if data is None:
            return
        if not isinstance(data, dict):
            self.problems.append(
                _problem(
                    self.src,
                    path,
                    f"vars must be a mapping, found {_type_name(data)}",
                    "write vars as 'name: value' lines",
                )
            )
            return
        for key, value in data.items():
            target[key] = (value, Origin(self.src, (*path, key)))

    def read_group(self, name: str, data: Any, path: PathKey) -> None:
        group = self.groups.setdefault(name, Group(name))
        if data is None:
            return
        if not isinstance(data, dict):
            self.problems.append(
                _problem(
                    self.src,
                    path,
                    f"group '{name}' must be a mapping of hosts/children/vars, found {_type_name(data)}",
                    "indent the group's 'hosts:', 'children:' or 'vars:' under its name",
                )
            )
            return
        for key in data:
            if key not in GROUP_KEYS:
                close = difflib.get_close_matches(key, GROUP_KEYS, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.problems.append(
                    _problem(
                        self.src,
                        (*path, key),
                        f"unknown key '{key}' in group '{name}'",
                        f"{hint}a group holds only hosts:, children: and vars:",
                    )
                )
        hosts = data.get("hosts")
        if hosts is not None:
            if not isinstance(hosts, dict):
                self.problems.append(
                    _problem(
                        self.src,
                        (*path, "hosts"),
                        f"'hosts' must be a mapping of host names, found {_type_name(hosts)}",
                        "write each host as 'name:' (or 'name: {vars}') on its own line",
                    )
                )
            else:
                for host, hvars in hosts.items():
                    group.hosts.add(host)
                    self.read_vars(hvars, (*path, "hosts", host), self.host_vars.setdefault(host, {}))
        self.read_vars(data.get("vars"), (*path, "vars"), group.vars)
        if "ansible_group_priority" in group.vars:
            prio = group.vars["ansible_group_priority"][0]
            group.priority = prio if isinstance(prio, int) else 1
        children = data.get("children")
        if children is not None:
            if not isinstance(children, dict):
                self.problems.append(
                    _problem(
                        self.src,
                        (*path, "children"),
                        f"'children' must be a mapping of group names, found {_type_name(children)}",
                        "write each child group as 'name:'",
                    )
                )
            else:
                for child, cdata in children.items():
                    group.children.add(child)
                    self.read_group(child, cdata, (*path, "children", child))


def _load(file: Path, display: str) -> tuple[Any, Source]:
    try:
        return load_yaml(file, display=display)
    except YamlError as exc:
        raise InvalidInput([Problem(exc.file, "", exc.message, exc.fix, exc.line)]) from None


def _side_files(base: Path, kind: str, name: str) -> list[Path]:
    """group_vars/NAME.yml, .yaml, .json, or every file in group_vars/NAME/."""
    folder = base / kind
    found = [folder / f"{name}{ext}" for ext in ("", ".yml", ".yaml", ".json")]
    files = [p for p in found if p.is_file()]
    if (folder / name).is_dir():
        files += sorted(p for p in (folder / name).iterdir() if p.suffix in (".yml", ".yaml", ".json"))
    return files


def read_inventory(path: Path) -> RawInventory:
    display = str(path)
    data, src = _load(path, display)
    if data is None:
        raise InvalidInput(
            [
                Problem(
                    display,
                    "",
                    "the inventory is empty",
                    "start from inventory/example.yml or inventory/lab.yml",
                )
            ]
        )
    if not isinstance(data, dict):
        raise InvalidInput(
            [
                Problem(
                    display,
                    "",
                    f"an inventory must be a mapping of groups, found {_type_name(data)}",
                    "the file starts with 'all:' and its groups",
                    src.line(()),
                )
            ]
        )
    reader = _Reader(src)
    for name, gdata in data.items():
        reader.read_group(name, gdata, (name,))
    for name in list(reader.groups):
        if name != "all":
            reader.groups["all"].children.add(name)
    # group_vars/ and host_vars/ beside the inventory
    for kind, names in (("group_vars", list(reader.groups)), ("host_vars", list(reader.host_vars))):
        for name in names:
            for side in _side_files(path.parent, kind, name):
                sdata, ssrc = _load(side, str(side))
                target = reader.groups[name].vars if kind == "group_vars" else reader.host_vars[name]
                sub = _Reader(ssrc)
                sub.read_vars(sdata, (), target)
                reader.problems += sub.problems
    return RawInventory(display, reader.groups, reader.host_vars, reader.problems)


def _depths(groups: dict[str, Group]) -> dict[str, int]:
    depth = {"all": 0}
    frontier = ["all"]
    for _ in range(len(groups) + 1):
        nxt = []
        for name in frontier:
            for child in groups.get(name, Group(name)).children:
                if depth.get(child, -1) < depth[name] + 1:
                    depth[child] = depth[name] + 1
                    nxt.append(child)
        frontier = nxt
        if not frontier:
            break
    return depth


def _host_groups(groups: dict[str, Group]) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = {}
    for g in groups.values():
        for child in g.children:
            parents.setdefault(child, set()).add(g.name)
    result: dict[str, set[str]] = {}
    for g in groups.values():
        for host in g.hosts:
            todo, seen = [g.name], set()
            while todo:
                cur = todo.pop()
                if cur in seen:
                    continue
                seen.add(cur)
                todo += parents.get(cur, set())
            result.setdefault(host, set()).update(seen | {"all"})
    return result


def _suggest_var(key: str) -> str | None:
    close = difflib.get_close_matches(key, list(KNOWN_VARS), n=1, cutoff=0.8)
    return close[0] if close else None


def _typo_problems(name: str, variables: dict[str, tuple[Any, Origin]]) -> list[Problem]:
    problems = []
    for key, (_, origin) in variables.items():
        if key in KNOWN_VARS:
            continue
        guess = _suggest_var(key)
        if guess or key.startswith("provision_"):
            hint = (
                f"did you mean '{guess}'?"
                if guess
                else ("known provision variables: " + ", ".join(sorted(KNOWN_VARS)))
            )
            problems.append(origin.problem((), f"unknown variable '{key}' on {name}", hint))
    return problems


def pydantic_problems(exc: ValidationError, origin: Origin, model_fields: Any = None) -> list[Problem]:
    """Turn a pydantic error into Problems that point into the YAML."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            fields = _fields_at(model_fields, loc[:-1])
            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            fix = (
                f"did you mean '{close[0]}'?"
                if close
                else ("allowed keys: " + ", ".join(sorted(fields)) if fields else "remove it")
            )
            problems.append(origin.problem(loc, f"unknown key '{key}'", fix))
        elif kind == "missing":
            problems.append(origin.problem(loc, f"required key '{loc[-1]}' is missing", f"add '{loc[-1]}:'"))
        elif kind == "literal_error":
            allowed = err.get("ctx", {}).get("expected", "")
            got = err.get("input")
            close = difflib.get_close_matches(
                str(got), [a.strip(" '") for a in str(allowed).replace(" or ", ",").split(",")], n=1
            )
            fix = f"did you mean '{close[0]}'? " if close else ""
            problems.append(origin.problem(loc, f"'{got}' is not allowed here", f"{fix}use one of {allowed}"))
        elif kind in ("model_type", "model_attributes_type", "dict_type", "list_type"):
            got = err.get("input")
            want = "a list ('- item' lines)" if kind == "list_type" else "a mapping (key: value lines)"
            problems.append(
                origin.problem(
                    loc,
                    f"expected {want}, found {_type_name(got)}"
                    + (f" {got!r}" if not isinstance(got, dict | list) else ""),
                    f"write {want}",
                )
            )
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else _type_name(got)
            problems.append(origin.problem(loc, f"{err['msg']} (got {shown})", _fix_for(kind, err)))
    return problems


def _fix_for(kind: str, err: dict) -> str:
    ctx = err.get("ctx", {})
    if kind.endswith("_type") or kind.endswith("_parsing"):
        want = kind.split("_")[0]
        return {
            "int": "write a whole number",
            "float": "write a number",
            "string": "write text",
            "bool": "write true or false",
            "dict": "write a mapping (key: value lines)",
            "list": "write a list ('- item' lines)",
            "model": "write a mapping (key: value lines)",
        }.get(want, "fix the value's type")
    if "greater_than" in kind or "less_than" in kind:
        bounds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ctx.items())
        return f"use a value {bounds}"
    if kind == "string_pattern_mismatch":
        return f"the value must match {ctx.get('pattern')}"
    return "fix the value"


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """Names of the fields allowed at loc inside a pydantic model type (best effort)."""
    import typing

    from pydantic import BaseModel

    cur = model
    for part in loc:
        origin = typing.get_origin(cur)
        if origin in (list, dict):
            cur = typing.get_args(cur)[-1]
            if isinstance(part, int | str) and not (isinstance(cur, type) and issubclass(cur, BaseModel)):
                continue
        if isinstance(cur, type) and issubclass(cur, BaseModel) and part in cur.model_fields:
            ann = cur.model_fields[part].annotation
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            cur = args[0] if typing.get_origin(ann) is typing.Union and args else ann
    while typing.get_origin(cur) in (list, dict):
        cur = typing.get_args(cur)[-1]
    args = [a for a in typing.get_args(cur) if a is not type(None)]
    if args and not (isinstance(cur, type)):
        cur = args[0]
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return []


@functools.cache
def _adapter(var: str) -> TypeAdapter:
    return TypeAdapter(KNOWN_VARS[var])


def _validate(var: str, value: Any, origin: Origin, problems: list[Problem]) -> Any:
    typ = KNOWN_VARS[var]
    try:
        return _adapter(var).validate_python(value)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, origin, typ))
        return None


def load_fleet(path: Path) -> Fleet:
    """Parse and validate an inventory file. Raises InvalidInput listing every problem."""
    raw = read_inventory(path)
    problems = list(raw.problems)
    depth = _depths(raw.groups)
    memberships = _host_groups(raw.groups)
    for host in raw.host_vars:
        memberships.setdefault(host, {"all", "ungrouped"})

    for name, group in raw.groups.items():
        problems += _typo_problems(f"group '{name}'", group.vars)
        if name != "all":
            for var in FLEET_VARS:
                if var in group.vars:
                    problems.append(
                        group.vars[var][1].problem(
                            (),
                            f"'{var}' is fleet-wide but is set on group '{name}'",
                            "move it under all.vars (or group_vars/all.yml)",
                        )
                    )

    all_vars = raw.groups["all"].vars
    fleet_values: dict[str, Any] = {}
    for var in FLEET_VARS:
        if var in all_vars:
            value, origin = all_vars[var]
            fleet_values[var] = _validate(var, value, origin, problems)

    hosts: dict[str, Host] = {}
    origins: dict[tuple[str, str], Origin] = {}
    for host in sorted(raw.host_vars):
        groups = memberships[host]
        ordered = sorted(groups, key=lambda g: (depth.get(g, 1), raw.groups[g].priority, g))
        effective: dict[str, tuple[Any, Origin]] = {}
        for g in ordered:
            effective.update(raw.groups[g].vars)
        hvars = raw.host_vars[host]
        problems += _typo_problems(f"host '{host}'", hvars)
        for var in FLEET_VARS:
            if var in hvars:
                problems.append(
                    hvars[var][1].problem(
                        (), f"'{var}' is fleet-wide but is set on host '{host}'", "move it under all.vars"
                    )
                )
        effective.update(hvars)
        fields: dict[str, Any] = {}
        for var, key in (
            ("provision_gpus", "gpus"),
            ("provision_deployments", "deployments"),
            ("provision_models_dir", "models_dir"),
            ("provision_memory_gib", "memory_gib"),
            ("provision_models_disk_gib", "models_disk_gib"),
        ):
            if var in effective:
                value, origin = effective[var]
                checked = _validate(var, value, origin, problems)
                if checked is not None:
                    fields[key] = checked
        hosts[host] = Host(name=host, groups=sorted(groups - {"all"}), **fields)
        for var, (_, origin) in effective.items():
            if var in HOST_VARS:
                origins[(host, var)] = origin

    if problems:
        raise InvalidInput(_dedupe(problems))
    fleet = Fleet(
        file=raw.file,
        hosts=hosts,
        pools=fleet_values.get("provision_pools") or {},
        gateway=fleet_values.get("provision_gateway") or Gateway(),
        monitoring=fleet_values.get("provision_monitoring") or Monitoring(),
    )
    fleet._origins.update(origins)
    for var in FLEET_VARS:
        if var in all_vars:
            fleet._origins[("all", var)] = all_vars[var][1]
    return fleet


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.file, p.path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out

"""Check that every metric name the alert rules and dashboards query is exposed by a target.

Usage: ``python metric_names.py RULES.yml DASHBOARDS_DIR EXPOSED [EXPOSED ...]``

RULES.yml is a rendered rules file (roles/prometheus/templates/provision.rules.yml.j2),
DASHBOARDS_DIR holds the Grafana dashboards (roles/grafana/files/dashboards), and each
EXPOSED file lists metric names, one per line (``#`` comments allowed) or as a JSON list (the
``data`` of Prometheus's /api/v1/label/__name__/values). Prints one JSON line with the names
used and missing; exits 1 when a name is used but exposed by nothing.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

# PromQL words that look like metric names but are not.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "le",
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)")
_GRAFANA_VARS = re.compile(r"\$\w+|\$\{[^}]*\}")


def names_in(expr: str) -> set[str]:
    """Metric names an expression selects (function names, keywords, labels dropped)."""
    text = _GRAFANA_VARS.sub("x", expr)
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub(" ", text)
    found = set()
    for match in _NAME.finditer(text):
        word = match.group(1)
        if text[match.end() :].lstrip().startswith("("):  # a function call
            continue
        if word.lower() in KEYWORDS or re.fullmatch(r"\d.*", word):
            continue
        found.add(word)
    return found


def rule_exprs(rules: dict) -> list[str]:
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_exprs(dashboard: dict) -> list[str]:
    exprs = []
    for panel in dashboard.get("panels", []):
        exprs += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query or "")
        if match:
            exprs.append(match.group(1))
    return exprs


def exposed_names(path: Path) -> set[str]:
    text = path.read_text()
    if text.lstrip().startswith("["):
        return set(json.loads(text))
    return {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}


def used_names(rules_file: Path, dashboards_dir: Path) -> dict[str, set[str]]:
    """{source: names} for the rules file and each dashboard."""
    used = {rules_file.name: set().union(*map(names_in, rule_exprs(yaml.safe_load(rules_file.read_text()))))}
    for dashboard in sorted(dashboards_dir.glob("*.json")):
        used[dashboard.name] = set().union(*map(names_in, dashboard_exprs(json.loads(dashboard.read_text()))))
    return used


def main(argv: list[str]) -> int:
    used = used_names(Path(argv[1]), Path(argv[2]))
    exposed = set().union(*(exposed_names(Path(p)) for p in argv[3:]))
    missing = {src: sorted(names - exposed) for src, names in used.items() if names - exposed}
    print(json.dumps({"used": {s: sorted(n) for s, n in used.items()}, "missing": missing}))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

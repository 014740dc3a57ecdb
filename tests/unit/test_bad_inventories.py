"""Every malformed inventory: exit 2, file + YAML path + reason + fix, no traceback.

Each file in tests/inventories/bad/ states what its message must contain in header comments
(`# expect:`, `# path:`, `# fix:`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app

BAD = Path(__file__).resolve().parents[1] / "inventories" / "bad"
CASES = sorted(BAD.glob("*.yml"))


def expectations(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"# (expect|path|fix): (.*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_inventory_exits_2_with_a_pointed_message(case: Path):
    result = CliRunner().invoke(app, ["check", str(case)])
    text = result.output + (result.stderr if hasattr(result, "stderr") else "")
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    assert str(case) in text, "the message names the file"
    assert "fix:" in text, "the message says how to fix it"
    want = expectations(case)
    if "expect" in want:
        assert want["expect"] in text
    if "fix" in want:
        assert want["fix"] in text


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_inventory_json_names_file_and_path(case: Path):
    result = CliRunner().invoke(app, ["check", str(case), "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["deployments"] == []
    assert data["errors"], "at least one error"
    for e in data["errors"]:
        assert e["file"] == str(case)
        assert e["message"] and e["fix"]
    want = expectations(case)
    if "path" in want:
        assert any(want["path"] in e["path"] for e in data["errors"]), data["errors"]
    if "expect" in want:
        assert any(want["expect"] in e["message"] for e in data["errors"]), data["errors"]


def test_real_process_prints_no_traceback_and_exits_2():
    case = BAD / "01_yaml_syntax.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "provision", "check", str(case)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{case}:5" in proc.stderr or f"{case}:6" in proc.stderr

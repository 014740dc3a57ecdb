"""Tests for roles/provision_lib/library/provision_json_merge.py (imported by path).

The pure functions (merge, parse, plan, atomic write) are tested directly;
the module as a whole runs in-process with its arguments patched in, the way
Ansible's own module unit tests do it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

MODULE_PATH = Path(__file__).resolve().parents[2] / "roles/provision_lib/library/provision_json_merge.py"


def _load():
    spec = importlib.util.spec_from_file_location("provision_json_merge", MODULE_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jfm = _load()


# --- merge logic -----------------------------------------------------------------


def test_deep_merge_merges_mappings_recursively_and_keeps_other_keys() -> None:
    base = {"log-opts": {"max-size": "10m", "labels": "team"}, "runtimes": {"nvidia": {"path": "x"}}}
    overlay = {"log-opts": {"max-size": "100m", "max-file": "3"}, "live-restore": True}
    merged = jfm.deep_merge(base, overlay)
    assert merged == {
        "log-opts": {"max-size": "100m", "labels": "team", "max-file": "3"},
        "runtimes": {"nvidia": {"path": "x"}},
        "live-restore": True,
    }


def test_deep_merge_replaces_lists_and_scalars() -> None:
    base = {"dns": ["10.0.0.1", "10.0.0.2"], "debug": True, "x": {"a": 1}}
    merged = jfm.deep_merge(base, {"dns": ["10.0.0.9"], "debug": False, "x": "flat"})
    assert merged == {"dns": ["10.0.0.9"], "debug": False, "x": "flat"}


def test_deep_merge_does_not_modify_its_arguments() -> None:
    base = {"a": {"b": [1]}}
    overlay = {"a": {"c": {"d": 1}}}
    merged = jfm.deep_merge(base, overlay)
    merged["a"]["b"].append(2)
    merged["a"]["c"]["d"] = 5
    assert base == {"a": {"b": [1]}}
    assert overlay == {"a": {"c": {"d": 1}}}


def test_deep_merge_keeps_key_order_and_appends_new_keys() -> None:
    merged = jfm.deep_merge({"z": 1, "a": 2}, {"m": 3, "z": 4})
    assert list(merged) == ["z", "a", "m"]


def test_canonical_tells_true_from_one() -> None:
    assert jfm.canonical({"a": True}) != jfm.canonical({"a": 1})
    assert jfm.canonical({"a": 1, "b": 2}) == jfm.canonical({"b": 2, "a": 1})


@pytest.mark.parametrize("text", ["", "   \n", "\n"])
def test_blank_file_counts_as_empty_object(text: str) -> None:
    assert jfm.parse_document(text, "f") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "does not hold valid JSON"),
        ('{"a": 1,}', "does not hold valid JSON"),
        ("[1, 2]", "not an object"),
    ],
)
def test_invalid_document_fails_clearly(text: str, fragment: str) -> None:
    with pytest.raises(jfm.JsonFileError) as info:
        jfm.parse_document(text, "/etc/docker/daemon.json")
    message = str(info.value)
    assert fragment in message
    assert "/etc/docker/daemon.json" in message
    assert "left unchanged" in message


# --- plan and atomic write -----------------------------------------------------------


def test_plan_for_absent_file_creates(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    old, merged, text, changed = jfm.plan(str(path), {"live-restore": True})
    assert old is None and changed
    assert merged == {"live-restore": True}
    assert json.loads(text) == merged and text.endswith("\n")


def test_plan_ignores_formatting_and_key_order(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"b":1,   "a": {"y": 2, "x": 1}}')
    _old, _merged, _text, changed = jfm.plan(str(path), {"a": {"x": 1}})
    assert not changed


def test_write_atomic_replaces_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("{}\n")
    path.chmod(0o640)
    inode_before = path.stat().st_ino
    jfm.write_atomic(str(path), '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    # a rename, not an in-place rewrite: a new inode, and no temp file left behind
    assert path.stat().st_ino != inode_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]


def test_write_atomic_new_file_honours_umask(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    old = os.umask(0o022)
    try:
        jfm.write_atomic(str(path), "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_atomic_cleans_up_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"keep": true}\n')

    def boom(src: str, dst: str) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(jfm.os, "replace", boom)
    with pytest.raises(OSError):
        jfm.write_atomic(str(path), '{"new": 1}\n')
    assert path.read_text() == '{"keep": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]


# --- the module, run in-process ------------------------------------------------------


class _Exit(Exception):
    def __init__(self, result: dict[str, Any], failed: bool) -> None:
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


def run_module(monkeypatch: pytest.MonkeyPatch, check_mode: bool = False, diff: bool = False, **args: Any):
    """Run the module's main() with ``args``; returns (result, failed)."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def exit_json(self, **kwargs: Any) -> None:
        raise _Exit(kwargs, failed=False)

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        raise _Exit({"msg": msg, **kwargs}, failed=True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    internal = {"_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args({**args, **internal}), pytest.raises(_Exit) as info:
        jfm.main()
    return info.value.result, info.value.failed


def test_module_creates_file_then_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "daemon.json"
    data = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m", "max-file": "3"},
        "live-restore": True,
    }
    result, failed = run_module(monkeypatch, path=str(path), data=data, mode="0644")
    assert not failed and result["changed"] and result["created"]
    assert json.loads(path.read_text()) == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    mtime = path.stat().st_mtime_ns

    result, failed = run_module(monkeypatch, path=str(path), data=data, mode="0644")
    assert not failed and not result["changed"]
    assert path.stat().st_mtime_ns == mtime


def test_module_preserves_foreign_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "daemon.json"
    foreign = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}, "log-opts": {"labels": "a"}}
    path.write_text(json.dumps(foreign))
    result, failed = run_module(monkeypatch, path=str(path), data={"log-opts": {"max-file": "3"}})
    assert not failed and result["changed"]
    on_disk = json.loads(path.read_text())
    assert on_disk == {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
        "log-opts": {"labels": "a", "max-file": "3"},
    }
    assert result["content"] == on_disk


def test_module_check_mode_does_not_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"a": 1}\n')
    result, failed = run_module(monkeypatch, check_mode=True, diff=True, path=str(path), data={"b": 2})
    assert not failed and result["changed"]
    assert path.read_text() == '{"a": 1}\n'
    assert result["diff"]["before"] == '{"a": 1}\n'
    assert json.loads(result["diff"]["after"]) == {"a": 1, "b": 2}


def test_module_check_mode_with_missing_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "absent-dir" / "daemon.json"
    result, failed = run_module(monkeypatch, check_mode=True, path=str(path), data={"b": 2})
    assert not failed and result["changed"]
    assert not path.parent.exists()


def test_module_fails_on_missing_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "absent-dir" / "daemon.json"
    result, failed = run_module(monkeypatch, path=str(path), data={"b": 2})
    assert failed and "does not exist" in result["msg"]


def test_module_invalid_json_fails_and_leaves_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"log-opts": ')
    result, failed = run_module(monkeypatch, path=str(path), data={"live-restore": True})
    assert failed
    assert "does not hold valid JSON" in result["msg"] and str(path) in result["msg"]
    assert path.read_text() == '{"log-opts": '


def test_module_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"a": 1}\n')
    result, failed = run_module(monkeypatch, path=str(path), data={"a": 2}, backup=True)
    assert not failed and result["changed"]
    backup = Path(result["backup_file"])
    assert backup.read_text() == '{"a": 1}\n'
    # no backup when nothing changes
    result, failed = run_module(monkeypatch, path=str(path), data={"a": 2}, backup=True)
    assert not failed and not result["changed"] and "backup_file" not in result


def test_module_changes_mode_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"a": 1}\n')
    path.chmod(0o600)
    result, failed = run_module(monkeypatch, path=str(path), data={"a": 1}, mode="0644")
    assert not failed and result["changed"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == '{"a": 1}\n'


def test_module_rejects_a_directory_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, failed = run_module(monkeypatch, path=str(tmp_path), data={"a": 1})
    assert failed and "is a directory" in result["msg"]

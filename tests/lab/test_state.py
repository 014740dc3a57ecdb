from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from provision.lab import state
from provision.lab.errors import LabError


def test_state_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVISION_LAB_DIR", str(tmp_path / "lab"))
    assert state.state_dir() == tmp_path / "lab"
    assert (tmp_path / "lab").is_dir()


def test_state_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROVISION_LAB_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert state.state_dir() == tmp_path / "state" / "provision" / "lab"
    assert state.cache_dir() == tmp_path / "cache" / "provision" / "lab"


def test_inventory_fragment(tmp_path: Path) -> None:
    path = state.write_inventory({"node2": "172.18.0.3", "node1": "172.18.0.2"}, tmp_path)
    text = path.read_text()
    assert path.name == "hosts.yml"
    assert text.index('"node1":') < text.index('"node2":')
    assert 'ansible_host: "172.18.0.2"' in text
    assert "ansible_user: root" in text
    assert f'ansible_ssh_private_key_file: "{tmp_path / "id_ed25519"}"' in text
    assert (f'"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={tmp_path / "known_hosts"}"') in text


def test_inventory_yaml_parses(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    path = state.write_inventory({"gw": "172.18.0.4"}, tmp_path)
    data = yaml.safe_load(path.read_text())
    host = data["all"]["children"]["lab"]["hosts"]["gw"]
    assert host["ansible_host"] == "172.18.0.4"
    assert host["ansible_user"] == "root"
    empty = yaml.safe_load(state.write_inventory({}, tmp_path).read_text())
    assert empty["all"]["children"]["lab"]["hosts"] == {}


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_ssh_key_is_ed25519_and_private(tmp_path: Path) -> None:
    key = state.ensure_ssh_key(tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert state.public_key(tmp_path).startswith("ssh-ed25519 ")
    before = key.read_text()
    state.ensure_ssh_key(tmp_path)
    assert key.read_text() == before  # generated once


def test_lab_error_carries_fix() -> None:
    err = LabError("it broke", "do this")
    assert err.message == "it broke"
    assert err.fix == "do this"
    assert str(err) == "it broke\n  fix: do this"
    assert str(LabError("only message")) == "only message"

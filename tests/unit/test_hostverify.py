"""`provision models verify --on-hosts`: the node helper of the models stage run read-only
(`status --check`) on a placed model directory. Here the "host" is this machine (a local
connection: the same `python3 -I -S -` with the helper on stdin that goes over SSH); the test
hosts' run is in molecule/models (verify.yml)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from provision.connection import Connection
from provision.modelstore.hostverify import check_host, interpret


def _place(root: Path) -> Path:
    """A model dir as the models stage leaves it: the files, .provision/manifest.json."""
    model_dir = root / "tiny" / "Q8_0"
    (model_dir / "extra").mkdir(parents=True)
    files = {"tiny.gguf": b"GGUF" + bytes(range(256)) * 40, "extra/weights.bin": b"\x01" * 5000}
    entries = []
    for rel, data in files.items():
        (model_dir / rel).write_bytes(data)
        entries.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    meta = model_dir / ".provision"
    meta.mkdir(mode=0o700)
    manifest = {"format_version": 1, "model": "tiny", "format": "gguf", "files": entries, "digest": "0" * 64}
    (meta / "manifest.json").write_text(json.dumps(manifest))
    return model_dir


def _deployments(model_dir: Path, other: Path) -> list[dict[str, object]]:
    return [
        {"name": "tiny", "model_dir": str(model_dir), "source": {"bundle": "bundles"}},
        {"name": "by-hand", "model_dir": str(other)},  # no source: placed some other way
    ]


def test_a_good_placement_is_ok_and_a_hand_made_dir_is_not_a_failure(tmp_path: Path) -> None:
    model_dir = _place(tmp_path)
    other = tmp_path / "by-hand"
    other.mkdir()
    host = check_host(
        Connection("here", "127.0.0.1", local=True), _deployments(model_dir, other), tmp_path, True
    )
    assert host.error is None
    assert [(d.deployment, d.state, d.files) for d in host.dirs] == [
        ("tiny", "ok", 2),
        ("by-hand", "not placed", 0),
    ]
    assert host.ok


def test_truncated_and_flipped_files_are_named_and_left_alone(tmp_path: Path) -> None:
    model_dir = _place(tmp_path)
    (model_dir / "extra/weights.bin").write_bytes(b"\x01" * 100)  # truncated
    data = bytearray((model_dir / "tiny.gguf").read_bytes())
    data[500] ^= 0xFF  # one bit flip, same size
    (model_dir / "tiny.gguf").write_bytes(bytes(data))
    host = check_host(
        Connection("here", "127.0.0.1", local=True), _deployments(model_dir, tmp_path), tmp_path, True
    )
    tiny = host.dirs[0]
    assert tiny.state == "bad" and not host.ok
    assert tiny.bad == ["extra/weights.bin", "tiny.gguf"]
    assert "provision up" in tiny.detail
    # --check: nothing removed, no stamp written
    assert (model_dir / "extra/weights.bin").stat().st_size == 100
    assert not (model_dir / ".provision/stamps.json").exists()


def test_a_declared_source_without_a_manifest_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    check = interpret("tiny", str(empty), True, {"complete": False, "needed": [], "removed_corrupt": []})
    assert check.state == "not placed" and not check.ok
    assert "did not place" in check.detail


def test_the_helpers_failure_is_reported() -> None:
    check = interpret("tiny", "/x", True, {"failed": True, "msg": "cannot read /x/.provision/manifest.json"})
    assert check.state == "error" and not check.ok and "cannot read" in check.detail


def test_an_unreachable_host_is_named(tmp_path: Path) -> None:
    conn = Connection("gone", "127.0.0.1", port=1, common_args=["-o", "ConnectTimeout=2"])
    host = check_host(conn, [{"name": "tiny", "model_dir": "/srv/models/tiny"}], tmp_path, True)
    assert host.error and not host.ok

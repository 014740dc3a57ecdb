"""`provision lab up` makes a bundle of the lab's tiny model for inventory/lab.yml's models
stage: made once, with a manifest the stage and `provision models verify` accept, and made
again when its file no longer matches."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app
from provision.lab.lifecycle import ensure_tiny_bundle
from provision.modelstore.manifest import Manifest, sha256_file


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVISION_LAB_DIR", str(tmp_path / "lab"))
    return tmp_path / "lab"


def test_the_bundle_is_made_once_and_verifies(lab_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny-llama-test.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    where = ensure_tiny_bundle(model)
    assert where == lab_dir / "bundles" / "tiny-llama-test" / "F32"
    manifest = Manifest.read(where)
    assert (manifest.model, manifest.quantization, manifest.format) == ("tiny-llama-test", "F32", "gguf")
    assert [(f.path, f.sha256) for f in manifest.files] == [("tiny-llama-test.gguf", sha256_file(model))]
    written = (where / "manifest.json").stat().st_mtime_ns
    assert ensure_tiny_bundle(model) == where
    assert (where / "manifest.json").stat().st_mtime_ns == written  # not made again
    result = CliRunner().invoke(app, ["models", "verify", str(where)])
    assert result.exit_code == 0, result.output


def test_a_bundle_whose_file_changed_is_made_again(lab_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny-llama-test.gguf"
    model.write_bytes(b"GGUF" + b"\x00" * 1000)
    where = ensure_tiny_bundle(model)
    (where / "tiny-llama-test.gguf").unlink()
    model.write_bytes(b"GGUF" + b"\x01" * 2000)  # a newer generator wrote another file
    ensure_tiny_bundle(model)
    assert Manifest.read(where).files[0].size == 2004
    assert CliRunner().invoke(app, ["models", "verify", str(where)]).exit_code == 0

"""provision.modelstore: manifests, verification, the hub client against the STAND-IN hub,
resumed downloads, gated refusals, tokens, the fan-out schedule, and the node helper."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app
from provision.errors import InvalidInput
from provision.modelstore import fanout
from provision.modelstore.bundle import bundle_from_hub, bundle_from_path, resolve_target
from provision.modelstore.hub import HubClient
from provision.modelstore.manifest import Manifest
from provision.modelstore.token import read_token_file
from provision.modelstore.verify import verify_bundle

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "standins"))
import hf_hub  # noqa: E402  (the stand-in hub)

runner = CliRunner()


def _random_file(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def hub(tmp_path, monkeypatch):
    root = tmp_path / "hub"
    _random_file(root / "acme" / "tiny-GGUF" / "tiny-Q4_K_M.gguf", 300_000, 1)
    _random_file(root / "acme" / "tiny-GGUF" / "tiny-Q8_0.gguf", 200_000, 2)
    (root / "acme" / "tiny-GGUF" / "README.md").write_text("stand-in repo\n")
    _random_file(root / "acme" / "gated" / "model.safetensors", 50_000, 3)
    (root / "acme" / "gated" / "config.json").write_text("{}\n")
    state = hf_hub.Hub(root, gated={"acme/gated"}, tokens={"hf_good"})
    server, url = hf_hub.serve(state)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield state
    server.shutdown()


def _local_bundle(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    _random_file(src / "a.gguf", 70_000, 4)
    _random_file(src / "sub" / "b.bin", 30_000, 5)
    target = resolve_target("tiny-llama-test", "F32", None)
    target.include = []
    where, _ = bundle_from_path(target, tmp_path / "out", src)
    return where


def test_manifest_roundtrip_and_digest(tmp_path):
    where = _local_bundle(tmp_path)
    m = Manifest.read(where)
    assert [f.path for f in m.files] == ["a.gguf", "sub/b.bin"]
    assert m.format == "gguf" and m.license == "apache-2.0" and m.total_bytes == 100_000
    again = Manifest.from_dict(json.loads((where / "manifest.json").read_text()))
    assert again.digest == m.digest
    again.created = "another time"
    assert again.digest == m.digest  # content, not creation time
    bad = json.loads((where / "manifest.json").read_text())
    bad["files"][0]["path"] = "../escape"
    with pytest.raises(ValueError, match="inside the bundle"):
        Manifest.from_dict(bad)


def test_verify_finds_truncation_and_bitflip(tmp_path):
    where = _local_bundle(tmp_path)
    assert verify_bundle(where).ok
    assert runner.invoke(app, ["models", "verify", str(where)]).exit_code == 0
    with (where / "a.gguf").open("r+b") as fh:
        fh.seek(1234)
        byte = fh.read(1)
        fh.seek(1234)
        fh.write(bytes([byte[0] ^ 1]))
    os.truncate(where / "sub" / "b.bin", 100)
    result = verify_bundle(where)
    assert {p for p, _ in result.bad} == {"a.gguf", "sub/b.bin"}
    cli = runner.invoke(app, ["models", "verify", str(where), "--json"])
    assert cli.exit_code == 1
    assert {b["path"] for b in json.loads(cli.stdout)["bad"]} == {"a.gguf", "sub/b.bin"}


def test_verify_unusable_input_exits_2(tmp_path):
    assert runner.invoke(app, ["models", "verify", str(tmp_path)]).exit_code == 2
    (tmp_path / "manifest.json").write_text("{not json")
    assert runner.invoke(app, ["models", "verify", str(tmp_path)]).exit_code == 2
    with pytest.raises(InvalidInput):
        verify_bundle(tmp_path / "nope")


def test_bundle_from_standin_hub(hub, tmp_path):
    result = runner.invoke(
        app,
        [
            "models",
            "bundle",
            "acme/tiny-GGUF",
            "--include",
            "*q4_k_m*.gguf",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["bundles"][0]
    assert [f["path"] for f in info["files"]] == ["tiny-Q4_K_M.gguf"]
    assert info["source"]["revision"] == hub.commit("acme/tiny-GGUF")
    where = Path(info["dir"])
    assert verify_bundle(where).ok
    assert info["files"][0]["sha256"] == hub.sha256(hub.root / "acme/tiny-GGUF/tiny-Q4_K_M.gguf")


def test_download_resumes_with_range(hub, tmp_path):
    source = hub.root / "acme/tiny-GGUF/tiny-Q8_0.gguf"
    data = source.read_bytes()
    target = resolve_target("acme/tiny-GGUF", None, ["*Q8_0*"])
    dest = tmp_path / "out" / target.model / "default" / "tiny-Q8_0.gguf"
    dest.parent.mkdir(parents=True)
    half = len(data) // 2
    (dest.parent / "tiny-Q8_0.gguf.incomplete").write_bytes(data[:half])  # a killed download
    where, _ = bundle_from_hub(target, tmp_path / "out", "main", None)
    assert hub.ranges == [f"bytes={half}-"]
    assert hub.served["tiny-Q8_0.gguf"] == len(data) - half  # continued, not restarted
    assert dest.read_bytes() == data and verify_bundle(where).ok


def test_download_to_corrupt_partial_is_refused(hub, tmp_path):
    data = (hub.root / "acme/tiny-GGUF/tiny-Q8_0.gguf").read_bytes()
    client = HubClient()
    info = client.model_info("acme/tiny-GGUF")
    remote = next(f for f in info.files if f.path == "tiny-Q8_0.gguf")
    dest = tmp_path / "tiny-Q8_0.gguf"
    dest.with_name("tiny-Q8_0.gguf.incomplete").write_bytes(b"\0" * 1000 + data[1000:5000])
    with pytest.raises(Exception, match="does not match"):
        client.download("acme/tiny-GGUF", info.commit, remote, dest)
    assert not dest.exists() and not dest.with_name("tiny-Q8_0.gguf.incomplete").exists()
    client.download("acme/tiny-GGUF", info.commit, remote, dest)  # the next run starts that file over
    assert dest.read_bytes() == data


def test_gated_refused_without_token_exit_2(hub, tmp_path):
    result = runner.invoke(app, ["models", "bundle", "acme/gated", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "HF_TOKEN" in result.output
    assert not hub.served  # nothing was downloaded
    # a gated catalog model is refused before any request at all
    before = len(hub.ranges)
    result = runner.invoke(
        app, ["models", "bundle", "llama-3.1-8b", "--quant", "BF16", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "gated" in result.output and len(hub.ranges) == before


def test_gated_with_token(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert runner.invoke(app, ["models", "bundle", "acme/gated", "--out", str(tmp_path)]).exit_code == 2
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    result = runner.invoke(app, ["models", "bundle", "acme/gated", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert (
        "hf_good" not in result.output
        and "hf_good" not in (tmp_path / "acme--gated/default/manifest.json").read_text()
    )


def test_token_from_vault_file(tmp_path):
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(b"pw")
    (tmp_path / "pw").write_text("pw\n")
    vault = VaultLib([("default", secret)]).encrypt("hf_token: hf_secret\n", secret)
    (tmp_path / "token.vault").write_bytes(vault)
    assert read_token_file(tmp_path / "token.vault", tmp_path / "pw") == "hf_secret"
    plain = tmp_path / "token"
    plain.write_text("hf_plain\n")
    plain.chmod(0o644)
    with pytest.raises(InvalidInput, match="readable by others"):
        read_token_file(plain)
    plain.chmod(0o600)
    assert read_token_file(plain) == "hf_plain"


def test_fanout_chain_tree_and_roots():
    six = [f"n{i}" for i in range(1, 7)]
    chain = fanout.plan([], six, "controller", files=16)
    assert [a.upstream for a in chain] == ["controller", "n1", "n2", "n3", "n4", "n5"]
    tree = fanout.plan([], six, "controller", files=1)  # one big file: no pipelining, use a tree
    assert max(a.level for a in tree) < 6
    assert max(sum(1 for a in tree if a.upstream == u) for u in {a.upstream for a in tree}) == 2
    peers = fanout.plan(["n1", "n2"], ["n3", "n4"], "controller", files=16, degree=1)
    assert {a.upstream for a in peers} == {"n1", "n2"}  # holders first, never the controller
    with pytest.raises(ValueError):
        fanout.plan([], ["n1"], None, files=1)
    # a hundred nodes: the estimate stays a few model-transfer times, not a hundred
    assert fanout.estimate(1, 100, fanout.best_degree(1, 100, 16), 16) < 3


def _helper():
    spec = importlib.util.spec_from_file_location(
        "provision_models", ROOT / "roles/models/files/provision_models.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(helper, capsys, *argv) -> dict:
    rc = helper.main(list(argv))
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out["rc"] = rc
    return out


def test_node_helper_stamps_corruption_and_prune(tmp_path, capsys):
    helper = _helper()
    bundle = _local_bundle(tmp_path)
    node = tmp_path / "node" / "models" / "tiny-llama-test" / "F32"
    (node / ".provision").mkdir(parents=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (node / ".provision" / "manifest.json").write_text(json.dumps(manifest))
    st = _run(helper, capsys, "status", "--dir", str(node))
    assert st["needed"] == ["a.gguf", "sub/b.bin"] and st["missing_bytes"] == 100_000
    # "transfer": half of a.gguf, then the rest (a resumed copy), then commit
    part = node / ".provision" / "partial"
    (part / "sub").mkdir(parents=True)
    data = (bundle / "a.gguf").read_bytes()
    (part / "a.gguf").write_bytes(data[:30_000])
    assert _run(helper, capsys, "status", "--dir", str(node))["missing_bytes"] == 70_000
    (part / "a.gguf").write_bytes(data)
    (part / "sub" / "b.bin").write_bytes((bundle / "sub/b.bin").read_bytes())
    assert _run(helper, capsys, "commit", "--dir", str(node), "--file", "a.gguf")["ok"]
    assert _run(helper, capsys, "commit", "--dir", str(node), "--file", "sub/b.bin")["ok"]
    st = _run(helper, capsys, "status", "--dir", str(node))
    assert st["complete"] and not st["changed"]
    fin = _run(helper, capsys, "finalize", "--dir", str(node), "--gguf-link")
    assert fin["changed"] and os.readlink(node / "model.gguf") == "a.gguf"
    assert not _run(helper, capsys, "finalize", "--dir", str(node), "--gguf-link")["changed"]
    # a bit flip that changes mtime: found by the cheap check, the file removed for re-fetching
    target = node / "a.gguf"
    stat = target.stat()
    with target.open("r+b") as fh:
        fh.write(b"\xff")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    st = _run(helper, capsys, "status", "--dir", str(node))
    assert st["removed_corrupt"] == ["a.gguf"] and st["needed"] == ["a.gguf"] and not target.exists()
    # the documented limit: same size and mtime hides a bit flip until --rehash
    target_b = node / "sub" / "b.bin"
    stat = target_b.stat()
    with target_b.open("r+b") as fh:
        fh.write(b"\x00\x01")
    os.utime(target_b, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "sub/b.bin" not in _run(helper, capsys, "status", "--dir", str(node))["needed"]
    assert "sub/b.bin" in _run(helper, capsys, "status", "--dir", str(node), "--rehash")["removed_corrupt"]
    # prune: only dirs with .provision/manifest.json, only those not kept
    other = tmp_path / "node" / "models" / "old-model" / "Q4_K_M"
    (other / ".provision").mkdir(parents=True)
    (other / ".provision" / "manifest.json").write_text("{}")
    (tmp_path / "node" / "models" / "hand-made").mkdir()
    pr = _run(helper, capsys, "prune", "--root", str(tmp_path / "node" / "models"), "--keep", str(node))
    assert pr["removed"] == [str(other)]
    assert node.exists() and (tmp_path / "node" / "models" / "hand-made").exists()

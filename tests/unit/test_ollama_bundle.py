"""`provision models bundle --from-ollama / --ollama-models`: Ollama library models as bundles.

Every registry here is the STAND-IN (tests/standins/ollama_registry.py, not the real
registry.ollama.ai), bound to 127.0.0.1; OLLAMA_REGISTRY points at it so nothing can reach a
real host. The model is the tiny generated GGUF (provision.lab.tinymodel) plus a template,
params and two license layers (Ollama allows several)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.catalog import load_catalog
from provision.cli import app
from provision.errors import InvalidInput
from provision.modelstore.download import DownloadFailed
from provision.modelstore.manifest import Manifest
from provision.modelstore.ollama import (
    OllamaName,
    registry_url,
    resolve_ollama_target,
)
from provision.modelstore.verify import verify_bundle

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "standins"))
import ollama_registry  # noqa: E402  (the stand-in registry)

runner = CliRunner()
TEMPLATE = b"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"
PARAMS = b'{"stop":["<|im_start|>","<|im_end|>"],"temperature":0.6}'
LICENSE_1 = b"TINY COMMUNITY LICENSE (stand-in text)\n"
LICENSE_2 = b"Acceptable use policy (stand-in text)\n"


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> bytes:
    pytest.importorskip("gguf")
    from provision.lab.tinymodel import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf").read_bytes()


class Served:
    def __init__(self, reg: ollama_registry.Registry, url: str, gguf: bytes) -> None:
        self.reg, self.url, self.gguf = reg, url, gguf
        self.digest = ollama_registry.digest_of(gguf)
        self.manifest = reg.manifests[("library/tiny", "1b")]

    def cdn_requests(self, digest: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.reg.requests if r[1] == f"/cdn/{digest[7:]}"]


@pytest.fixture
def registry(tiny_gguf, monkeypatch):
    reg = ollama_registry.Registry()
    layers = [
        ("model", tiny_gguf),
        ("template", TEMPLATE),
        ("license", LICENSE_1),
        ("license", LICENSE_2),
        ("params", PARAMS),
    ]
    reg.add_model("library/tiny:1b", layers)
    reg.add_model("library/llama3.2:1b-instruct-q4_K_M", layers, file_type="Q4_K_M")
    server, url = ollama_registry.serve(reg)
    assert url.startswith("http://127.0.0.1:")
    monkeypatch.setenv("OLLAMA_REGISTRY", url)  # a test that forgets --registry still stays local
    yield Served(reg, url, tiny_gguf)
    server.shutdown()
    server.server_close()


def _bundle(*args: str):
    return runner.invoke(app, ["models", "bundle", *args])


def test_bundle_from_the_standin_registry(registry, tmp_path):
    out = tmp_path / "out"
    stale = out / "tiny" / "1b" / "ollama" / "system"  # from an earlier version of the tag
    stale.parent.mkdir(parents=True)
    stale.write_text("old system prompt")
    (out / "tiny" / "1b" / "notes.txt").write_text("not ours")
    result = _bundle("tiny:1b", "--from-ollama", "--registry", registry.url, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["bundles"][0]
    where = Path(info["dir"])
    assert where == out / "tiny" / "1b"
    expected = {
        "model.gguf": registry.gguf,
        "ollama/template": TEMPLATE,
        "ollama/license": LICENSE_1,
        "ollama/license-2": LICENSE_2,
        "ollama/params.json": PARAMS,
    }
    assert {f["path"] for f in info["files"]} == set(expected)
    layer_digests = {layer["digest"] for layer in json.loads(registry.manifest)["layers"]}
    for entry in info["files"]:
        data = (where / entry["path"]).read_bytes()
        assert data == expected[entry["path"]]
        assert "sha256:" + entry["sha256"] in layer_digests  # the file is the layer's blob
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    assert (where / "model.gguf").read_bytes()[:4] == b"GGUF"
    assert info["format"] == "gguf" and info["model"] == "tiny" and info["quantization"] is None
    assert info["source"] == {
        "kind": "ollama",
        "registry": registry.url.removeprefix("http://"),
        "name": "library/tiny",
        "tag": "1b",
        "digest": "sha256:" + hashlib.sha256(registry.manifest).hexdigest(),
    }
    assert Manifest.read(where).digest == info["digest"]
    assert not stale.exists() and (where / "notes.txt").exists()  # only the layout's own stale files go
    # blobs went through the registry's redirect, and the "CDN" saw the Range requests
    assert registry.reg.redirects == 5
    assert registry.cdn_requests(registry.digest) == [("GET", f"/cdn/{registry.digest[7:]}", "bytes=0-")]
    assert runner.invoke(app, ["models", "verify", str(where)]).exit_code == 0
    assert not list(where.rglob("*.incomplete"))


def test_catalog_id_and_quant_pick_the_catalog_tag(registry, tmp_path):
    result = _bundle(
        "llama-3.2-1b", "--quant", "Q4_K_M", "--from-ollama", "--out", str(tmp_path), "--json"
    )  # no --registry: OLLAMA_REGISTRY (the stand-in)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["bundles"][0]
    assert Path(info["dir"]) == tmp_path / "llama-3.2-1b" / "Q4_K_M"  # the planner's model_dir
    assert (info["model"], info["quantization"], info["license"]) == ("llama-3.2-1b", "Q4_K_M", "llama3.2")
    assert (info["source"]["name"], info["source"]["tag"]) == ("library/llama3.2", "1b-instruct-q4_K_M")
    assert verify_bundle(Path(info["dir"])).ok
    # the same tag typed as an Ollama name lands in the same folder
    target = resolve_ollama_target("llama3.2:1b-instruct-q4_K_M")
    assert (target.model, target.directory, target.quantization) == ("llama-3.2-1b", "Q4_K_M", "Q4_K_M")
    # without --quant: the catalog's default tag, filed under its tag (no quantization is known)
    target = resolve_ollama_target("llama-3.2-1b")
    assert (str(target.name), target.directory, target.quantization) == ("llama3.2:1b", "1b", None)


def test_names_parse_like_ollamas():
    n = OllamaName.parse("llama3.2:1b")
    assert (n.host, n.namespace, n.model, n.tag) == (None, "library", "llama3.2", "1b")
    assert OllamaName.parse("llama3.2").tag == "latest"
    n = OllamaName.parse("someone/coder:7b-q4_K_M")
    assert (n.namespace, n.model, n.tag, n.bundle_model_id()) == (
        "someone",
        "coder",
        "7b-q4_K_M",
        "someone--coder",
    )
    n = OllamaName.parse("example.com:5000/team/m")
    assert (n.host, n.namespace, n.model, n.tag) == ("example.com:5000", "team", "m", "latest")
    assert n.bundle_model_id() == "example.com-5000--team--m"
    assert OllamaName.parse("https://registry.ollama.ai/library/qwen2.5:7b").bundle_model_id() == "qwen2.5"
    assert registry_url(OllamaName.parse("example.com:5000/team/m")) == "https://example.com:5000"
    assert registry_url(OllamaName.parse("x"), "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    for bad in (
        "",
        "a/b/c/d",
        "bad name",
        "model:",
        "-x:1",
        "ns.dot/m",
        "m@sha256:00",
        "ftp://h/n/m",
        "m:../x",
    ):
        with pytest.raises(ValueError):
            OllamaName.parse(bad)
    # every Ollama tag of the catalog is a valid name
    for spec in load_catalog().models:
        for tag in [spec.ollama, *spec.ollama_tags.values()]:
            if tag:
                OllamaName.parse(tag)


def test_registry_default_is_the_real_one_only_by_name(monkeypatch):
    monkeypatch.delenv("OLLAMA_REGISTRY", raising=False)
    assert registry_url(OllamaName.parse("llama3.2:1b")) == "https://registry.ollama.ai"  # not contacted
    with pytest.raises(InvalidInput):
        registry_url(OllamaName.parse("x"), "ftp://nowhere")


def test_dropped_connection_exit_1_then_resume_sends_only_the_rest(registry, tmp_path):
    cut = 100_000
    registry.reg.cut_after[registry.digest] = cut  # the connection drops once, mid-body
    out = tmp_path / "out"
    argv = ["models", "bundle", "tiny:1b", "--from-ollama", "--registry", registry.url, "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "provision", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert "resumes" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    partial = out / "tiny" / "1b" / "model.gguf.incomplete"
    assert partial.stat().st_size == cut and not (out / "tiny" / "1b" / "model.gguf").exists()
    registry.reg.served.clear()
    registry.reg.requests.clear()
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert registry.cdn_requests(registry.digest) == [("GET", f"/cdn/{registry.digest[7:]}", f"bytes={cut}-")]
    assert registry.reg.served[registry.digest] == len(registry.gguf) - cut  # not re-sent
    assert (out / "tiny" / "1b" / "model.gguf").read_bytes() == registry.gguf


def test_killed_download_resumes_where_it_stopped(registry, tmp_path):
    """Kill the CLI (SIGKILL) mid-download from a throttled registry, run it again."""
    registry.reg.rate = 100_000  # bytes/s: the 560 KiB model takes about 6 s
    out = tmp_path / "out"
    partial = out / "tiny" / "1b" / "model.gguf.incomplete"
    argv = ["models", "bundle", "tiny:1b", "--from-ollama", "--registry", registry.url, "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "provision", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size >= 64 * 1024):
            assert proc.poll() is None, "the download ended before it could be killed"
            assert time.monotonic() < deadline, "no partial file appeared"
            time.sleep(0.02)
        proc.kill()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    have = partial.stat().st_size
    assert 64 * 1024 <= have < len(registry.gguf)
    registry.reg.rate = 0
    registry.reg.served.clear()
    registry.reg.requests.clear()
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert registry.cdn_requests(registry.digest) == [
        ("GET", f"/cdn/{registry.digest[7:]}", f"bytes={have}-")
    ]
    assert registry.reg.served[registry.digest] == len(registry.gguf) - have
    assert (out / "tiny" / "1b" / "model.gguf").read_bytes() == registry.gguf
    assert verify_bundle(out / "tiny" / "1b").ok


def test_a_server_ignoring_range_makes_the_file_start_over(registry, tmp_path):
    where = tmp_path / "tiny" / "1b"
    where.mkdir(parents=True)
    half = len(registry.gguf) // 2
    (where / "model.gguf.incomplete").write_bytes(registry.gguf[:half])
    registry.reg.ignore_range = True
    result = _bundle("tiny:1b", "--from-ollama", "--registry", registry.url, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert registry.reg.served[registry.digest] == len(registry.gguf)  # all of it, from byte 0
    assert (where / "model.gguf").read_bytes() == registry.gguf


def test_corrupt_blob_is_refused_and_a_moved_tag_is_refetched(registry, tmp_path):
    registry.reg.corrupt.add(registry.digest)
    argv = ("tiny:1b", "--from-ollama", "--registry", registry.url, "--out", str(tmp_path))
    result = _bundle(*argv)
    assert result.exit_code == 1
    assert isinstance(result.exception, DownloadFailed) and "does not match" in str(result.exception)
    where = tmp_path / "tiny" / "1b"
    assert not (where / "model.gguf").exists() and not (where / "model.gguf.incomplete").exists()
    assert not (where / "manifest.json").exists()
    registry.reg.corrupt.clear()
    assert _bundle(*argv).exit_code == 0
    # a same-size file that no longer matches the layer digest (the tag moved) is fetched again
    (where / "model.gguf").write_bytes(b"\0" * len(registry.gguf))
    registry.reg.served.clear()
    assert _bundle(*argv).exit_code == 0
    assert registry.reg.served == {registry.digest: len(registry.gguf)}  # only that file
    assert (where / "model.gguf").read_bytes() == registry.gguf


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["tiny:nope", "--from-ollama"], ["tiny:nope", "404", "tiny/tags"]),
        (["bad name!", "--from-ollama"], ["bad name!", "Ollama name"]),
        (["a/b/c/d:1", "--from-ollama"], ["a/b/c/d:1", "at most host/namespace/model"]),
        (["tiny-llama-test", "--from-ollama"], ["tiny-llama-test", "no Ollama library model"]),
        (["llama-3.2-1b", "--quant", "Q6_K", "--from-ollama"], ["llama-3.2-1b", "no Ollama tag", "Q6_K"]),
        (["llama-3.2-1b", "--quant", "AWQ", "--from-ollama"], ["AWQ", "GGUF"]),
        (["llama3.2:1b-instruct-q4_K_M", "--quant", "Q8_0", "--from-ollama"], ["Q8_0", "contradicts"]),
        (["tiny:1b", "--registry", "http://127.0.0.1:9"], ["--registry", "--from-ollama"]),
        (["tiny:1b", "--from-ollama", "--from-path", "x.gguf"], ["--from-path and --from-ollama"]),
        (["tiny:1b", "--from-ollama", "--include", "*.gguf"], ["--include"]),
    ],
)
def test_bad_input_exits_2_without_a_traceback(registry, tmp_path, argv, words):
    result = _bundle(*argv, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in result.output
    assert not (tmp_path / "out").exists()  # nothing was touched


def test_unknown_tag_json(registry, tmp_path):
    result = _bundle("tiny:nope", "--from-ollama", "--out", str(tmp_path), "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and "404" in data["errors"][0]["message"]
    assert data["errors"][0]["file"] == "tiny:nope" and data["errors"][0]["fix"]


def _store(root: Path, registry: Served) -> Path:
    """An OLLAMA_MODELS folder as `ollama pull tiny:1b` leaves it (Ollama re-encodes the manifest)."""
    raw = registry.manifest
    data = json.loads(raw)
    for layer in [data["config"], *data["layers"]]:
        blob = root / "blobs" / layer["digest"].replace(":", "-")
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(registry.reg.blobs[layer["digest"]])
    path = root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "1b"
    path.parent.mkdir(parents=True)
    path.write_bytes(json.dumps(data).encode())  # not the registry's bytes
    return path


def test_bundle_from_a_local_store_hard_links(registry, tmp_path):
    store = tmp_path / "models"
    manifest_path = _store(store, registry)
    registry.reg.requests.clear()
    result = _bundle("tiny:1b", "--ollama-models", str(store), "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    assert registry.reg.requests == []  # no network at all
    info = json.loads(result.stdout)["bundles"][0]
    where = Path(info["dir"])
    assert where == tmp_path / "out" / "tiny" / "1b"
    for entry in info["files"]:
        blob = store / "blobs" / f"sha256-{entry['sha256']}"
        assert os.stat(where / entry["path"]).st_ino == os.stat(blob).st_ino  # a hard link, no copy
    assert info["source"] == {
        "kind": "ollama",
        "registry": "registry.ollama.ai",
        "name": "library/tiny",
        "tag": "1b",
        "digest": "sha256:" + hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "store": "local",
    }
    assert runner.invoke(app, ["models", "verify", str(where)]).exit_code == 0
    again = _bundle("tiny:1b", "--ollama-models", str(store), "--out", str(tmp_path / "out"), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["bundles"][0]["digest"] == info["digest"]


def test_local_store_problems_exit_2_and_leave_the_store_alone(registry, tmp_path):
    store = tmp_path / "models"
    _store(store, registry)
    blob = store / "blobs" / registry.digest.replace(":", "-")
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = _bundle("tiny:1b", "--ollama-models", str(store), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "corrupt" in result.output and "ollama pull tiny:1b" in result.output
    assert blob.read_bytes() == bytes(data)  # the store's blob is left alone
    assert not (tmp_path / "out" / "tiny" / "1b" / "model.gguf").exists()
    blob.unlink()
    result = _bundle("tiny:1b", "--ollama-models", str(store), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "missing" in result.output
    result = _bundle("tiny:7b", "--ollama-models", str(store), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "it has tags: 1b" in result.output
    result = _bundle("tiny:1b", "--ollama-models", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "not an Ollama model store" in result.output

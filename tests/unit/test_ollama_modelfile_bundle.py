"""Role ollama's Modelfile for a model imported from an Ollama library bundle (docs/models.md):
the bundle's params, template, system and license are carried over, the inventory wins key by
key and the planner's num_ctx wins over the bundle's. The Modelfile is read back with the
STAND-IN's parser (tests/standins/ollama, not Ollama's own)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ollama = _load("ollama_filters_bundle", ROOT / "roles/ollama/filter_plugins/ollama_filters.py")
standin = _load("ollama_standin_bundle", ROOT / "tests/standins/ollama/ollama_standin.py")

LIBRARY_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)
BUNDLED: dict[str, Any] = {
    "params": {"stop": ["<|start_header_id|>", "<|eot_id|>"], "temperature": 0.6, "num_ctx": 131072},
    "template": LIBRARY_TEMPLATE,
    "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nstand-in text",
}


def _dep(**ollama_block: Any) -> dict[str, Any]:
    return {
        "name": "lib",
        "engine": "ollama",
        "model": "llama-3.2-1b",
        "settings": {"context_length": 4096, "num_gpu": None, "model_name": "lib"},
        **({"ollama": ollama_block} if ollama_block else {}),
    }


def test_bundle_metadata_reaches_the_modelfile() -> None:
    text = ollama.ollama_modelfile(_dep(), "/data/models/lib/model.gguf", "sha256:abc", BUNDLED)
    parsed = standin.parse_modelfile(text)
    assert parsed["from"] == "/data/models/lib/model.gguf"
    assert parsed["template"] == LIBRARY_TEMPLATE
    assert parsed["license"] == BUNDLED["license"]
    assert parsed["parameters"]["stop"] == ["<|start_header_id|>", "<|eot_id|>"]
    assert parsed["parameters"]["temperature"] == ["0.6"]
    # the planner sized the context for this GPU: the library's 131072 would not fit
    assert parsed["parameters"]["num_ctx"] == ["4096"]


def test_the_inventory_wins_key_by_key() -> None:
    dep = _dep(modelfile={"parameters": {"temperature": 0.2, "num_ctx": 2048}, "template": "{{ .Prompt }}"})
    parsed = standin.parse_modelfile(ollama.ollama_modelfile(dep, "/m/model.gguf", "", BUNDLED))
    assert parsed["parameters"]["temperature"] == ["0.2"]
    assert parsed["parameters"]["num_ctx"] == ["2048"]
    assert parsed["parameters"]["stop"] == ["<|start_header_id|>", "<|eot_id|>"]  # from the bundle
    assert parsed["template"] == "{{ .Prompt }}"


def test_without_a_bundle_the_modelfile_is_unchanged() -> None:
    """Deployments converged before bundles existed must not rebuild: same text as before."""
    dep = _dep()
    dep["settings"]["num_gpu"] = 20
    assert ollama.ollama_modelfile(dep, "/m/model.gguf") == ollama.ollama_modelfile(
        dep, "/m/model.gguf", "", {}
    )
    body = [x for x in ollama.ollama_modelfile(dep, "/m/model.gguf").splitlines() if not x.startswith("#")]
    assert body == ["FROM /m/model.gguf", "PARAMETER num_ctx 4096", "PARAMETER num_gpu 20"]


def test_a_malformed_params_file_is_refused() -> None:
    with pytest.raises(Exception, match=r"params\.json"):
        ollama.ollama_modelfile(_dep(), "/m/model.gguf", "", {"params": ["stop"]})


def test_managed_models_and_the_stale_ones() -> None:
    """--prune removes only what the role built or pulled and no deployment uses now."""
    state = {"url": "http://10.0.0.5:11434", "models": ["old-served:latest", "llama3.1:8b", "kept:latest"]}
    lists = ollama.ollama_managed_models(state, ["kept:latest", "new:latest"], ["llama3.1:8b"], ["qwen:7b"])
    assert lists["managed"] == ["kept:latest", "llama3.1:8b", "new:latest", "old-served:latest", "qwen:7b"]
    # llama3.1:8b is still a served model's base; qwen:7b was pulled and no one builds on it now
    assert lists["stale"] == ["old-served:latest", "qwen:7b"]
    assert ollama.ollama_managed_models(None, [], [], []) == {"managed": [], "stale": []}


def test_bundle_metadata_from_slurp_results() -> None:
    import base64

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    results = [
        {"item": "ollama/params.json", "content": b64('{"stop": ["<|eot_id|>"]}')},
        {"item": "ollama/template", "content": b64("{{ .Prompt }}")},
        {"item": "ollama/system", "skipped": True},
    ]
    assert ollama.ollama_bundle_metadata(results) == {
        "params": {"stop": ["<|eot_id|>"]},
        "template": "{{ .Prompt }}",
    }
    with pytest.raises(Exception, match="not JSON"):
        ollama.ollama_bundle_metadata([{"item": "ollama/params.json", "content": b64("{")}])

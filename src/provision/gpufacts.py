"""GPU facts on the controller: the parsers of the `gpu_facts` Ansible module, plus helpers.

The parsing code lives once, in ``roles/gpu_facts/library/gpu_facts.py``. That file has to be a
single self-contained Ansible module (Ansible ships it alone to the managed host, where this
package is not installed), so it cannot import ``provision``; this module goes the other way
and loads that file by path, re-exporting its functions. No copy, no symlink: the unit tests and
the controller run exactly the code the hosts run.

Consumers: preflight compares ``provision_gpu_facts`` with the inventory (``compare``), and the
planner can size with the detected memory (``memory_gib``) when it differs from the GPU table.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from provision.runner import ROLES

MODULE_PATH = ROLES / "gpu_facts" / "library" / "gpu_facts.py"


def _load() -> ModuleType:
    name = "provision._gpu_facts_module"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MODULE_PATH)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken checkout
        raise ImportError(f"cannot load the gpu_facts module from {MODULE_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_m = _load()

QUERY_FIELDS: tuple[str, ...] = _m.QUERY_FIELDS
GpuFactsError = _m.GpuFactsError
parse_query_csv = _m.parse_query_csv
parse_banner = _m.parse_banner
classify_smi = _m.classify_smi
parse_lspci = _m.parse_lspci
parse_sysfs_pci = _m.parse_sysfs_pci
parse_proc_version = _m.parse_proc_version
parse_nvml_path = _m.parse_nvml_path
parse_secure_boot = _m.parse_secure_boot
parse_container = _m.parse_container
build_facts = _m.build_facts

# The command line the module runs, for documentation and for people reproducing it by hand.
QUERY_COMMAND = f"nvidia-smi --query-gpu={','.join(QUERY_FIELDS)} --format=csv,noheader,nounits"


def from_outputs_dir(directory: Path) -> dict[str, Any]:
    """Build facts from captured command outputs in a folder (the fixture layout).

    Files, all optional: ``meta.json`` ({"query_rc": int|null (null: nvidia-smi missing),
    "pci": "lspci"|"none"}), ``query-gpu-noheader-nounits.csv`` (the query's stdout+stderr),
    ``nvidia-smi.txt`` (plain nvidia-smi), ``lspci-nn.txt``, ``proc-driver-nvidia-version.txt``.
    """
    directory = Path(directory)

    def text(name: str) -> str | None:
        p = directory / name
        return p.read_text() if p.exists() else None

    meta = json.loads(text("meta.json") or "{}")
    lspci = text("lspci-nn.txt")
    proc = text("proc-driver-nvidia-version.txt")
    module: dict[str, Any] = {"loaded": bool(proc)}
    if proc:
        module.update(parse_proc_version(proc))
    pci_devices = parse_lspci(lspci) if lspci is not None else None
    return build_facts(
        query_rc=meta.get("query_rc", 0),
        query_output=text("query-gpu-noheader-nounits.csv") or "",
        banner_output=text("nvidia-smi.txt") or "",
        pci_devices=pci_devices,
        pci_source="lspci" if pci_devices is not None else "none",
        module=module,
        nvml_version=meta.get("nvml_version"),
        nouveau_loaded=bool(meta.get("nouveau_loaded", False)),
        secure_boot=meta.get("secure_boot", "unknown"),
    )


def memory_gib(facts: dict[str, Any]) -> float | None:
    """Per-GPU memory the driver reports (the smallest GPU), in GiB; None when unknown."""
    mib = facts.get("memory_mib")
    return round(mib / 1024, 2) if mib else None


def compare(facts: dict[str, Any], declared_count: int, declared_memory_gib: float | None = None,
            tolerance: float = 0.06) -> list[str]:
    """Differences between detected GPUs and the inventory's declaration (empty: they agree).

    Memory is compared per GPU with a tolerance: the driver reports usable memory, a little below
    the marketing size (81559 MiB = 79.6 GiB for an 80 GB H100).
    """
    problems = []
    found = int(facts.get("count") or 0)
    if found != declared_count:
        problems.append(f"declares {declared_count} GPU(s), {facts.get('source', 'detection')} finds {found}")
    detected = memory_gib(facts)
    off = abs(detected - declared_memory_gib) if declared_memory_gib and detected else 0.0
    if declared_memory_gib and detected and off > tolerance * declared_memory_gib:
        problems.append(f"declares {declared_memory_gib:g} GiB per GPU, the driver reports {detected:g} GiB")
    return problems

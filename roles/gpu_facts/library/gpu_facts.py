#!/usr/bin/python
# Copyright: provision contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Ansible module ``gpu_facts`` and the one copy of provision's GPU detection parsers.

This file is both:

* the Ansible module that runs on a managed host (it must be a single
  self-contained file there: AnsiballZ ships it to the host, where the
  ``provision`` package is not installed), and
* the parser library that the controller uses: ``provision.gpufacts`` loads
  this very file by path and re-exports its functions, so the parsing code
  exists exactly once and the unit tests exercise what the hosts run.

Everything above ``run_module()`` is plain Python with no Ansible import.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Detect NVIDIA GPUs, the driver and its state
description:
  - Runs C(nvidia-smi --query-gpu=... --format=csv,noheader,nounits) and plain C(nvidia-smi)
    (for the CUDA version), and reads the PCI bus (C(lspci -nn), else C(/sys/bus/pci)) so that
    GPUs are found even without a driver.
  - Recognises the driver's failure modes (driver/library version mismatch, no devices found,
    driver not loaded, nvidia-smi missing) and says what each means and how to fix it.
  - Also reports the loaded and installed kernel module versions and flavor (open or
    proprietary), the NVML library version, whether nouveau is loaded, NVSwitch devices,
    Secure Boot and whether the host is a container.
  - Read-only; never reports a change. Sets the fact C(provision_gpu_facts).
version_added: "0.1.0"
author:
  - provision contributors
options:
  nvidia_smi:
    description: The nvidia-smi command (name looked up in PATH and the usual driver folders, or a path).
    type: str
    default: nvidia-smi
  lspci:
    description: The lspci command; when absent, C(/sys/bus/pci/devices) is read instead.
    type: str
    default: lspci
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
"""

EXAMPLES = r"""
- name: Detect the GPUs
  gpu_facts:

- name: Show them
  ansible.builtin.debug:
    msg: "{{ provision_gpu_facts.count }} x {{ provision_gpu_facts.names | join(', ') }}"
"""

RETURN = r"""
ansible_facts:
  description: The facts set.
  returned: always
  type: dict
  contains:
    provision_gpu_facts:
      description:
        - C(status) is one of C(ok), C(no_gpu), C(driver_not_installed), C(driver_not_loaded),
          C(version_mismatch), C(no_devices), C(nvml_error), C(error).
        - C(present) is true when NVIDIA GPU hardware was seen (nvidia-smi or PCI).
        - C(count), C(names), C(memory_mib) (smallest per GPU), C(memory_total_mib),
          C(driver_version), C(driver_branch), C(cuda_version), C(compute_capability),
          C(persistence_mode) and C(mig_mode) (C(enabled), C(disabled), C(mixed) or null).
        - C(gpus) lists each GPU as nvidia-smi reports it; C(pci) what the bus shows.
      type: dict
      sample:
        status: ok
        present: true
        driver_working: true
        count: 1
        names: ["NVIDIA H100 80GB HBM3"]
        memory_mib: 81559
        driver_version: "580.159.04"
        driver_branch: "580"
        cuda_version: "13.0"
"""

import csv
import glob
import os
import re
import shutil
from typing import Any

# The query the module runs. The order matches the real capture in
# tests/fixtures/gpu/h100-80gb-ubuntu2404/query-gpu-noheader-nounits.csv.
QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "uuid",
    "name",
    "memory.total",
    "memory.used",
    "driver_version",
    "compute_cap",
    "persistence_mode",
    "mig.mode.current",
)
# Other layouts the parser accepts when no header names the columns (by column count):
# without memory.used (the list), and without compute_cap (drivers before 510 reject it).
ALTERNATE_LAYOUTS: tuple[tuple[str, ...], ...] = (
    tuple(f for f in QUERY_FIELDS if f != "memory.used"),
    tuple(f for f in QUERY_FIELDS if f != "compute_cap"),
)
NVIDIA_VENDOR = "10de"
GPU_CLASSES = {"0300", "0302"}  # VGA compatible controller, 3D controller
NVSWITCH_CLASS = "0680"  # "Bridge: NVIDIA Corporation Device" on HGX/DGX boards
NA_VALUES = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]"}
DRIVER_DIRS = ("/usr/bin", "/usr/local/nvidia/bin", "/usr/local/bin", "/opt/nvidia/bin")
NVML_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    "/usr/lib/wsl/lib",
)
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

STATUS_MESSAGES = {
    "ok": "the driver works and sees {count} GPU(s)",
    "no_gpu": "no NVIDIA GPU on this host's PCI bus",
    "driver_not_installed": (
        "{pci_count} NVIDIA GPU(s) on the PCI bus but no working nvidia-smi: the driver is not "
        "installed. Fix: run provision's gpu stage (it installs the pinned branch)."
    ),
    "driver_not_loaded": (
        "nvidia-smi cannot talk to the NVIDIA driver: the kernel module is not loaded (not built "
        "for the running kernel, nouveau holds the GPU, or Secure Boot refused an unsigned "
        "module). Fix: look at `dkms status` and `dmesg | grep -iE 'nvidia|nouveau|key'`; install "
        "linux-headers for the running kernel and reboot."
    ),
    "version_mismatch": (
        "the loaded kernel module ({module}) differs from the user-space NVML library ({nvml}): "
        "the driver packages changed without a reboot. Fix: reboot (the gpu stage does it in "
        "batches) and keep the driver packages held."
    ),
    "no_devices": (
        "the driver is loaded but finds no GPU: wrong kernel module flavor (open modules need "
        "Turing or newer; Blackwell needs open), a GPU fallen off the bus (Xid 79 in dmesg), or "
        "the GPU bound to vfio-pci. Fix: check `dmesg | grep -i xid` and nvidia_driver_flavor."
    ),
    "nvml_error": (
        "NVML failed with an unknown error: inside a container this means it lost its GPU "
        "devices (for example after `systemctl daemon-reload` with the systemd cgroup driver). "
        "Fix: recreate the container; see docs/gpu-validation.md."
    ),
    "error": "nvidia-smi failed: {detail}",
}


class GpuFactsError(ValueError):
    """Output that cannot be parsed."""


def _na(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in NA_VALUES else value


def _int(value: str | None) -> int | None:
    value = _na(value)
    if value is None:
        return None
    value = re.sub(r"\s*MiB$", "", value)
    try:
        return int(float(value))
    except ValueError:
        return None


def _mode(value: str | None) -> str | None:
    value = _na(value)
    return value.lower() if value else None


def _layout_for(cols: list[str]) -> tuple[str, ...] | None:
    """The column names of a header-less row, chosen by its width (and shape when ambiguous)."""
    if len(cols) == len(QUERY_FIELDS):
        return QUERY_FIELDS
    if len(cols) == len(QUERY_FIELDS) - 1:
        # both alternates have 8 columns: the list has the driver version 5th,
        # the pre-510 list has memory.used (a number) there
        without_used, without_cc = ALTERNATE_LAYOUTS
        return without_used if re.match(r"^\d+\.\d+", cols[4]) else without_cc
    return None


def parse_query_csv(text: str, fields: tuple[str, ...] | list[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`` into one dict per GPU.

    A first line starting with ``index`` is taken as the header (units such as ``[MiB]`` are
    dropped from names and values). Without a header the columns are ``fields``, or, when
    ``fields`` is None, QUERY_FIELDS or one of ALTERNATE_LAYOUTS chosen by the column count.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if lines[0].lstrip().lower().startswith("index"):
        fields = [re.sub(r"\s*\[.*\]\s*$", "", h.strip()) for h in lines[0].split(",")]
        lines = lines[1:]
    gpus = []
    for row in csv.reader(lines, skipinitialspace=True):
        cols = [c.strip() for c in row]
        names = fields if fields is not None else _layout_for(cols)
        if names is None or len(names) != len(cols):
            raise GpuFactsError(
                f"nvidia-smi query row has {len(cols)} columns, expected {len(names or QUERY_FIELDS)}: "
                f"{', '.join(cols)[:200]}"
            )
        raw = dict(zip(names, cols, strict=True))
        gpus.append(
            {
                "index": _int(raw.get("index")),
                "uuid": _na(raw.get("uuid")),
                "name": _na(raw.get("name")),
                "memory_mib": _int(raw.get("memory.total")),
                "memory_used_mib": _int(raw.get("memory.used")),
                "driver_version": _na(raw.get("driver_version")),
                "compute_cap": _na(raw.get("compute_cap")),
                "persistence_mode": _mode(raw.get("persistence_mode")),
                "mig_mode": _mode(raw.get("mig.mode.current")),
                "pci_bus_id": _na(raw.get("pci.bus_id")),
            }
        )
    return gpus


def parse_banner(text: str) -> dict[str, str | None]:
    """Versions from plain ``nvidia-smi`` (or ``nvidia-smi -q``) output."""
    smi = re.search(r"NVIDIA-SMI\s+([0-9][0-9.]*)", text)
    driver = re.search(r"Driver Version\s*:?\s*([0-9][0-9.]*)", text)
    cuda = re.search(r"CUDA Version\s*:?\s*([0-9][0-9.]*)", text)
    return {
        "smi_version": smi.group(1) if smi else None,
        "driver_version": driver.group(1) if driver else None,
        "cuda_version": cuda.group(1) if cuda else None,
    }


def classify_smi(rc: int | None, output: str) -> tuple[str, str | None]:
    """Status of one nvidia-smi run: (status, NVML library version when the output names it).

    ``rc`` None means the command does not exist.
    """
    nvml = re.search(r"NVML library version:\s*([0-9][0-9.]*)", output)
    nvml_version = nvml.group(1) if nvml else None
    if rc is None or rc == 127:
        return "smi_missing", None
    if re.search(r"Driver/library version mismatch", output, re.I):
        return "version_mismatch", nvml_version
    if re.search(r"No devices were found", output, re.I):
        return "no_devices", None
    if re.search(r"couldn't communicate with the NVIDIA driver", output, re.I):
        return "driver_not_loaded", None
    if re.search(r"couldn't find libnvidia-ml|NVML Shared Library Not Found", output, re.I):
        return "driver_not_installed", None
    if re.search(r"Failed to initialize NVML: Unknown Error", output, re.I):
        return "nvml_error", None
    if rc == 0:
        return "ok", None
    return "error", None


def parse_lspci(text: str) -> list[dict[str, Any]]:
    """NVIDIA devices from ``lspci -nn`` (GPUs and NVSwitches; audio/USB functions are dropped)."""
    devices = []
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s+(.*?)\s*\[([0-9a-fA-F]{4})\]:\s+(.*)$", line.strip())
        if not m:
            continue
        slot, _cls_name, cls, rest = m.groups()
        ids = list(re.finditer(r"\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]", rest))
        if not ids:
            continue
        vendor, device = ids[-1].group(1).lower(), ids[-1].group(2).lower()
        if vendor != NVIDIA_VENDOR:
            continue
        cls = cls.lower()
        if cls not in GPU_CLASSES and cls != NVSWITCH_CLASS:
            continue
        name = rest[: ids[-1].start()].strip()
        name = re.sub(r"^NVIDIA Corporation\s+", "", name)
        devices.append(
            {
                "slot": slot if slot.count(":") == 2 else f"0000:{slot}",
                "class": cls,
                "device_id": device,
                "name": name or None,
                "kind": "nvswitch" if cls == NVSWITCH_CLASS else "gpu",
            }
        )
    return devices


def parse_sysfs_pci(entries: list[dict[str, str]]) -> list[dict[str, Any]]:
    """NVIDIA devices from /sys/bus/pci/devices entries ({slot, vendor, device, class})."""
    devices = []
    for e in entries:
        vendor = e.get("vendor", "").lower().replace("0x", "")
        if vendor != NVIDIA_VENDOR:
            continue
        cls = e.get("class", "").lower().replace("0x", "")[:4]
        if cls not in GPU_CLASSES and cls != NVSWITCH_CLASS:
            continue
        devices.append(
            {
                "slot": e.get("slot"),
                "class": cls,
                "device_id": e.get("device", "").lower().replace("0x", ""),
                "name": None,
                "kind": "nvswitch" if cls == NVSWITCH_CLASS else "gpu",
            }
        )
    return devices


def parse_proc_version(text: str) -> dict[str, str | None]:
    """Version and flavor from /proc/driver/nvidia/version."""
    m = re.search(r"NVRM version:.*?\s([0-9]+\.[0-9]+(?:\.[0-9]+)?)\s", text + " ")
    flavor = None
    if "NVRM version" in text:
        flavor = "open" if "Open Kernel Module" in text else "proprietary"
    return {"version": m.group(1) if m else None, "flavor": flavor}


def parse_nvml_path(path: str | None) -> str | None:
    """The version in a resolved libnvidia-ml.so.<version> file name."""
    if not path:
        return None
    m = re.search(r"libnvidia-ml\.so\.([0-9]+\.[0-9]+(?:\.[0-9]+)?)$", path)
    return m.group(1) if m else None


def parse_secure_boot(mokutil_rc: int | None, mokutil_output: str | None, efivar: bytes | None,
                      efi_present: bool) -> str:
    """enabled, disabled, unsupported (no UEFI) or unknown."""
    out = (mokutil_output or "").lower()
    if mokutil_rc is not None:
        if "secureboot enabled" in out:
            return "enabled"
        if "secureboot disabled" in out:
            return "disabled"
        if "not supported" in out or "doesn't support" in out:
            return "unsupported"
    if efivar is not None and len(efivar) >= 5:
        return "enabled" if efivar[4] == 1 else "disabled"
    if not efi_present:
        return "unsupported"
    return "unknown"


def parse_container(pid1_environ: bytes | None, root_mount: str | None, containerenv: bool) -> bool:
    """A container: init's environment says so (systemd, LXC, podman set container=), podman's
    /run/.containerenv exists, or / is an overlay of a container engine's storage."""
    if pid1_environ and any(v.startswith(b"container=") for v in pid1_environ.split(b"\0")):
        return True
    if containerenv:
        return True
    if root_mount and " - overlay " in root_mount:
        return bool(re.search(r"/var/lib/(docker|containers|containerd)/", root_mount))
    return False


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return seen


def _summary_mode(values: list[str | None]) -> str | None:
    known = [v for v in values if v]
    if not known:
        return None
    if all(v == "enabled" for v in known):
        return "enabled"
    if all(v == "disabled" for v in known):
        return "disabled"
    return "mixed"


def build_facts(
    *,
    query_rc: int | None,
    query_output: str = "",
    query_fields: tuple[str, ...] | None = None,
    banner_output: str = "",
    pci_devices: list[dict[str, Any]] | None = None,
    pci_source: str = "none",
    module: dict[str, Any] | None = None,
    nvml_version: str | None = None,
    nouveau_loaded: bool = False,
    secure_boot: str = "unknown",
    container: bool = False,
    machine_id: str | None = None,
    smi_path: str | None = None,
) -> dict[str, Any]:
    """Assemble provision_gpu_facts from what was read on the host (pure: no I/O).

    ``query_rc`` None means nvidia-smi is missing; ``pci_devices`` None means the PCI bus could
    not be read at all (neither lspci nor sysfs).
    """
    smi_status, nvml_from_error = classify_smi(query_rc, query_output)
    gpus: list[dict[str, Any]] = []
    parse_error = None
    if smi_status == "ok":
        try:
            gpus = parse_query_csv(query_output, query_fields)
        except GpuFactsError as exc:
            smi_status, parse_error = "error", str(exc)
        if smi_status == "ok" and not gpus:
            smi_status = "no_devices"
    banner = parse_banner(banner_output or "")
    module = dict(module or {})
    module.setdefault("loaded", False)
    module.setdefault("version", None)
    module.setdefault("flavor", None)
    module.setdefault("installed_version", None)

    pci_known = pci_devices is not None
    pci_gpus = [d for d in (pci_devices or []) if d["kind"] == "gpu"]
    nvswitches = [d for d in (pci_devices or []) if d["kind"] == "nvswitch"]

    status = smi_status
    if smi_status == "smi_missing":
        status = "driver_not_installed" if pci_gpus else "no_gpu"
    elif smi_status in ("driver_not_loaded", "driver_not_installed", "no_devices") and (
        pci_known and not pci_gpus
    ):
        status = "no_gpu"

    working = status == "ok"
    driver_versions = _unique([g["driver_version"] for g in gpus]) if working else []
    driver_version = (driver_versions[0] if driver_versions else None) or (
        banner["driver_version"] if working else None
    )
    if status == "version_mismatch":
        nvml_version = nvml_version or nvml_from_error
    present = bool(gpus) or bool(pci_gpus) or (status == "version_mismatch" and not pci_known)

    if working:
        count = len(gpus)
        names = _unique([g["name"] for g in gpus])
        source = "nvidia-smi"
    else:
        count = len(pci_gpus)
        names = _unique([d["name"] for d in pci_gpus])
        source = pci_source if pci_known else "none"
    memories = [g["memory_mib"] for g in gpus if g["memory_mib"] is not None]

    detail = parse_error or (query_output.strip().splitlines() or [""])[0][:300]
    message = STATUS_MESSAGES[status].format(
        count=count,
        pci_count=len(pci_gpus),
        module=module.get("version") or "?",
        nvml=nvml_version or "?",
        detail=detail or f"exit code {query_rc}",
    )
    return {
        "status": status,
        "message": message,
        "present": present,
        "driver_working": working,
        "count": count,
        "source": source,
        "names": names,
        "gpus": gpus,
        "memory_mib": min(memories) if memories else None,
        "memory_total_mib": sum(memories) if memories else None,
        "driver_version": driver_version,
        "driver_versions": driver_versions,
        "driver_branch": driver_version.split(".")[0] if driver_version else None,
        "cuda_version": banner["cuda_version"] if working else None,
        "compute_capability": _unique([g["compute_cap"] for g in gpus]),
        "persistence_mode": _summary_mode([g["persistence_mode"] for g in gpus]),
        "mig_mode": _summary_mode([g["mig_mode"] for g in gpus]),
        "pci": {
            "source": pci_source if pci_known else "none",
            "count": len(pci_gpus),
            "devices": pci_gpus,
            "nvswitch_count": len(nvswitches),
        },
        "nvswitch": bool(nvswitches),
        "kernel_module": module,
        "nvml_version": nvml_version,
        "nouveau_loaded": nouveau_loaded,
        "secure_boot": secure_boot,
        "container": container,
        "machine_id": machine_id,
        "nvidia_smi": {
            "path": smi_path,
            "rc": query_rc,
            "status": smi_status,
            "error": None if smi_status == "ok" else detail or None,
        },
        "query_fields": list(query_fields or QUERY_FIELDS),
    }


# ---------------------------------------------------------------- host side (reads the machine)


def _read(path: str, binary: bool = False) -> Any:
    try:
        with open(path, "rb" if binary else "r") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _which(name: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for d in (*extra_dirs, "/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def read_sysfs_pci(root: str = "/sys/bus/pci/devices") -> list[dict[str, str]] | None:
    if not os.path.isdir(root):
        return None
    entries = []
    for dev in sorted(glob.glob(os.path.join(root, "*"))):
        entries.append(
            {
                "slot": os.path.basename(dev),
                "vendor": (_read(os.path.join(dev, "vendor")) or "").strip(),
                "device": (_read(os.path.join(dev, "device")) or "").strip(),
                "class": (_read(os.path.join(dev, "class")) or "").strip(),
            }
        )
    return entries


def find_nvml(run) -> str | None:
    """The resolved path of libnvidia-ml.so.1 (ldconfig's cache, else the usual folders)."""
    ldconfig = _which("ldconfig")
    if ldconfig:
        rc, out, _ = run([ldconfig, "-p"])
        if rc == 0:
            for line in out.splitlines():
                m = re.search(r"libnvidia-ml\.so\.1\s.*=>\s*(\S+)", line)
                if m and os.path.exists(m.group(1)):
                    return os.path.realpath(m.group(1))
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d] + list(NVML_DIRS)
    for d in dirs:
        candidate = os.path.join(d, "libnvidia-ml.so.1")
        if os.path.exists(candidate):
            return os.path.realpath(candidate)
    return None


def detect_container() -> bool:
    """Whether this host is a container sharing another machine's kernel.

    Not /.dockerenv nor systemd-detect-virt: both say "docker" on virtual machines booted from
    an image built with Docker (seen on the Firecracker GPU machines of docs/gpu-validation.md),
    which have a kernel of their own.
    """
    mounts = _read("/proc/self/mountinfo") or ""
    root = next((line for line in mounts.splitlines() if line.split()[4:5] == ["/"]), None)
    return parse_container(_read("/proc/1/environ", binary=True), root, os.path.exists("/run/.containerenv"))


def collect(run, nvidia_smi: str = "nvidia-smi", lspci: str = "lspci") -> dict[str, Any]:
    """Read the host with ``run(argv) -> (rc, stdout, stderr)`` and build the facts."""
    smi = _which(nvidia_smi, DRIVER_DIRS)
    query_rc: int | None = None
    query_output = banner_output = ""
    fields = QUERY_FIELDS
    if smi:
        query_rc, out, err = run([smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
        query_output = (out or "") + (err or "")
        if query_rc != 0 and re.search(r"not a valid field", query_output, re.I):
            # drivers before 510 have no compute_cap field: ask again without it
            fields = ALTERNATE_LAYOUTS[1]
            argv = [smi, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
            query_rc, out, err = run(argv)
            query_output = (out or "") + (err or "")
        if query_rc == 0:
            _, banner_out, banner_err = run([smi])
            banner_output = (banner_out or "") + (banner_err or "")

    pci_devices = None
    pci_source = "none"
    lspci_bin = _which(lspci)
    if lspci_bin:
        rc, out, _ = run([lspci_bin, "-nn", "-D"])
        if rc == 0:
            pci_devices, pci_source = parse_lspci(out), "lspci"
    if pci_devices is None:
        entries = read_sysfs_pci()
        if entries is not None:
            pci_devices, pci_source = parse_sysfs_pci(entries), "sysfs"

    # Debian's packages name the module nvidia-current (nvidia_current in /sys/module)
    sys_dirs = ("/sys/module/nvidia", "/sys/module/nvidia_current")
    sys_dir = next((d for d in sys_dirs if os.path.isdir(d)), None)
    module: dict[str, Any] = {"loaded": sys_dir is not None}
    proc = _read("/proc/driver/nvidia/version")
    if proc:
        module.update(parse_proc_version(proc))
        module["loaded"] = True
    sys_version = (_read(f"{sys_dir}/version") or "").strip() if sys_dir else ""
    if sys_version:
        module["version"] = sys_version
    modinfo = _which("modinfo")
    if modinfo:
        rc, out, _ = run([modinfo, "-F", "version", "nvidia"])
        if rc == 0 and out.strip():
            module["installed_version"] = out.strip().splitlines()[0]
        rc, out, _ = run([modinfo, "-F", "license", "nvidia"])
        if rc == 0 and out.strip() and not module.get("flavor"):
            module["installed_flavor"] = "open" if "Dual MIT/GPL" in out else "proprietary"

    mokutil = _which("mokutil")
    mok_rc, mok_out = None, None
    if mokutil:
        mok_rc, out, err = run([mokutil, "--sb-state"])
        mok_out = (out or "") + (err or "")
    secure_boot = parse_secure_boot(
        mok_rc, mok_out, _read(SECURE_BOOT_VAR, binary=True), os.path.isdir("/sys/firmware/efi")
    )

    return build_facts(
        query_rc=query_rc,
        query_output=query_output,
        query_fields=fields,
        banner_output=banner_output,
        pci_devices=pci_devices,
        pci_source=pci_source,
        module=module,
        nvml_version=parse_nvml_path(find_nvml(run)),
        nouveau_loaded=os.path.isdir("/sys/module/nouveau"),
        secure_boot=secure_boot,
        container=detect_container(),
        machine_id=((_read("/etc/machine-id") or "").strip() or None),
        smi_path=smi,
    )


def run_module() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
            "lspci": {"type": "str", "default": "lspci"},
        },
        supports_check_mode=True,
    )

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            return module.run_command(argv, check_rc=False, environ_update={"LC_ALL": "C"})
        except OSError as exc:  # the binary vanished between lookup and run
            return 127, "", str(exc)

    facts = collect(run, module.params["nvidia_smi"], module.params["lspci"])
    module.exit_json(changed=False, ansible_facts={"provision_gpu_facts": facts})


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()

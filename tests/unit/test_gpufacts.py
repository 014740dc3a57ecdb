"""The GPU facts parsers (one copy, in roles/gpu_facts/library/gpu_facts.py) against fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from provision import gpufacts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"


def facts(name: str) -> dict:
    return gpufacts.from_outputs_dir(FIXTURES / name)


def test_one_copy_of_the_parser():
    """provision.gpufacts re-exports the Ansible module's own functions."""
    assert gpufacts.MODULE_PATH.name == "gpu_facts.py"
    assert gpufacts.parse_query_csv.__code__.co_filename == str(gpufacts.MODULE_PATH)
    assert "def parse_query_csv" not in Path(gpufacts.__file__).read_text()


def test_real_h100():
    f = facts("h100-80gb-ubuntu2404")
    assert f["status"] == "ok"
    assert f["present"] and f["driver_working"]
    assert f["count"] == 1
    assert f["names"] == ["NVIDIA H100 80GB HBM3"]
    assert f["memory_mib"] == 81559
    assert f["memory_total_mib"] == 81559
    assert f["driver_version"] == "580.159.04"
    assert f["driver_branch"] == "580"
    assert f["cuda_version"] == "13.0"
    assert f["compute_capability"] == ["9.0"]
    assert f["persistence_mode"] == "enabled"
    assert f["mig_mode"] == "disabled"
    assert f["kernel_module"]["version"] == "580.159.04"
    assert f["kernel_module"]["flavor"] == "open"
    gpu = f["gpus"][0]
    assert gpu["uuid"] == "GPU-be67914c-a69d-3f8f-0321-1aea06930a23"
    assert gpu["memory_used_mib"] == 0
    assert gpu["index"] == 0
    assert f["source"] == "nvidia-smi"
    assert gpufacts.memory_gib(f) == pytest.approx(79.65, abs=0.01)


def test_real_h100_with_header_and_units():
    """The csv format with header and units (query-gpu.csv, more columns) parses by header."""
    gpus = gpufacts.parse_query_csv((FIXTURES / "h100-80gb-ubuntu2404" / "query-gpu.csv").read_text())
    assert len(gpus) == 1
    assert gpus[0]["memory_mib"] == 81559
    assert gpus[0]["memory_used_mib"] == 0
    assert gpus[0]["pci_bus_id"] == "00000000:00:06.0"
    assert gpus[0]["compute_cap"] == "9.0"


def test_real_h100_q_banner():
    v = gpufacts.parse_banner((FIXTURES / "h100-80gb-ubuntu2404" / "nvidia-smi-q.txt").read_text())
    assert v["driver_version"] == "580.159.04"
    assert v["cuda_version"] == "13.0"


def test_a100_x2():
    f = facts("a100-80gb-pcie-x2")
    assert f["status"] == "ok"
    assert f["count"] == 2
    assert f["names"] == ["NVIDIA A100 80GB PCIe"]
    assert f["memory_mib"] == 81920
    assert f["memory_total_mib"] == 163840
    assert f["driver_version"] == "570.172.08"
    assert f["driver_versions"] == ["570.172.08"]
    assert f["cuda_version"] == "12.8"
    assert f["compute_capability"] == ["8.0"]
    assert f["kernel_module"]["flavor"] == "proprietary"
    assert f["pci"]["count"] == 2  # the ASPEED VGA and the NIC are not NVIDIA GPUs
    assert not f["nvswitch"]
    assert [g["index"] for g in f["gpus"]] == [0, 1]
    assert gpufacts.compare(f, 2, 80) == []
    assert gpufacts.compare(f, 4) == ["declares 4 GPU(s), nvidia-smi finds 2"]


def test_rtx_4090():
    f = facts("rtx-4090")
    assert f["status"] == "ok"
    assert f["names"] == ["NVIDIA GeForce RTX 4090"]
    assert f["memory_mib"] == 24564
    assert f["compute_capability"] == ["8.9"]
    assert f["persistence_mode"] == "disabled"
    assert f["mig_mode"] is None  # [N/A] on GeForce
    assert f["cuda_version"] == "12.4"
    assert f["pci"]["count"] == 1  # the HD audio function is dropped
    assert gpufacts.compare(f, 1, 24) == []
    assert gpufacts.compare(f, 1, 48) == ["declares 48 GiB per GPU, the driver reports 23.99 GiB"]


def test_no_gpu():
    f = facts("no-gpu")
    assert f["status"] == "no_gpu"
    assert not f["present"]
    assert f["count"] == 0
    assert f["nvidia_smi"]["status"] == "smi_missing"
    assert f["pci"]["source"] == "lspci"
    assert f["driver_version"] is None


def test_driver_mismatch():
    f = facts("driver-mismatch")
    assert f["status"] == "version_mismatch"
    assert f["present"]
    assert not f["driver_working"]
    assert f["count"] == 2  # from the PCI bus
    assert f["source"] == "lspci"
    assert f["names"] == ["AD102GL [L40S]"]
    assert f["nvml_version"] == "580.95"
    assert f["kernel_module"]["version"] == "575.57.08"
    assert "575.57.08" in f["message"] and "580.95" in f["message"] and "reboot" in f["message"]


def test_no_devices():
    f = facts("no-devices")
    assert f["status"] == "no_devices"
    assert f["present"]
    assert f["count"] == 1
    assert f["kernel_module"]["flavor"] == "open"
    assert "flavor" in f["message"]


def test_driver_not_loaded():
    f = facts("driver-not-loaded")
    assert f["status"] == "driver_not_loaded"
    assert f["present"] and f["count"] == 1
    assert f["nouveau_loaded"]
    assert f["secure_boot"] == "enabled"
    assert not f["kernel_module"]["loaded"]


def test_hgx_lspci_fallback_and_nvswitch():
    f = facts("hgx-h100-x8-no-driver")
    assert f["status"] == "driver_not_installed"
    assert f["present"]
    assert f["count"] == 8
    assert f["source"] == "lspci"
    assert f["names"] == ["GH100 [H100 SXM5 80GB]"]
    assert f["nvswitch"] and f["pci"]["nvswitch_count"] == 4
    assert {d["device_id"] for d in f["pci"]["devices"]} == {"2330"}
    assert f["pci"]["devices"][0]["slot"] == "0000:18:00.0"


@pytest.mark.parametrize(
    ("rc", "output", "status"),
    [
        (None, "", "smi_missing"),
        (127, "bash: nvidia-smi: command not found", "smi_missing"),
        (18, "Failed to initialize NVML: Driver/library version mismatch\n", "version_mismatch"),
        (6, "No devices were found\n", "no_devices"),
        (
            9,
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.\n",
            "driver_not_loaded",
        ),
        (12, "NVIDIA-SMI couldn't find libnvidia-ml.so library in your system.", "driver_not_installed"),
        (255, "Failed to initialize NVML: Unknown Error\n", "nvml_error"),
        (15, "Unable to determine the device handle for GPU0000:17:00.0: GPU is lost.", "error"),
        (0, "0, GPU-x, NVIDIA A10, 23028, 0, 535.183.01, 8.6, Enabled, Disabled\n", "ok"),
    ],
)
def test_classify(rc, output, status):
    assert gpufacts.classify_smi(rc, output)[0] == status


def test_no_smi_and_unreadable_pci():
    f = gpufacts.build_facts(query_rc=None, pci_devices=None)
    assert f["status"] == "no_gpu" and not f["present"] and f["source"] == "none"


def test_smi_failure_on_a_host_without_gpus_is_no_gpu():
    """nvidia-smi installed (say, in an image) on a host whose bus shows no NVIDIA GPU."""
    f = gpufacts.build_facts(
        query_rc=9,
        query_output="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        pci_devices=[],
        pci_source="sysfs",
    )
    assert f["status"] == "no_gpu" and not f["present"]


def test_layouts():
    eight = "0, GPU-a, NVIDIA L4, 23034, 550.90.07, 8.9, Enabled, [N/A]"
    [g] = gpufacts.parse_query_csv(eight)  # the 8-field list, without memory.used
    assert g["memory_mib"] == 23034 and g["compute_cap"] == "8.9" and g["memory_used_mib"] is None
    old = "0, GPU-b, Tesla V100-SXM2-16GB, 16160, 0, 470.256.02, Enabled, Disabled"
    [g] = gpufacts.parse_query_csv(old)  # drivers before 510: no compute_cap
    assert g["compute_cap"] is None and g["driver_version"] == "470.256.02"
    with pytest.raises(gpufacts.GpuFactsError):
        gpufacts.parse_query_csv("0, GPU-c, odd")


def test_unparseable_query_is_an_error_not_a_crash():
    f = gpufacts.build_facts(query_rc=0, query_output="garbage, line", pci_devices=[])
    assert f["status"] == "error" and "columns" in f["message"]


def test_sysfs_parser():
    entries = [
        {"slot": "0000:00:06.0", "vendor": "0x10de", "device": "0x2330", "class": "0x030200"},
        {"slot": "0000:00:07.0", "vendor": "0x10de", "device": "0x22a3", "class": "0x068000"},
        {"slot": "0000:00:08.0", "vendor": "0x10de", "device": "0x22ba", "class": "0x040300"},
        {"slot": "0000:00:02.0", "vendor": "0x1af4", "device": "0x1000", "class": "0x020000"},
    ]
    devices = gpufacts.parse_sysfs_pci(entries)
    kinds = [(d["slot"], d["kind"]) for d in devices]
    assert kinds == [("0000:00:06.0", "gpu"), ("0000:00:07.0", "nvswitch")]


@pytest.mark.parametrize(
    ("rc", "out", "var", "efi", "state"),
    [
        (0, "SecureBoot enabled\n", None, True, "enabled"),
        (1, "SecureBoot disabled\nPlatform is in Setup Mode\n", None, True, "disabled"),
        (255, "EFI variables are not supported on this system\n", None, False, "unsupported"),
        (None, None, bytes([6, 0, 0, 0, 1]), True, "enabled"),
        (None, None, bytes([6, 0, 0, 0, 0]), True, "disabled"),
        (None, None, None, False, "unsupported"),
        (None, None, None, True, "unknown"),
    ],
)
def test_secure_boot(rc, out, var, efi, state):
    assert gpufacts.parse_secure_boot(rc, out, var, efi) == state


def test_proc_version_and_nvml_path():
    assert gpufacts.parse_proc_version(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
    ) == {"version": "535.183.01", "flavor": "proprietary"}
    assert gpufacts.parse_nvml_path("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.95.05") == "580.95.05"
    assert gpufacts.parse_nvml_path("/usr/lib/libnvidia-ml.so.1") is None


def test_module_runs_as_ansible_would(tmp_path):
    """The module file runs as a script with JSON args (no GPU here: a valid no_gpu answer)."""
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"nvidia_smi": str(tmp_path / "absent-nvidia-smi")}}))
    out = subprocess.run(
        [sys.executable, str(gpufacts.MODULE_PATH), str(args)], capture_output=True, text=True, check=False
    )
    result = json.loads(out.stdout)
    assert result["changed"] is False
    f = result["ansible_facts"]["provision_gpu_facts"]
    assert f["status"] in {"no_gpu", "ok", "driver_not_installed", "driver_not_loaded"}
    assert f["query_fields"] == list(gpufacts.QUERY_FIELDS)


def test_container_detection():
    overlay = (
        "72 48 0:39 / / rw,relatime master:2 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/M4J:"
        "/var/lib/docker/overlay2/l/DJA,upperdir=/var/lib/docker/overlay2/c14/diff"
    )
    vm_root = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard"
    assert gpufacts.parse_container(b"PATH=/usr/bin\0container=docker\0", vm_root, False)
    assert gpufacts.parse_container(None, overlay, False)
    assert gpufacts.parse_container(None, vm_root, True)  # podman's /run/.containerenv
    # a Firecracker VM booted from a Docker-built image: ext4 root, no container= (but /.dockerenv)
    assert not gpufacts.parse_container(b"HOME=/\0TERM=linux\0", vm_root, False)
    live = "20 1 0:20 / / rw - overlay overlay rw,lowerdir=/run/live/rootfs,upperdir=/run/live/overlay/rw"
    assert not gpufacts.parse_container(None, live, False)

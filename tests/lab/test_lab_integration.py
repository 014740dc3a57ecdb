"""The local lab for real: image, dockerd, allowlist, two systemd hosts over SSH.

Run with ``pytest tests/lab -m lab`` as root. The first run builds the image
(debootstrap, 1-3 minutes); later runs reuse the image and cached tarball.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

import provision.lab as lab
from provision.lab import hosts as lab_hosts
from provision.lab import mirror, ssh, state

pytestmark = pytest.mark.lab

NAMES = ["labtest1", "labtest2"]

# Connect out from inside a host and report how it ended, and how fast.
PROBE = """
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
start = time.monotonic()
try:
    socket.create_connection((host, port), timeout=5).close()
    result = "connected"
except OSError as exc:
    result = type(exc).__name__
print(result, round(time.monotonic() - start, 3))
"""


@pytest.fixture(scope="module")
def lab_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root: it starts dockerd, loads nftables rules and runs containers")
    # A lab of its own (own state dir, key and owner label): its down() leaves other labs alone.
    saved = os.environ.get("PROVISION_LAB_DIR")
    os.environ["PROVISION_LAB_DIR"] = str(tmp_path_factory.mktemp("lab-state"))
    try:
        yield lab.up(NAMES)
    finally:
        lab.down()
        if saved is None:
            os.environ.pop("PROVISION_LAB_DIR", None)
        else:
            os.environ["PROVISION_LAB_DIR"] = saved


def _ssh(address: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return ssh.ssh_run(address, list(command), timeout=timeout, check=False)


def _probe(address: str, host: str, port: int) -> tuple[str, float]:
    proc = _ssh(address, "python3", "-c", PROBE, host, str(port), timeout=30)
    assert proc.returncode == 0, proc.stderr
    result, elapsed = proc.stdout.split()
    return result, float(elapsed)


def test_up_returns_each_host_with_an_address(lab_up: dict[str, str]) -> None:
    assert sorted(lab_up) == NAMES
    for address in lab_up.values():
        assert ipaddress.ip_address(address).version == 4


def test_egress_allowlist_loaded(lab_up: dict[str, str]) -> None:
    current = lab.status()
    assert current.egress
    assert current.engine
    assert set(NAMES) <= set(current.hosts)


def test_systemd_running(lab_up: dict[str, str]) -> None:
    for address in lab_up.values():
        proc = _ssh(address, "systemctl", "is-system-running")
        assert proc.stdout.strip() == "running", proc.stdout + proc.stderr


def test_real_ssh_with_the_lab_key(lab_up: dict[str, str]) -> None:
    for name, address in lab_up.items():
        proc = subprocess.run(
            [
                "ssh",
                "-i",
                str(state.key_path()),
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                f"UserKnownHostsFile={state.known_hosts_path()}",
                f"root@{address}",
                "hostname",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == name


def test_hosts_have_distinct_machine_ids(lab_up: dict[str, str]) -> None:
    ids = {_ssh(a, "cat", "/etc/machine-id").stdout.strip() for a in lab_up.values()}
    assert len(ids) == len(lab_up)


def test_hosts_resolve_and_reach_each_other_by_name(lab_up: dict[str, str]) -> None:
    for name, address in lab_up.items():
        (other,) = [n for n in NAMES if n != name]
        proc = _ssh(address, "getent", "hosts", other)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[0] == lab_up[other]
        assert _probe(address, other, 22)[0] == "connected"


def test_apt_update_through_the_mirror(lab_up: dict[str, str]) -> None:
    address = lab_up[NAMES[0]]
    proc = _ssh(address, "apt-get", "update", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Err:" not in proc.stdout


def test_anything_else_is_rejected_fast(lab_up: dict[str, str]) -> None:
    address = lab_up[NAMES[0]]
    started = time.monotonic()
    result, elapsed = _probe(address, "1.1.1.1", 443)
    assert result == "ConnectionRefusedError", result  # tcp reset from the allowlist
    assert elapsed < 2.0
    assert time.monotonic() - started < 10
    # The mirror itself only on 80/443 (its name is read from the host's apt sources).
    for found in mirror.host_mirrors():
        assert found.ipv4
        pinned = _ssh(address, "getent", "ahostsv4", found.host).stdout.split()
        assert pinned and pinned[0] == found.ipv4
        assert _probe(address, found.ipv4, 22)[0] == "ConnectionRefusedError"


def test_no_dns_outside_the_lab(lab_up: dict[str, str]) -> None:
    proc = _ssh(lab_up[NAMES[0]], "getent", "hosts", "example.com", timeout=30)
    assert proc.returncode != 0


def test_inventory_fragment_lists_the_hosts(lab_up: dict[str, str]) -> None:
    text = state.inventory_path().read_text()
    for name, address in lab_up.items():
        assert f'"{name}":' in text
        assert f'ansible_host: "{address}"' in text


def test_zz_down_removes_every_lab_container(lab_up: dict[str, str]) -> None:
    lab.down()
    assert lab_hosts.lab_containers() == []
    assert lab.status().hosts == {}

from __future__ import annotations

from pathlib import Path

import pytest

from provision.lab import hosts, ssh
from provision.lab.errors import LabError

MIRRORS = {"mirror.example.test": "192.0.2.80"}


def _args() -> list[str]:
    return hosts.docker_run_args("node1", "provision-lab/debian12-systemd:abc", MIRRORS)


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


def test_every_capability_granted_one_by_one() -> None:
    caps = _pairs(_args(), "--cap-add")
    for capability in hosts.CAPABILITIES:
        assert capability in caps
    assert "ALL" not in caps
    assert len(hosts.CAPABILITIES) == 28
    assert "SYS_RESOURCE" not in caps  # missing from the machine's bounding set


def test_never_privileged() -> None:
    assert not any(arg.startswith("--privileged") for arg in _args())


def test_systemd_flags() -> None:
    args = _args()
    assert _pairs(args, "--security-opt") == ["seccomp=unconfined", "apparmor=unconfined"]
    assert _pairs(args, "--cgroupns") == ["host"]
    assert "/sys/fs/cgroup:/sys/fs/cgroup:rw" in _pairs(args, "--volume")
    tmpfs = [t.split(":")[0] for t in _pairs(args, "--tmpfs")]
    assert tmpfs == ["/run", "/run/lock", "/tmp"]
    assert _pairs(args, "--env") == ["container=docker"]
    assert _pairs(args, "--stop-signal") == ["SIGRTMIN+3"]
    assert args[-2:] == ["provision-lab/debian12-systemd:abc", "/sbin/init"]


def test_network_dns_and_mirror_pin() -> None:
    args = _args()
    assert _pairs(args, "--network") == ["provision-lab"]
    assert _pairs(args, "--dns") == ["127.0.0.1"]
    assert _pairs(args, "--add-host") == ["mirror.example.test:192.0.2.80"]


def test_docker_volume_ulimit_and_labels() -> None:
    args = _args()
    assert "provision-lab-node1-docker:/var/lib/docker" in _pairs(args, "--volume")
    assert _pairs(args, "--ulimit") == ["nofile=20000:20000"]
    assert "provision.lab=1" in _pairs(args, "--label")
    assert _pairs(args, "--name") == ["node1"]
    assert _pairs(args, "--hostname") == ["node1"]


@pytest.mark.parametrize("name", ["", "Node1", "-x", "a b", "a;rm", "x" * 64, "../etc"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(LabError):
        hosts.docker_run_args(name, "img", MIRRORS)


def test_ssh_command_is_quoted_for_the_remote_shell() -> None:
    args = ssh.ssh_args("192.0.2.5", ["python3", "-c", "print('a b'); x = (1)"], Path("/s"))
    assert args[-1] == "python3 -c 'print('\"'\"'a b'\"'\"'); x = (1)'"
    assert "root@192.0.2.5" in args
    assert args[args.index("-i") + 1] == "/s/id_ed25519"

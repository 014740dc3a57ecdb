"""Test hosts: systemd containers on the lab network, reachable over SSH.

``--privileged`` fails on these machines (the capability bounding set lacks
CAP_SYS_RESOURCE), so capabilities are granted one by one, with everything
else systemd needs as PID 1 (TESTHOSTS.md).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provision.lab import ssh, state
from provision.lab.commands import run
from provision.lab.errors import LabError
from provision.lab.network import LABEL, LABEL_KEY, NETWORK

log = logging.getLogger("provision.lab")

CAPABILITIES = (
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_NICE",
    "SYS_TIME",
    "SYS_BOOT",
    "SYS_RAWIO",
    "SYS_MODULE",
    "SYS_PACCT",
    "SYS_TTY_CONFIG",
    "IPC_LOCK",
    "IPC_OWNER",
    "LINUX_IMMUTABLE",
    "DAC_READ_SEARCH",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "LEASE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "NET_BROADCAST",
    "SYSLOG",
    "WAKE_ALARM",
    "NET_RAW",
    "MKNOD",
    "SETFCAP",
    "SETPCAP",
)
NOFILE = 20000  # the machine's hard limit: more is silently clamped or refused
BOOT_TIMEOUT_S = 90.0
SSH_TIMEOUT_S = 60.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise LabError(
            f"invalid test host name {name!r}",
            "use 1-63 lower-case letters, digits and '-', starting with a letter or digit",
        )
    return name


def volume_name(name: str) -> str:
    return f"provision-lab-{name}-docker"


def docker_run_args(
    name: str,
    image: str,
    mirror_hosts: Mapping[str, str],
    network: str = NETWORK,
) -> list[str]:
    """The ``docker run`` argument list for one systemd test host."""
    args = [
        "docker",
        "run",
        "--detach",
        "--name",
        check_name(name),
        "--hostname",
        name,
        "--network",
        network,
        "--label",
        LABEL,
        "--label",
        f"{LABEL_KEY}.host={name}",
        "--label",
        owner_label(),
    ]
    for capability in CAPABILITIES:
        args += ["--cap-add", capability]
    args += [
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--cgroupns",
        "host",
        "--volume",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs",
        "/run:rw,mode=0755",
        "--tmpfs",
        "/run/lock:rw,mode=1777",
        "--tmpfs",
        "/tmp:rw,exec,mode=1777",
        "--env",
        "container=docker",
        # No DNS out of the lab: the embedded DNS still resolves lab hosts by name.
        "--dns",
        "127.0.0.1",
    ]
    for host, address in sorted(mirror_hosts.items()):
        args += ["--add-host", f"{host}:{address}"]
    args += [
        "--volume",
        f"{volume_name(name)}:/var/lib/docker",
        "--ulimit",
        f"nofile={NOFILE}:{NOFILE}",
        "--stop-signal",
        "SIGRTMIN+3",
        image,
        "/sbin/init",
    ]
    return args


def _inspect(name: str) -> dict[str, Any] | None:
    proc = run(["docker", "container", "inspect", name], check=False, timeout=30)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    return data[0] if data and isinstance(data[0], dict) else None


def _field(info: Mapping[str, Any] | None, *path: str) -> Any:
    """``info[path[0]][path[1]]...`` or None when any step is missing."""
    value: Any = info
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _running(name: str) -> bool:
    return bool(_field(_inspect(name), "State", "Running"))


def container_ip(name: str, network: str = NETWORK) -> str:
    address = _field(_inspect(name), "NetworkSettings", "Networks", network, "IPAddress")
    if not address:
        raise LabError(f"{name} has no address on {network}", f"docker logs {name}")
    return str(address)


def owner_label() -> str:
    return f"{LABEL_KEY}.owner={state.lab_id()}"


def lab_containers(every_lab: bool = False) -> list[str]:
    """Names of this lab's containers (every lab's with every_lab)."""
    label = LABEL if every_lab else owner_label()
    proc = run(["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"], timeout=30)
    return sorted(proc.stdout.split())


def lab_hosts() -> dict[str, str]:
    """Running lab hosts: name -> IP on the lab network."""
    hosts: dict[str, str] = {}
    for name in lab_containers():
        if _running(name):
            try:
                hosts[name] = container_ip(name)
            except LabError:
                continue
    return hosts


def _remove_host(name: str) -> None:
    run(["docker", "rm", "--force", name], check=False, timeout=120)
    run(["docker", "volume", "rm", "--force", volume_name(name)], check=False, timeout=60)


def _create(name: str, image: str, mirror_hosts: Mapping[str, str]) -> bool:
    """Start ``name``; False when a matching running host was kept."""
    info = _inspect(name)
    if info is not None:
        if _field(info, "Config", "Labels", LABEL_KEY) != "1":
            raise LabError(
                f"a container named {name} exists and is not a lab host",
                f"pick another name, or remove it yourself (docker rm -f {name})",
            )
        ours = _field(info, "Config", "Labels", f"{LABEL_KEY}.owner") == state.lab_id()
        if ours and _field(info, "State", "Running") and _field(info, "Config", "Image") == image:
            return False
        _remove_host(name)  # stopped, stale, or left by another lab: start it afresh
    run(
        ["docker", "volume", "create", "--label", LABEL, "--label", owner_label(), volume_name(name)],
        timeout=60,
    )
    run(
        docker_run_args(name, image, mirror_hosts),
        timeout=120,
        fix=f"read `docker logs {name}`; see TESTHOSTS.md for the flags systemd needs",
    )
    return True


def _logs_tail(name: str) -> str:
    proc = run(["docker", "logs", "--tail", "20", name], check=False, timeout=30)
    return (proc.stdout + proc.stderr).strip()


def wait_systemd(name: str, timeout: float = BOOT_TIMEOUT_S) -> str:
    """Wait until ``systemctl is-system-running`` says running or degraded."""
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        proc = run(["docker", "exec", name, "systemctl", "is-system-running"], check=False, timeout=20)
        status = proc.stdout.strip() or proc.stderr.strip()
        if status in ("running", "degraded"):
            if status == "degraded":
                failed = run(
                    ["docker", "exec", name, "systemctl", "--failed", "--plain", "--no-legend"],
                    check=False,
                    timeout=20,
                ).stdout.strip()
                log.warning("%s is degraded; failed units:\n%s", name, failed)
            return status
        if not _running(name):
            raise LabError(f"{name} stopped while booting:\n{_logs_tail(name)}", f"docker logs {name}")
        time.sleep(0.3)
    raise LabError(
        f"{name}: systemd still {status!r} after {timeout:.0f} s",
        f"docker exec {name} systemctl list-jobs; docker exec {name} systemctl --failed",
    )


def install_key(name: str, public_key: str) -> None:
    """Authorize the lab key for root in ``name``."""
    run(["docker", "exec", name, "install", "-d", "-m", "0700", "/root/.ssh"], timeout=30)
    run(
        ["docker", "exec", "-i", name, "tee", "/root/.ssh/authorized_keys"],
        input_text=public_key,
        timeout=30,
    )
    run(["docker", "exec", name, "chmod", "0600", "/root/.ssh/authorized_keys"], timeout=30)


def _ssh_banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as conn:
            conn.settimeout(2)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_ssh(name: str, address: str, timeout: float = SSH_TIMEOUT_S) -> None:
    """Wait for sshd, then prove ``ssh -i KEY root@IP true`` works from here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _ssh_banner(address):
        time.sleep(0.3)
    last = ""
    while time.monotonic() < deadline:
        proc = ssh.ssh_run(address, ["true"], check=False, timeout=20)
        if proc.returncode == 0:
            return
        last = (proc.stderr or proc.stdout).strip()
        time.sleep(0.5)
    raise LabError(
        f"ssh root@{address} ({name}) does not work: {last or 'no answer on port 22'}",
        f"docker exec {name} systemctl status ssh",
    )


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# systemd in every test host takes several inotify instances, all counted against root on the
# machine: with the kernel's default of 128, the 20th or so container's systemd exits at once (255).
MIN_INOTIFY_INSTANCES = 1024


def ensure_inotify_instances() -> None:
    try:
        current = int(INOTIFY_INSTANCES.read_text())
    except (OSError, ValueError):
        return
    if current < MIN_INOTIFY_INSTANCES:
        INOTIFY_INSTANCES.write_text(f"{MIN_INOTIFY_INSTANCES}\n")
        log.info("fs.inotify.max_user_instances raised from %d to %d", current, MIN_INOTIFY_INSTANCES)


def start_hosts(names: Sequence[str], image: str, mirror_hosts: Mapping[str, str]) -> dict[str, str]:
    """Start (or keep) the named hosts; returns name -> IP once SSH works on all."""
    for name in names:
        check_name(name)
    if len(set(names)) != len(names):
        raise LabError(f"duplicate host names in {list(names)}", "give each host its own name")
    public_key = state.public_key()
    started = time.monotonic()
    ensure_inotify_instances()
    for name in names:
        if _create(name, image, mirror_hosts):
            log.info("started %s", name)
        else:
            log.info("kept running %s", name)
    hosts = {name: container_ip(name) for name in names}
    ssh.forget([*hosts.values(), *hosts.keys()])
    for name in names:
        wait_systemd(name)
        log.info("%s: systemd up after %.1f s", name, time.monotonic() - started)
        install_key(name, public_key)
    for name, address in hosts.items():
        wait_ssh(name, address)
        log.info("%s (%s): ssh works after %.1f s", name, address, time.monotonic() - started)
    return hosts


def remove_all() -> list[str]:
    """Remove this lab's containers and volumes (by its owner label only)."""
    proc = run(["docker", "ps", "-aq", "--filter", f"label={owner_label()}"], timeout=30)
    ids = proc.stdout.split()
    if ids:
        run(["docker", "rm", "--force", *ids], timeout=300)
    volumes = run(
        ["docker", "volume", "ls", "-q", "--filter", f"label={owner_label()}"], timeout=30
    ).stdout.split()
    if volumes:
        run(["docker", "volume", "rm", "--force", *volumes], timeout=120)
    return ids

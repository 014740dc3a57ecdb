"""A working Docker engine: the running one, or Debian's dockerd started by hand.

There is no systemd on the machines this runs on, so when ``docker info``
fails the lab installs Debian's ``docker.io`` (if ``dockerd`` is missing),
picks the iptables variant the kernel accepts, and starts ``dockerd`` in the
background itself, logging to the lab state dir and recording its PID there.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from provision.lab import state
from provision.lab.commands import apt_install, have, ok, require_root, run, which
from provision.lab.errors import LabError

log = logging.getLogger("provision.lab")

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Engine:
    """The engine in use: ``pid`` is dockerd's when the lab started it."""

    pid: int | None
    started_here: bool
    server_version: str


def server_version() -> str | None:
    """dockerd's version when ``docker info`` answers, else None."""
    if not have("docker"):
        return None
    try:
        proc = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=20)
    except LabError:
        return None
    version = proc.stdout.strip()
    if proc.returncode != 0 or not version or "error" in version.lower():
        return None
    return version


def _pid_alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"dockerd" in cmdline.split(b"\0", 1)[0]


def recorded_pid() -> int | None:
    """The PID of the dockerd this lab started, when it is still running."""
    path = state.dockerd_pid_path()
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def choose_iptables() -> str:
    """Make ``iptables`` point at a variant that works here; returns which one."""
    if ok(["iptables", "-w", "-L", "-n"]):
        version = run(["iptables", "-V"], check=False).stdout.strip()
        return "nft" if "nf_tables" in version else "legacy"
    for variant in ("nft", "legacy"):
        binary = which(f"iptables-{variant}")
        if binary and ok([binary, "-w", "-L", "-n"]):
            run(["update-alternatives", "--set", "iptables", binary])
            binary6 = which(f"ip6tables-{variant}")
            if binary6:
                run(["update-alternatives", "--set", "ip6tables", binary6], check=False)
            log.info("iptables switched to the %s variant", variant)
            return variant
    raise LabError(
        "neither iptables-nft nor iptables-legacy works on this kernel",
        "dockerd needs iptables for its bridge NAT: enable nf_tables or ip_tables in the kernel",
    )


def _start_dockerd() -> int:
    log_path = state.dockerd_log_path()
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [which("dockerd") or "dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    state.dockerd_pid_path().write_text(f"{proc.pid}\n")
    log.info("dockerd started, pid %d, log %s", proc.pid, log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise LabError(f"dockerd exited with status {proc.returncode}:\n{tail}", f"read {log_path}")
        if server_version():
            return proc.pid
        time.sleep(0.25)
    raise LabError(
        f"dockerd (pid {proc.pid}) did not answer within {READY_TIMEOUT_S:.0f} s",
        f"read {log_path}",
    )


def ensure_engine() -> Engine:
    """Return a working engine, installing and starting dockerd when needed."""
    version = server_version()
    if version:
        return Engine(pid=recorded_pid(), started_here=False, server_version=version)
    require_root("starting dockerd")
    if not have("dockerd"):
        apt_install(["docker.io"])
        # Without systemd the package's init script may already have started it.
        version = server_version()
        if version:
            return Engine(pid=recorded_pid(), started_here=False, server_version=version)
    variant = choose_iptables()
    log.info("iptables variant: %s", variant)
    started = time.monotonic()
    pid = _start_dockerd()
    version = server_version() or "?"
    log.info("dockerd %s ready in %.1f s", version, time.monotonic() - started)
    return Engine(pid=pid, started_here=True, server_version=version)


def stop_dockerd(timeout: float = 30.0) -> bool:
    """Stop the dockerd this lab started (by its recorded PID only)."""
    pid = recorded_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.2)
    state.dockerd_pid_path().unlink(missing_ok=True)
    return True

"""SSH from this machine to lab hosts with the lab's key and known_hosts."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from provision.lab import state
from provision.lab.commands import run


def ssh_args(address: str, command: Sequence[str], base: Path | None = None, timeout_s: int = 5) -> list[str]:
    """The ``ssh`` argument list that runs ``command`` as root on ``address``.

    ssh hands the remote shell one string, so ``command`` is quoted here:
    each item reaches the remote program as one argument, unexpanded.
    """
    return [
        "ssh",
        "-i",
        str(state.key_path(base)),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={state.known_hosts_path(base)}",
        "-o",
        f"ConnectTimeout={timeout_s}",
        "-o",
        "LogLevel=ERROR",
        f"root@{address}",
        "--",
        shlex.join(command),
    ]


def ssh_run(
    address: str,
    command: Sequence[str],
    *,
    timeout: float = 60,
    check: bool = True,
    base: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return run(ssh_args(address, command, base), timeout=timeout, check=check)


def forget(addresses: Sequence[str], base: Path | None = None) -> None:
    """Drop old host keys for ``addresses`` (a new container has new keys)."""
    known = state.known_hosts_path(base)
    if not known.is_file():
        return
    for address in addresses:
        run(["ssh-keygen", "-R", address, "-f", str(known)], check=False, timeout=10)
    known.with_name(known.name + ".old").unlink(missing_ok=True)

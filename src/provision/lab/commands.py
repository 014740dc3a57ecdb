"""Running external commands: argument lists only, errors turned into LabError."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from provision.lab.errors import LabError

log = logging.getLogger("provision.lab")

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    timeout: float | None = 600,
    env: Mapping[str, str] | None = None,
    fix: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` (never through a shell), capture text output.

    With ``check`` a non-zero exit or a timeout raises LabError carrying the
    tail of the command's output.
    """
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    log.debug("run: %s", " ".join(args))
    argv = list(args)
    argv[0] = which(argv[0]) or argv[0]
    try:
        proc = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {args[0]}", fix or f"install {args[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        if not check:
            return subprocess.CompletedProcess(list(args), 124, "", f"timed out after {timeout} s")
        raise LabError(f"`{' '.join(args)}` timed out after {timeout} s", fix) from exc
    if check and proc.returncode != 0:
        detail = _tail(proc.stderr or proc.stdout)
        raise LabError(f"`{' '.join(args)}` failed with exit status {proc.returncode}:\n{detail}", fix)
    return proc


def ok(args: Sequence[str], *, timeout: float | None = 30) -> bool:
    """True when ``args`` runs and exits 0 (missing command or timeout: False)."""
    try:
        return run(args, check=False, timeout=timeout).returncode == 0
    except LabError:
        return False


def which(command: str) -> str | None:
    """Full path of ``command`` on PATH, sbin directories included."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(command, path=path)


def have(command: str) -> bool:
    """True when ``command`` is on PATH (sbin directories included)."""
    return which(command) is not None


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root", "run it as root (for example with sudo)")


def apt_install(packages: Sequence[str]) -> None:
    """``apt-get install`` the packages from the host's own apt sources."""
    require_root("installing " + ", ".join(packages))
    log.info("apt-get install %s", " ".join(packages))
    args = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    first = run(args, check=False, env=_APT_ENV, timeout=900)
    if first.returncode == 0:
        return
    # Package lists may be missing or stale on a fresh machine.
    run(["apt-get", "update"], env=_APT_ENV, timeout=600, fix="check the host's apt sources")
    run(
        args,
        env=_APT_ENV,
        timeout=900,
        fix="check that the host's apt sources carry these packages",
    )


def ensure_command(command: str, package: str) -> None:
    """Install ``package`` when ``command`` is missing."""
    if not have(command):
        apt_install([package])
    if not have(command):
        raise LabError(f"{command} is still missing after installing {package}", f"install {package} by hand")

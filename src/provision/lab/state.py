"""Where the lab keeps its state: SSH key, dockerd pid/log, inventory, known_hosts.

Default ``${XDG_STATE_HOME:-~/.local/state}/provision/lab``; the environment
variable ``PROVISION_LAB_DIR`` overrides it. Cached build artefacts (the rootfs
tarball) live in ``${XDG_CACHE_HOME:-~/.cache}/provision/lab``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from provision.lab.commands import run

ENV_DIR = "PROVISION_LAB_DIR"
KEY_NAME = "id_ed25519"


def _xdg(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "")
    base = Path(value) if value and Path(value).is_absolute() else Path.home() / default
    return base / "provision" / "lab"


def state_dir() -> Path:
    """The lab state directory (created 0700)."""
    override = os.environ.get(ENV_DIR, "")
    path = Path(override).expanduser() if override else _xdg("XDG_STATE_HOME", ".local/state")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def lab_id() -> str:
    """This lab's identity (from its state dir): its containers carry it, so `down()` of one
    lab never removes another lab's hosts on the same machine."""
    return hashlib.sha1(str(state_dir()).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """The lab cache directory (rootfs tarballs)."""
    path = _xdg("XDG_CACHE_HOME", ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def key_path(base: Path | None = None) -> Path:
    return (base or state_dir()) / KEY_NAME


def known_hosts_path(base: Path | None = None) -> Path:
    return (base or state_dir()) / "known_hosts"


def inventory_path(base: Path | None = None) -> Path:
    return (base or state_dir()) / "hosts.yml"


def api_keys_path(base: Path | None = None) -> Path:
    """The lab gateway's API keys (inventory/lab.yml reads them as gateway_api_keys), 0600."""
    return (base or state_dir()) / "gateway_api_keys.yml"


def ensure_api_keys(base: Path | None = None) -> Path:
    """One random key for the lab's gateway, written once, readable by root only."""
    import secrets

    path = api_keys_path(base)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"- name: lab\n  key: sk-lab-{secrets.token_urlsafe(24)}\n")
    return path


def bundles_dir(base: Path | None = None) -> Path:
    """The lab's model bundles (`provision models bundle` layout: <model>/<quant>/)."""
    return (base or state_dir()) / "bundles"


def tiny_model_path(base: Path | None = None) -> Path:
    """The lab's model: the tiny GGUF that llama.cpp serves on the lab's engine nodes."""
    return (base or state_dir()) / "models" / "tiny-llama-test.gguf"


def dockerd_pid_path(base: Path | None = None) -> Path:
    return (base or state_dir()) / "dockerd.pid"


def dockerd_log_path(base: Path | None = None) -> Path:
    return (base or state_dir()) / "dockerd.log"


def ensure_ssh_key(base: Path | None = None) -> Path:
    """The lab's ed25519 key pair (private key 0600), generated on first use."""
    key = key_path(base)
    pub = key.with_name(key.name + ".pub")
    if not (key.is_file() and pub.is_file()):
        key.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision-lab", "-f", str(key)],
            fix="install openssh-client",
        )
    key.chmod(0o600)
    return key


def public_key(base: Path | None = None) -> str:
    key = ensure_ssh_key(base)
    return key.with_name(key.name + ".pub").read_text().strip() + "\n"


def ssh_common_args(base: Path | None = None) -> str:
    return f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts_path(base)}"


def render_inventory(hosts: Mapping[str, str], key: Path, common_args: str) -> str:
    """YAML inventory fragment: group ``lab`` with one entry per host.

    Values are JSON-quoted strings, which YAML reads as plain strings.
    """
    lines = ["all:", "  children:", "    lab:", "      hosts:"]
    if not hosts:
        lines[-1] += " {}"
    for name in sorted(hosts):
        lines += [
            f"        {json.dumps(name)}:",
            f"          ansible_host: {json.dumps(hosts[name])}",
            "          ansible_user: root",
            f"          ansible_ssh_private_key_file: {json.dumps(str(key))}",
            f"          ansible_ssh_common_args: {json.dumps(common_args)}",
        ]
    return "\n".join(lines) + "\n"


def write_inventory(hosts: Mapping[str, str], base: Path | None = None) -> Path:
    """Write ``hosts.yml`` for ``hosts`` (name -> IP); returns its path."""
    path = inventory_path(base)
    text = render_inventory(hosts, key_path(base), ssh_common_args(base))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


@contextlib.contextmanager
def locked(base: Path | None = None) -> Iterator[None]:
    """Hold the lab lock so two up()/down() calls cannot interleave."""
    with open((base or state_dir()) / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

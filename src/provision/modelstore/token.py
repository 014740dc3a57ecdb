"""The hub token: `HF_TOKEN` from the environment, or a file (an Ansible Vault file or a plain
0600 file) holding the token or a YAML mapping with `hf_token`. The token is never logged,
never put on a command line and never written into a bundle."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from provision.errors import InvalidInput, Problem

VAULT_HEADER = "$ANSIBLE_VAULT"


def _problem(path: Path, message: str, fix: str) -> InvalidInput:
    return InvalidInput([Problem(str(path), "", message, fix)])


def _vault_password(password_file: Path | None) -> bytes:
    path = password_file or (
        Path(os.environ["ANSIBLE_VAULT_PASSWORD_FILE"])
        if os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
        else None
    )
    if path is None:
        raise _problem(
            Path("--token-file"),
            "the token file is an Ansible Vault file but no vault password was given",
            "pass --vault-password-file FILE or set ANSIBLE_VAULT_PASSWORD_FILE",
        )
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise _problem(
            path, f"cannot read the vault password file: {exc.strerror}", "check the path"
        ) from None


def read_token_file(path: Path, vault_password_file: Path | None = None) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _problem(path, f"cannot read the token file: {exc.strerror}", "check the path") from None
    if raw.lstrip().startswith(VAULT_HEADER.encode()):
        from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret

        secret = VaultSecret(_vault_password(vault_password_file))
        try:
            raw = VaultLib([("default", secret)]).decrypt(raw)
        except AnsibleVaultError:
            raise _problem(path, "cannot decrypt the vault file", "check the vault password") from None
    elif path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise _problem(
            path,
            "the plain token file is readable by others",
            f"chmod 600 {path}, or encrypt it with ansible-vault",
        )
    text = raw.decode().strip()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = text
    if isinstance(data, dict):
        data = data.get("hf_token") or data.get("models_hub_token")
    if not isinstance(data, str) or not data.strip():
        raise _problem(path, "no token in the file", "put the token alone, or as `hf_token: ...`")
    return data.strip()


def resolve_token(token_file: Path | None, vault_password_file: Path | None = None) -> str | None:
    if token_file is not None:
        return read_token_file(token_file, vault_password_file)
    return os.environ.get("HF_TOKEN") or None

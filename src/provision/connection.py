"""How to reach each host of an inventory, as Ansible itself resolves it.

Read-only fleet commands (`provision status`) talk to hosts over plain SSH in parallel instead of
running a playbook. They need the same connection settings a playbook run would use, with the
inventory's variables templated (inventory/lab.yml reads its hosts' addresses through lookups),
so this module asks Ansible's own inventory and variable managers instead of re-implementing
Ansible's precedence rules.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from provision.errors import InvalidInput, Problem

# The variables a command needs beyond the connection, templated per host.
EXTRA_VARS = (
    "provision_engine_bind_address",
    "llamacpp_version",
    "ollama_version",
    "vllm_image_tag",
    "tgi_image_tag",
    "nvidia_driver_branch",
)


_PLUGINS_READY = False


@dataclass
class Connection:
    host: str
    address: str
    user: str | None = None
    port: int | None = None
    key_file: str | None = None
    common_args: list[str] = field(default_factory=list)
    local: bool = False
    groups: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the variables could not be resolved

    def ssh_argv(self, control_dir: Path, timeout_s: int = 5) -> list[str]:
        """`ssh ... HOST` (without the remote command), multiplexed over a control socket."""
        argv = [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={timeout_s}",
            "-o", "ControlMaster=auto",
            "-o", "ControlPersist=60s",
            "-o", f"ControlPath={control_dir}/%C",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip
        if self.port:
            argv += ["-p", str(self.port)]
        if self.key_file:
            argv += ["-i", self.key_file, "-o", "IdentitiesOnly=yes"]
        argv += self.common_args
        target = f"{self.user}@{self.address}" if self.user else self.address
        return [*argv, target]


def _setup_vault(loader: Any) -> None:
    """Vault secrets from ANSIBLE_VAULT_PASSWORD_FILE / ansible.cfg, as ansible-playbook would."""
    from ansible import constants as C
    from ansible.cli import CLI

    files = [C.DEFAULT_VAULT_PASSWORD_FILE] if C.DEFAULT_VAULT_PASSWORD_FILE else []
    if files or C.DEFAULT_VAULT_IDENTITY_LIST:
        secrets = CLI.setup_vault_secrets(
            loader, vault_ids=list(C.DEFAULT_VAULT_IDENTITY_LIST), vault_password_files=files
        )
        loader.set_vault_secrets(secrets)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class AnsibleInventory:
    """An inventory as ansible-playbook sees it: Ansible's own InventoryManager, VariableManager
    and Templar, so group_vars, precedence, lookups and vaulted values resolve the same way."""

    def __init__(self, path: Path) -> None:
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader
        from ansible.vars.manager import VariableManager

        global _PLUGINS_READY
        if not _PLUGINS_READY:  # once per process: Ansible warns when its collection finder is set twice
            init_plugin_loader()
            _PLUGINS_READY = True
        self.path = path
        self.loader = DataLoader()
        try:
            _setup_vault(self.loader)
            self.inventory = InventoryManager(loader=self.loader, sources=[str(path.resolve())])
        except AnsibleError as exc:
            raise InvalidInput(
                [Problem(str(path), "", f"Ansible cannot read it: {first_line(exc)}", "")]
            ) from None
        self.variables = VariableManager(loader=self.loader, inventory=self.inventory)

    def hosts(self, group: str | None = None) -> list[str]:
        if group is None:
            return [h.name for h in self.inventory.get_hosts()]
        return list(self.inventory.get_groups_dict().get(group) or [])

    def groups_of(self, host: str) -> list[str]:
        return sorted(g.name for g in self.inventory.get_host(host).get_groups())

    def resolver(self, host: str) -> Any:
        """A function (var, default) -> the variable's templated value for the host; raises
        Ansible's errors for values that cannot be resolved."""
        from ansible.template import Templar

        variables = self.variables.get_vars(host=self.inventory.get_host(host))
        templar = Templar(loader=self.loader, variables=variables)

        def get(name: str, default: Any = None) -> Any:
            if name not in variables:
                return default
            return templar.template(variables[name])

        return get


def resolve(inventory: Path, hosts: Iterable[str] | None = None) -> dict[str, Connection]:
    """Connection settings (and EXTRA_VARS) for every host, or the named ones."""
    if not inventory.exists():
        raise InvalidInput(
            [Problem(str(inventory), "", "the inventory file does not exist", "check the path")]
        )
    inv = AnsibleInventory(inventory)
    wanted = set(hosts) if hosts is not None else None
    out: dict[str, Connection] = {}
    for name in inv.hosts():
        if wanted is not None and name not in wanted:
            continue
        get = inv.resolver(name)
        conn = Connection(host=name, address=name, groups=inv.groups_of(name))
        try:
            conn.address = str(get("ansible_host", name))
            conn.local = get("ansible_connection") == "local"
            user = get("ansible_user")
            conn.user = str(user) if user else None
            port = get("ansible_port")
            conn.port = int(port) if port else None
            key = get("ansible_ssh_private_key_file") or get("ansible_private_key_file")
            conn.key_file = str(key) if key else None
            common = " ".join(
                str(get(n, "") or "") for n in ("ansible_ssh_common_args", "ansible_ssh_extra_args")
            )
            conn.common_args = shlex.split(common)
            conn.vars = {var: get(var) for var in EXTRA_VARS}
            conn.vars = {k: v for k, v in conn.vars.items() if v is not None}
        except Exception as exc:  # any templating error makes this host unresolvable
            conn.error = f"cannot resolve its connection variables: {first_line(exc)}"
        out[name] = conn
    return out


T = TypeVar("T")


def on_each_host(
    inventory: Path, limit: Iterable[str] | None, work: Callable[[Connection, Path], T]
) -> list[T]:
    """`work(connection, ssh_control_dir)` on every host (sorted by name), side by side (64 at
    most), over multiplexed SSH connections kept in ~/.cache/provision/ssh."""
    conns = resolve(inventory, limit)
    control_dir = Path.home() / ".cache" / "provision" / "ssh"
    control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with ThreadPoolExecutor(max_workers=max(1, min(64, len(conns)))) as pool:
        futures = [pool.submit(work, conn, control_dir) for _name, conn in sorted(conns.items())]
        return [f.result() for f in futures]

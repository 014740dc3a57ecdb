"""The egress allowlist: an nftables table that filters every forwarded packet.

Its base chain hooks ``forward`` at priority -10, ahead of the chains Docker
(re)creates through iptables at priority 0, so a dockerd restart cannot open
a way around it. It accepts established/related traffic, traffic between lab
containers, and new connections to the package mirror on tcp 80/443; it
rejects everything else that is forwarded.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from provision.lab.commands import ensure_command, require_root, run
from provision.lab.errors import LabError

log = logging.getLogger("provision.lab")

TABLE = "provision_lab"
FAMILY = "inet"
PRIORITY = -10
MIRROR_PORTS = (80, 443)


def _set(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def render_ruleset(
    mirror_addresses: Iterable[str],
    lab_subnets: Iterable[str] = (),
    table: str = TABLE,
) -> str:
    """The nft script that atomically (re)creates the allowlist table.

    Loaded with ``nft -f``: the leading ``table`` line creates the table when
    it is missing so that ``delete table`` always succeeds, and the whole file
    is applied as one transaction.
    """
    v4: list[str] = []
    v6: list[str] = []
    for address in mirror_addresses:
        ip = ipaddress.ip_address(address)
        (v4 if ip.version == 4 else v6).append(str(ip))
    nets4: list[str] = []
    nets6: list[str] = []
    for subnet in lab_subnets:
        net = ipaddress.ip_network(subnet, strict=False)
        (nets4 if net.version == 4 else nets6).append(str(net))
    ports = _set(str(p) for p in MIRROR_PORTS)

    rules = [
        "ct state established,related accept",
    ]
    for net in nets4:
        rules.append(f"ip saddr {net} ip daddr {net} accept")
    for net in nets6:
        rules.append(f"ip6 saddr {net} ip6 daddr {net} accept")
    if v4:
        rules.append(f"ip daddr {_set(v4)} tcp dport {ports} counter accept")
    if v6:
        rules.append(f"ip6 daddr {_set(v6)} tcp dport {ports} counter accept")
    rules += [
        "meta l4proto tcp counter reject with tcp reset",
        "counter reject with icmpx type admin-prohibited",
    ]
    body = "\n".join(f"\t\t{rule}" for rule in rules)
    return (
        f"table {FAMILY} {table}\n"
        f"delete table {FAMILY} {table}\n"
        f"table {FAMILY} {table} {{\n"
        f"\tchain forward {{\n"
        f"\t\ttype filter hook forward priority {PRIORITY}; policy accept;\n"
        f"{body}\n"
        f"\t}}\n"
        f"}}\n"
    )


def ensure_nft() -> None:
    ensure_command("nft", "nftables")


def install(mirror_addresses: Iterable[str], lab_subnets: Iterable[str] = ()) -> str:
    """Install (or atomically replace) the allowlist; returns the loaded ruleset."""
    require_root("installing the egress allowlist")
    addresses = list(mirror_addresses)
    if not addresses:
        raise LabError("no mirror address to allow", "check the host's apt sources and resolver")
    ensure_nft()
    ruleset = render_ruleset(addresses, lab_subnets)
    run(
        ["nft", "-f", "-"],
        input_text=ruleset,
        fix="check that the kernel has nf_tables (nft list ruleset must work as root)",
    )
    log.info("egress allowlist %s %s installed (mirror %s)", FAMILY, TABLE, ", ".join(addresses))
    return ruleset


def installed() -> bool:
    """True when the allowlist table is loaded."""
    try:
        return run(["nft", "list", "table", FAMILY, TABLE], check=False, timeout=30).returncode == 0
    except LabError:
        return False


def remove() -> None:
    """Remove the allowlist table (no-op when absent)."""
    require_root("removing the egress allowlist")
    if installed():
        run(["nft", "delete", "table", FAMILY, TABLE])
        log.info("egress allowlist removed")

"""The lab's user-defined docker network (hosts resolve each other by name there)."""

from __future__ import annotations

import logging
from pathlib import Path

from provision.lab.commands import run
from provision.lab.errors import LabError

log = logging.getLogger("provision.lab")

NETWORK = "provision-lab"
LABEL_KEY = "provision.lab"
LABEL = f"{LABEL_KEY}=1"


def uplink_mtu(address: str) -> int | None:
    """MTU of the interface this machine uses to reach ``address``."""
    proc = run(["ip", "-o", "route", "get", address], check=False, timeout=10)
    fields = proc.stdout.split()
    if proc.returncode != 0 or "dev" not in fields:
        return None
    device = fields[fields.index("dev") + 1]
    try:
        return int(Path(f"/sys/class/net/{device}/mtu").read_text().strip())
    except (OSError, ValueError):
        return None


def subnets(name: str = NETWORK) -> list[str] | None:
    """The network's subnets, or None when it does not exist."""
    proc = run(
        [
            "docker",
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            name,
        ],
        check=False,
        timeout=30,
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.split()


def ensure_network(mtu: int | None = None, name: str = NETWORK) -> list[str]:
    """Create the lab network when missing; returns its subnets."""
    found = subnets(name)
    if found is None:
        args = ["docker", "network", "create", "--driver", "bridge", "--label", LABEL]
        if mtu:
            # Match the uplink so large replies from the mirror need no PMTU dance.
            args += ["--opt", f"com.docker.network.driver.mtu={mtu}"]
        run([*args, name], timeout=60)
        log.info("docker network %s created", name)
        found = subnets(name)
    if not found:
        raise LabError(f"docker network {name} has no IPv4 subnet", f"docker network rm {name}, then retry")
    return found


def remove_labelled_networks() -> list[str]:
    """Remove every network carrying the lab label."""
    proc = run(["docker", "network", "ls", "-q", "--filter", f"label={LABEL}"], timeout=30)
    ids = proc.stdout.split()
    if ids:
        run(["docker", "network", "rm", *ids], timeout=60)
    return ids

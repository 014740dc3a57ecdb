"""The public flow: up(), down(), status().

Order in up() is the safety contract: the egress allowlist is loaded before
dockerd is started and reloaded with the lab subnet before any test host
starts, so no container ever runs without it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from provision.lab import egress, engine, hosts, image, mirror, network, state
from provision.lab.commands import require_root
from provision.lab.errors import LabError

log = logging.getLogger("provision.lab")


@dataclass(frozen=True)
class LabStatus:
    """What the lab has right now."""

    engine: str | None
    dockerd_pid: int | None
    egress: bool
    hosts: dict[str, str] = field(default_factory=dict)
    state_dir: Path | None = None
    inventory: Path | None = None

    def as_text(self) -> str:
        table = f"nftables {egress.FAMILY} {egress.TABLE}"
        lines = [
            f"engine:      {('dockerd ' + self.engine) if self.engine else 'not running'}",
            f"dockerd pid: {self.dockerd_pid if self.dockerd_pid else '(not started by the lab)'}",
            f"egress:      {table if self.egress else 'NOT installed'}",
            f"state dir:   {self.state_dir}",
            f"inventory:   {self.inventory or '-'}",
            "hosts:" + ("" if self.hosts else "       none"),
        ]
        lines += [f"  {name:<16} {address}" for name, address in sorted(self.hosts.items())]
        return "\n".join(lines)


def mirror_hosts(mirrors: list[mirror.Mirror]) -> dict[str, str]:
    """Mirror host name -> IPv4, for the test hosts' /etc/hosts (they get no DNS)."""
    pinned: dict[str, str] = {}
    for found in mirrors:
        if found.ipv4 is None:
            raise LabError(
                f"the package mirror {found.host} has no IPv4 address",
                "the lab network is IPv4: use a mirror with an IPv4 address",
            )
        pinned[found.host] = found.ipv4
    return pinned


def up(names: list[str]) -> dict[str, str]:
    """Start the named test hosts; returns host name -> IP (SSH as root works)."""
    require_root("the local lab")
    if not names:
        raise LabError("no test host names given", "for example: python -m provision.lab up node1 node2")
    for name in names:
        hosts.check_name(name)
    with state.locked():
        started = time.monotonic()
        sources = mirror.read_host_sources()
        mirrors = mirror.mirrors(sources, image.SUITE)
        addresses = [a for m in mirrors for a in m.addresses]
        pinned = mirror_hosts(mirrors)
        log.info("mirror: %s", ", ".join(f"{h} ({a})" for h, a in pinned.items()))

        # 1. The allowlist goes in before dockerd (and so any container) runs.
        current = network.subnets() if engine.server_version() else None
        egress.install(addresses, current or ())

        # 2. Engine, 3. image.
        mark = time.monotonic()
        eng = engine.ensure_engine()
        log.info(
            "engine dockerd %s (pid %s) ready after %.1f s",
            eng.server_version,
            eng.pid,
            time.monotonic() - mark,
        )
        mark = time.monotonic()
        recipe = image.Recipe(
            mirror_uri=mirror.primary_uri(sources, image.SUITE),
            sources_text=image.render_sources(mirror.debian_sources(sources, image.SUITE)),
        )
        tag = image.ensure_image(recipe)
        log.info("image %s ready after %.1f s", tag, time.monotonic() - mark)

        # 4. Lab network, then the allowlist again with its subnet, before any host.
        subnets = network.ensure_network(network.uplink_mtu(pinned[next(iter(pinned))]))
        egress.install(addresses, subnets)

        # 5. Hosts.
        mark = time.monotonic()
        started_hosts = hosts.start_hosts(names, tag, pinned)
        log.info("hosts ready after %.1f s", time.monotonic() - mark)
        inventory = state.write_inventory(hosts.lab_hosts())
        model = ensure_tiny_bundle(ensure_tiny_model())
        state.ensure_api_keys()
        log.info("inventory %s, model %s; up took %.1f s", inventory, model, time.monotonic() - started)
        return started_hosts


def ensure_tiny_model() -> Path:
    """Write the lab's tiny GGUF model once (inventory/lab.yml's deployments serve it)."""
    path = state.tiny_model_path()
    if path.exists():
        return path
    try:
        from provision.lab import tinymodel
    except ImportError as exc:
        raise LabError(
            f"cannot write the lab's tiny model: {exc}",
            "install the lab's extra: pip install 'provision[lab]' (the quickstart does)",
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    tinymodel.write_tiny_gguf(partial)
    partial.replace(path)
    return path


def ensure_tiny_bundle(model: Path) -> Path:
    """The lab's model as a bundle (files + manifest.json) in the state dir: inventory/lab.yml's
    deployments name it as their source, so `provision up` places it with the models stage
    (controller -> first node -> peers, verified on the node), as a site carries a bundle in."""
    from provision.modelstore.bundle import Target, bundle_dir, bundle_from_path
    from provision.modelstore.manifest import Manifest

    target = Target(model="tiny-llama-test", quantization="F32", repo="", include=[], format="gguf")
    out = state.bundles_dir()
    where = bundle_dir(out, target)
    try:
        manifest = Manifest.read(where)
        entry = manifest.files[0]
        if len(manifest.files) == 1 and (where / entry.path).stat().st_size == entry.size:
            return where
    except (OSError, ValueError, IndexError):
        pass
    where, _manifest = bundle_from_path(target, out, model)
    return where


def down() -> list[str]:
    """Remove every lab container, volume and network (by label); returns removed container ids.

    The egress allowlist, dockerd, the image and the cached tarball stay.
    """
    with state.locked():
        removed: list[str] = []
        if engine.server_version():
            removed = hosts.remove_all()
            if not hosts.lab_containers(every_lab=True):  # another lab may still use the network
                network.remove_labelled_networks()
        state.write_inventory({})
        state.known_hosts_path().unlink(missing_ok=True)
        log.info("lab down: %d container(s) removed", len(removed))
        return removed


def status() -> LabStatus:
    """Engine, allowlist and running lab hosts."""
    version = engine.server_version()
    inventory = state.inventory_path()
    return LabStatus(
        engine=version,
        dockerd_pid=engine.recorded_pid(),
        egress=egress.installed(),
        hosts=hosts.lab_hosts() if version else {},
        state_dir=state.state_dir(),
        inventory=inventory if inventory.is_file() else None,
    )

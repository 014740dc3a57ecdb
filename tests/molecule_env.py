"""Prepare this machine for the Molecule scenarios and print their environment.

Usage (from the repository root, as root)::

    eval "$(.venv/bin/python tests/molecule_env.py)"
    .venv/bin/molecule test -s common
    .venv/bin/molecule test -s docker

It uses the lab's own functions (``provision.lab``) in the lab's safety order:

1. read the package mirror from this host's apt sources and resolver (never
   from a file in the repository);
2. load the egress allowlist before any engine or container runs;
3. make sure dockerd answers (start Debian's dockerd by hand when needed);
4. make sure the Debian 12 systemd test-host image exists (debootstrap or the
   cached tarball);

then prints ``export NAME=value`` lines on stdout for ``molecule/*/molecule.yml``
(which is not Jinja: it reads ``${NAME}``). Progress goes to stderr.

Variables printed:

``PROVISION_MOLECULE_IMAGE``
    the test-host image tag (``provision-lab/debian12-systemd:<recipe hash>``).
``PROVISION_MOLECULE_ETC_HOSTS``
    the package mirror host names with their IPv4 addresses, as a JSON
    object (``{"HOST": "ADDRESS"}``), for the containers' ``etc_hosts``: they
    get no DNS (``dns_servers: [127.0.0.1]``). Molecule substitutes it into
    molecule.yml before parsing the YAML, so the JSON text becomes a mapping.
``PROVISION_MOLECULE_MTU``
    the MTU of the uplink towards the mirror, for the scenario networks
    (docker's default bridge uses 1500, larger than some uplinks).

It also checks that ``molecule/shared/base.yml`` grants the same capabilities
as the lab's own hosts (``provision.lab.hosts.CAPABILITIES``): YAML cannot
import the list, so drift is caught here.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

# Run from a checkout without installing: put src/ on the path.
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import yaml  # noqa: E402

from provision.lab import egress, engine, hosts, image, lifecycle, mirror, network, state  # noqa: E402
from provision.lab.commands import require_root  # noqa: E402
from provision.lab.errors import LabError  # noqa: E402

log = logging.getLogger("provision.lab")

DEFAULT_MTU = 1500
BASE_CONFIG = Path(__file__).resolve().parents[1] / "molecule" / "shared" / "base.yml"


def check_base_config(path: Path = BASE_CONFIG) -> None:
    """The shared Molecule platform must grant the lab hosts' capabilities."""
    # Molecule substitutes ${...} before parsing; YAML itself does not care.
    config = yaml.safe_load(path.read_text())
    platforms = config.get("platforms") or []
    for platform in platforms:
        granted = list(platform.get("capabilities") or [])
        if sorted(granted) != sorted(hosts.CAPABILITIES):
            missing = sorted(set(hosts.CAPABILITIES) - set(granted))
            extra = sorted(set(granted) - set(hosts.CAPABILITIES))
            raise LabError(
                f"{path}: platform {platform.get('name')} capabilities differ from the lab hosts'"
                f" (missing {missing or 'none'}, extra {extra or 'none'})",
                "copy provision.lab.hosts.CAPABILITIES into molecule/shared/base.yml",
            )


def prepare() -> dict[str, str]:
    """Allowlist, engine and image in place; returns the variables to export."""
    require_root("the Molecule test hosts")
    check_base_config()
    with state.locked():
        sources = mirror.read_host_sources()
        mirrors = mirror.mirrors(sources, image.SUITE)
        addresses = [address for found in mirrors for address in found.addresses]
        primary_host = mirror.AptSource(
            uri=mirror.primary_uri(sources, image.SUITE), suites=(), components=()
        ).host
        if primary_host not in {found.host for found in mirrors}:
            raise LabError(f"the base suite's mirror {primary_host} was not resolved", "check /etc/apt")
        pinned = lifecycle.mirror_hosts(mirrors)
        # 1. The allowlist before dockerd and any container. Keep the lab
        #    network's subnet in it when that network exists (another user's
        #    lab hosts must keep talking to each other).
        lab_subnets = network.subnets() if engine.server_version() else None
        egress.install(addresses, lab_subnets or ())

        # 2. Engine.
        eng = engine.ensure_engine()
        log.info("engine dockerd %s", eng.server_version)

        # 3. Image.
        recipe = image.Recipe(
            mirror_uri=mirror.primary_uri(sources, image.SUITE),
            sources_text=image.render_sources(mirror.debian_sources(sources, image.SUITE)),
        )
        tag = image.ensure_image(recipe)

        # dockerd may have (re)created its iptables chains: load the allowlist
        # once more, after the engine, with the same subnets.
        lab_subnets = network.subnets()
        egress.install(addresses, lab_subnets or ())

    mtu = network.uplink_mtu(pinned[primary_host]) or DEFAULT_MTU
    return {
        "PROVISION_MOLECULE_IMAGE": tag,
        "PROVISION_MOLECULE_ETC_HOSTS": json.dumps(pinned, sort_keys=True),
        "PROVISION_MOLECULE_MTU": str(mtu),
    }


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="molecule-env: %(message)s", stream=sys.stderr)
    try:
        variables = prepare()
    except LabError as exc:
        print(f"molecule-env: error: {exc}", file=sys.stderr)
        print("false  # molecule_env.py failed, see stderr")
        return 1
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

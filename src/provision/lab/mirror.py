"""The Debian package mirror the host already uses, read from its apt sources.

Nothing here names a mirror: the lab finds it at run time in the host's
``/etc/apt/sources.list`` (one-line format) and ``sources.list.d/*.list`` /
``*.sources`` (deb822 format), and resolves it with the host's resolver.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from provision.lab.errors import LabError

APT_DIR = Path("/etc/apt")
SUPPORTED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry: a repository URI with its suites and components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    @property
    def host(self) -> str:
        return urlsplit(self.uri).hostname or ""

    @property
    def scheme(self) -> str:
        return urlsplit(self.uri).scheme


@dataclass(frozen=True)
class Mirror:
    """A mirror host, the URIs served from it, and its addresses."""

    host: str
    uris: tuple[str, ...]
    addresses: tuple[str, ...]

    @property
    def ipv4(self) -> str | None:
        for address in self.addresses:
            if ipaddress.ip_address(address).version == 4:
                return address
        return None


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Split deb822 text into stanzas of field -> value (continuations joined)."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, last = {}, None
            continue
        if raw[0] in " \t":
            if last is not None:
                line = raw.strip()
                if line != ".":
                    current[last] = f"{current[last]} {line}".strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        current[last] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_deb822(text: str) -> list[AptSource]:
    """Parse a deb822 ``*.sources`` file; only enabled ``deb`` stanzas count."""
    sources: list[AptSource] = []
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            sources.append(AptSource(uri=uri, suites=suites, components=components))
    return sources


def parse_one_line(text: str) -> list[AptSource]:
    """Parse one-line ``sources.list`` text; only ``deb`` lines count."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind != "deb":
            continue
        rest = rest.strip()
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                continue
            rest = rest[end + 1 :].strip()
        fields = rest.split()
        if len(fields) < 2:
            continue
        uri, suite, components = fields[0], fields[1], tuple(fields[2:])
        sources.append(AptSource(uri=uri, suites=(suite,), components=components))
    return sources


def read_host_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """All ``deb`` sources configured on this host."""
    sources: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(errors="replace"))
    return sources


def debian_sources(sources: list[AptSource], codename: str) -> list[AptSource]:
    """The sources that serve Debian ``codename`` (and its -updates/-security suites)."""
    picked: list[AptSource] = []
    for source in sources:
        if source.scheme not in SUPPORTED_SCHEMES:
            continue
        suites = tuple(s for s in source.suites if s == codename or s.startswith(codename + "-"))
        if suites:
            picked.append(AptSource(uri=source.uri, suites=suites, components=source.components))
    return picked


def primary_uri(sources: list[AptSource], codename: str) -> str:
    """The URI serving the base suite ``codename`` (what debootstrap needs)."""
    for source in debian_sources(sources, codename):
        if codename in source.suites:
            return source.uri
    raise LabError(
        f"no apt source of this host serves Debian {codename!r}",
        f"add a 'deb' entry for {codename} to /etc/apt/sources.list.d/ (the lab uses the host's own mirror)",
    )


def resolve(host: str) -> tuple[str, ...]:
    """The host's resolver's addresses for ``host``, IPv4 first, deduplicated."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise LabError(
            f"cannot resolve the package mirror {host!r}: {exc}",
            "check the host's resolver (/etc/resolv.conf) and network",
        ) from exc
    found: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return tuple(sorted(found, key=lambda a: ipaddress.ip_address(a).version))


def mirrors(sources: list[AptSource], codename: str) -> list[Mirror]:
    """One Mirror per host serving ``codename``, with resolved addresses."""
    by_host: dict[str, list[str]] = {}
    for source in debian_sources(sources, codename):
        uris = by_host.setdefault(source.host, [])
        if source.uri not in uris:
            uris.append(source.uri)
    if not by_host:
        raise LabError(
            f"no http(s) apt source of this host serves Debian {codename!r}",
            "the lab only uses the Debian mirror the host already uses: configure one in /etc/apt",
        )
    return [Mirror(host=h, uris=tuple(u), addresses=resolve(h)) for h, u in by_host.items()]


def host_mirrors(codename: str = "bookworm", apt_dir: Path = APT_DIR) -> list[Mirror]:
    """The mirrors this host uses for ``codename``, resolved now."""
    return mirrors(read_host_sources(apt_dir), codename)

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from provision.lab import mirror
from provision.lab.errors import LabError

DEB822 = """\
# main archive
Types: deb deb-src
URIs: http://mirror.example.test/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.test/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 abc
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
Enabled: no
URIs: http://disabled.example.test/debian
Suites: bookworm
Components: main

Types: deb-src
URIs: http://src-only.example.test/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# comment
deb http://one.example.test/debian bookworm main non-free-firmware
deb [arch=amd64 signed-by=/k.gpg] https://two.example.test/debian-security bookworm-security main # x
deb-src http://one.example.test/debian bookworm main
deb http://third-party.example.test/apt stable main
deb file:/srv/local-repo ./

"""


def test_parse_deb822_keeps_enabled_deb_stanzas() -> None:
    sources = mirror.parse_deb822(DEB822)
    assert sources == [
        mirror.AptSource(
            uri="http://mirror.example.test/debian",
            suites=("bookworm", "bookworm-updates"),
            components=("main", "contrib"),
        ),
        mirror.AptSource(
            uri="http://mirror.example.test/debian-security",
            suites=("bookworm-security",),
            components=("main",),
        ),
    ]
    assert sources[0].host == "mirror.example.test"


def test_parse_deb822_several_uris_in_one_stanza() -> None:
    text = "Types: deb\nURIs: http://a.test/debian http://b.test/debian\nSuites: bookworm\n"
    hosts = [s.host for s in mirror.parse_deb822(text)]
    assert hosts == ["a.test", "b.test"]


def test_parse_one_line_handles_options_and_comments() -> None:
    sources = mirror.parse_one_line(ONE_LINE)
    assert [s.uri for s in sources] == [
        "http://one.example.test/debian",
        "https://two.example.test/debian-security",
        "http://third-party.example.test/apt",
        "file:/srv/local-repo",
    ]
    assert sources[0].suites == ("bookworm",)
    assert sources[0].components == ("main", "non-free-firmware")
    assert sources[1].suites == ("bookworm-security",)
    assert sources[1].components == ("main",)


def test_debian_sources_keeps_only_the_codename_over_http() -> None:
    sources = mirror.parse_one_line(ONE_LINE)
    picked = mirror.debian_sources(sources, "bookworm")
    assert [s.host for s in picked] == ["one.example.test", "two.example.test"]
    assert mirror.primary_uri(sources, "bookworm") == "http://one.example.test/debian"


def test_primary_uri_missing_raises_with_fix() -> None:
    with pytest.raises(LabError) as err:
        mirror.primary_uri(mirror.parse_deb822(DEB822), "trixie")
    assert err.value.fix


def test_mirrors_groups_by_host_and_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_getaddrinfo(host: str, *_args: object, **_kw: object) -> list[tuple[object, ...]]:
        assert host == "mirror.example.test"
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::80", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.80", 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.80", 0)),
        ]

    monkeypatch.setattr(mirror.socket, "getaddrinfo", fake_getaddrinfo)
    found = mirror.mirrors(mirror.parse_deb822(DEB822), "bookworm")
    assert len(found) == 1
    assert found[0].host == "mirror.example.test"
    assert found[0].addresses == ("192.0.2.80", "2001:db8::80")
    assert found[0].ipv4 == "192.0.2.80"
    assert len(found[0].uris) == 2


def test_resolve_failure_is_a_lab_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object, **_kw: object) -> None:
        raise socket.gaierror("no such name")

    monkeypatch.setattr(mirror.socket, "getaddrinfo", fail)
    with pytest.raises(LabError, match="cannot resolve"):
        mirror.resolve("mirror.example.test")


def test_read_host_sources_reads_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(ONE_LINE)
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "ignored.txt").write_text("deb http://x.test/ bookworm main\n")
    hosts = {s.host for s in mirror.read_host_sources(tmp_path)}
    assert hosts == {
        "one.example.test",
        "two.example.test",
        "third-party.example.test",
        "mirror.example.test",
        "",
    }

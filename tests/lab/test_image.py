from __future__ import annotations

import os
from pathlib import Path

from provision.lab import image
from provision.lab.mirror import AptSource


def _fake_rootfs(root: Path) -> None:
    for sub in ("etc/ssh", "etc/apt", "usr/lib/systemd/system", "var/lib/dbus", "usr/sbin"):
        (root / sub).mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    (root / "usr/lib/systemd/system/sys-kernel-debug.mount").write_text("")
    (root / "usr/lib/systemd/system/sys-kernel-tracing.mount").write_text("")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/dbus/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("secret")
    (root / "etc/apt/sources.list").write_text("deb http://old.test/debian bookworm main\n")
    (root / "usr/sbin/policy-rc.d").write_text("exit 101\n")


def test_customize_rootfs(tmp_path: Path) -> None:
    _fake_rootfs(tmp_path)
    image.customize_rootfs(tmp_path, "Types: deb\n")
    system = tmp_path / "etc/systemd/system"
    for unit in image.MASKED_UNITS:
        assert os.readlink(system / unit) == "/dev/null", unit
    for unit in ("sys-kernel-debug.mount", "sys-kernel-tracing.mount"):
        assert os.readlink(system / unit) == "/dev/null"
    assert (tmp_path / "etc/machine-id").read_text() == ""
    assert os.readlink(tmp_path / "var/lib/dbus/machine-id") == "/etc/machine-id"
    assert not list((tmp_path / "etc/ssh").glob("ssh_host_*"))
    assert (system / "multi-user.target.wants/ssh.service").is_symlink()
    assert (system / "ssh.service.wants" / image.HOSTKEY_UNIT_NAME).is_symlink()
    assert not (tmp_path / "etc/apt/sources.list").exists()
    assert (tmp_path / "etc/apt/sources.list.d/debian.sources").read_text() == "Types: deb\n"
    assert not (tmp_path / "usr/sbin/policy-rc.d").exists()


def test_required_packages() -> None:
    for package in ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt"):
        assert package in image.PACKAGES


def test_recipe_tag_follows_the_recipe() -> None:
    a = image.Recipe(mirror_uri="http://a.test/debian", sources_text="x")
    b = image.Recipe(mirror_uri="http://b.test/debian", sources_text="x")
    assert a.tag == image.Recipe(mirror_uri="http://a.test/debian", sources_text="x").tag
    assert a.tag != b.tag
    assert a.tag.startswith(image.REPOSITORY + ":")
    assert a.tarball(Path("/cache")).name == f"debian12-systemd-{a.digest}.tar"


def test_dockerfile_adds_stop_signal() -> None:
    text = image.DOCKERFILE.format(base="base:1")
    assert text.splitlines() == ["FROM base:1", "STOPSIGNAL SIGRTMIN+3"]


def test_render_sources_is_deb822() -> None:
    text = image.render_sources(
        [AptSource("http://m.test/debian", ("bookworm", "bookworm-updates"), ("main",))]
    )
    assert "URIs: http://m.test/debian\n" in text
    assert "Suites: bookworm bookworm-updates\n" in text
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" in text

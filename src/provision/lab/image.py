"""The Debian 12 systemd test-host image, built with no container registry.

``debootstrap --variant=minbase`` from the host's own mirror, a few edits so
systemd boots cleanly in a container, a tarball cached under
``${XDG_CACHE_HOME:-~/.cache}/provision/lab/``, ``docker import``, then a
two-line Dockerfile adding ``STOPSIGNAL SIGRTMIN+3`` (Docker 20.10's
``import --change`` refuses STOPSIGNAL). The tag carries a hash of the
recipe: a recipe change builds a new image, an existing tag skips all work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from provision.lab import state
from provision.lab.commands import ensure_command, run
from provision.lab.errors import LabError
from provision.lab.mirror import AptSource

log = logging.getLogger("provision.lab")

RECIPE_VERSION = 2
SUITE = "bookworm"
REPOSITORY = "provision-lab/debian12-systemd"
BASE_REPOSITORY = "provision-lab/debian12-rootfs"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "procps",
    "ca-certificates",
    "gnupg",
    "curl",
    "less",
)

# Units that fight tests in a container (TESTHOSTS.md): masked in the image.
MASKED_UNITS = (
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "systemd-timesyncd.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-modules-load.service",
    "systemd-sysctl.service",
    "systemd-remount-fs.service",
)
MASKED_GLOBS = ("sys-kernel-*.mount",)

# Each host gets its own SSH host keys at first boot (the image ships none).
HOSTKEY_UNIT_NAME = "provision-lab-ssh-hostkeys.service"
HOSTKEY_UNIT = """\
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=ssh.service
"""

DOCKERFILE = "FROM {base}\nSTOPSIGNAL SIGRTMIN+3\n"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the image's content."""

    mirror_uri: str
    sources_text: str

    @property
    def digest(self) -> str:
        payload = {
            "version": RECIPE_VERSION,
            "suite": SUITE,
            "packages": PACKAGES,
            "masked": MASKED_UNITS,
            "masked_globs": MASKED_GLOBS,
            "hostkey_unit": HOSTKEY_UNIT,
            "dockerfile": DOCKERFILE,
            "mirror": self.mirror_uri,
            "sources": self.sources_text,
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}:{self.digest}"

    @property
    def base_tag(self) -> str:
        return f"{BASE_REPOSITORY}:{self.digest}"

    def tarball(self, cache: Path | None = None) -> Path:
        return (cache or state.cache_dir()) / f"debian12-systemd-{self.digest}.tar"


def render_sources(sources: list[AptSource]) -> str:
    """A deb822 ``debian.sources`` for the image: the host's Debian sources."""
    stanzas = []
    for source in sources:
        stanzas.append(
            "Types: deb\n"
            f"URIs: {source.uri}\n"
            f"Suites: {' '.join(source.suites)}\n"
            f"Components: {' '.join(source.components) or 'main'}\n"
            f"Signed-By: {KEYRING}\n"
        )
    return "\n".join(stanzas)


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False, timeout=60).returncode == 0


def _symlink(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def customize_rootfs(root: Path, sources_text: str) -> None:
    """Edit a fresh debootstrap tree so systemd boots well inside a container."""
    system = root / "etc/systemd/system"
    unit_dirs = [root / "usr/lib/systemd/system", root / "lib/systemd/system"]
    for unit in MASKED_UNITS:
        _symlink(system / unit, "/dev/null")
    for pattern in MASKED_GLOBS:
        seen: set[str] = set()
        for unit_dir in unit_dirs:
            for found in unit_dir.glob(pattern):
                if found.name not in seen:
                    seen.add(found.name)
                    _symlink(system / found.name, "/dev/null")
    # systemd fills an empty machine-id at boot: each host gets its own. dbus's
    # postinst leaves a plain /var/lib/dbus/machine-id, which systemd would copy
    # into every host: make it the usual link instead.
    (root / "etc/machine-id").write_text("")
    if (root / "var/lib/dbus").is_dir():
        _symlink(root / "var/lib/dbus/machine-id", "/etc/machine-id")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (system / HOSTKEY_UNIT_NAME).write_text(HOSTKEY_UNIT)
    _symlink(system / "ssh.service.wants" / HOSTKEY_UNIT_NAME, f"/etc/systemd/system/{HOSTKEY_UNIT_NAME}")
    _symlink(system / "multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service")
    _symlink(system / "sshd.service", "/lib/systemd/system/ssh.service")
    # apt in the host points at the same mirror as this machine.
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(sources_text)
    # Services start on install, as on a real host.
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    # Docker supplies these at run time; keep the build machine's out of the image.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    lists = root / "var/lib/apt/lists"
    if lists.is_dir():
        for entry in lists.iterdir():
            if entry.is_file() and entry.name != "lock":
                entry.unlink()


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1 and (fields[1] + "/").startswith(prefix):
            found.append(fields[1])
    return sorted(found, reverse=True)


def _remove_tree(root: Path) -> None:
    for mountpoint in _mounts_under(root):
        run(["umount", "-l", mountpoint], check=False)
    # --one-file-system: never descend into anything still mounted there.
    run(["rm", "-rf", "--one-file-system", str(root)], check=False, timeout=300)


def build_tarball(recipe: Recipe, tarball: Path) -> None:
    """debootstrap + customize + tar into ``tarball`` (written atomically)."""
    ensure_command("debootstrap", "debootstrap")
    for stale in tarball.parent.glob("rootfs-*"):
        _remove_tree(stale)  # left by an interrupted build (callers hold the lab lock)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    root = work / "rootfs"
    try:
        started = time.monotonic()
        log.info("debootstrap %s from %s (takes 1-3 minutes)", SUITE, recipe.mirror_uri)
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                f"--keyring={KEYRING}",
                SUITE,
                str(root),
                recipe.mirror_uri,
            ],
            timeout=1800,
            fix="check that the host's mirror is reachable (apt-get update on the host)",
        )
        log.info("debootstrap took %.1f s", time.monotonic() - started)
        customize_rootfs(root, recipe.sources_text)
        partial = tarball.with_suffix(".partial")
        run(
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "-C",
                str(root),
                "-cf",
                str(partial),
                ".",
            ],
            timeout=600,
        )
        partial.replace(tarball)
        log.info("rootfs tarball %s (%.0f MiB)", tarball, tarball.stat().st_size / 2**20)
    finally:
        _remove_tree(work)


def import_tarball(recipe: Recipe, tarball: Path) -> None:
    """``docker import`` the tarball, then add STOPSIGNAL with a local build."""
    started = time.monotonic()
    run(
        [
            "docker",
            "import",
            "--change",
            'CMD ["/sbin/init"]',
            "--change",
            "ENV container=docker",
            "--message",
            f"provision lab rootfs {recipe.digest}",
            str(tarball),
            recipe.base_tag,
        ],
        timeout=600,
    )
    log.info("docker import took %.1f s", time.monotonic() - started)
    with tempfile.TemporaryDirectory(prefix="provision-lab-build-") as context:
        (Path(context) / "Dockerfile").write_text(DOCKERFILE.format(base=recipe.base_tag))
        run(
            [
                "docker",
                "build",
                "--quiet",
                "--label",
                f"provision.lab.recipe={recipe.digest}",
                "-t",
                recipe.tag,
                context,
            ],
            env={"DOCKER_BUILDKIT": "0"},
            timeout=600,
        )
    log.info("image %s built", recipe.tag)


def ensure_image(recipe: Recipe) -> str:
    """The tag of the test-host image, building only what is missing."""
    if image_exists(recipe.tag):
        log.info("image %s present", recipe.tag)
        return recipe.tag
    tarball = recipe.tarball()
    if tarball.is_file():
        log.info("reusing cached rootfs tarball %s", tarball)
    else:
        build_tarball(recipe, tarball)
        for old in tarball.parent.glob("debian12-systemd-*.tar"):
            if old != tarball:
                log.info("removing outdated tarball %s", old)
                old.unlink()
    import_tarball(recipe, tarball)
    if not image_exists(recipe.tag):
        raise LabError(f"image {recipe.tag} missing after the build", "read the docker build output above")
    return recipe.tag

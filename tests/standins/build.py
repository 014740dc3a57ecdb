"""Build the engine STAND-INS the Molecule scenarios install (tests only; see README.md).

    python tests/standins/build.py ollama|vllm|tgi|all --out .cache/standins [--base-image IMAGE]

ollama  -> OUT/ollama/<version>/ollama-linux-amd64.tgz (+ .sha256): a release-shaped archive
           (bin/ollama = ollama/ollama_standin.py, lib/ollama/), byte-for-byte reproducible.
vllm    -> OUT/vllm/vllm-openai-standin.tar.gz + image.json: `docker save` of image
           provision-standin/vllm-openai:<version>-standin (entrypoint `vllm serve`).
tgi     -> OUT/tgi/tgi-standin.tar.gz + image.json: image provision-standin/tgi:<version>-standin
           (entrypoint /tgi-entrypoint.sh -> text-generation-launcher, like the TGI image).

The images are a `docker import` of a tiny root file system taken from BASE (the project's
Debian 12 test-host image, $PROVISION_MOLECULE_IMAGE by default): python3.11 with its
standard library and shared libraries, /bin/sh, and the stand-in. No registry is used.
Each output is rebuilt only when its inputs (stand-in sources, this file, the base image ID)
change; image.json records the image ID the roles pin (vllm_image_id / tgi_image_id).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OLLAMA_VERSION = "0.12.10"  # the version the ollama role pins (roles/ollama/defaults/main.yml)
VLLM_VERSION = "v0.28.0"  # roles/vllm/defaults/main.yml
TGI_VERSION = "3.3.6"  # roles/tgi/defaults/main.yml
MTIME = 1_700_000_000  # fixed timestamps: reproducible archives

# Collects python3.11 (+ stdlib, extension modules and every shared library they load) and
# /bin/sh into /stage, then writes the tree as a tar on stdout. Runs inside BASE.
COLLECT = r"""
set -eu
stage=/tmp/stage
mkdir -p $stage/usr/bin $stage/usr/lib $stage/usr/local/bin $stage/tmp $stage/standin $stage/etc
cp -a /usr/lib/python3.11 $stage/usr/lib/
rm -rf $stage/usr/lib/python3.11/ensurepip $stage/usr/lib/python3.11/idlelib \
       $stage/usr/lib/python3.11/tkinter $stage/usr/lib/python3.11/lib2to3 \
       $stage/usr/lib/python3.11/pydoc_data $stage/usr/lib/python3.11/config-3.11-x86_64-linux-gnu
find $stage/usr/lib/python3.11 -name __pycache__ -prune -exec rm -rf {} +
cp -L /usr/bin/python3.11 $stage/usr/bin/python3.11
ln -s python3.11 $stage/usr/bin/python3
cp -L /bin/dash $stage/usr/bin/dash
ln -s dash $stage/usr/bin/sh
ln -s usr/bin $stage/bin
for f in /usr/bin/python3.11 /bin/dash /usr/lib/python3.11/lib-dynload/*.so; do
  ldd "$f" 2>/dev/null || true
done \
  | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}' | sort -u > /tmp/libs
while read -r lib; do
  real=$(readlink -f "$lib")
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$real" "$stage$lib"
done < /tmp/libs
chmod 1777 $stage/tmp
printf 'root:x:0:0:root:/root:/bin/sh\n' > $stage/etc/passwd
printf 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >> $stage/etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' > $stage/etc/group
tar -C $stage --numeric-owner --owner=0 --group=0 -cf - .
"""

TGI_ENTRYPOINT = """#!/bin/sh
# STAND-IN of the TGI image's /tgi-entrypoint.sh: hands every argument to the launcher.
exec text-generation-launcher "$@"
"""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stamp_of(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = MTIME
    info.uname = info.gname = "root"
    tar.addfile(info)


# --------------------------------------------------------------------------- ollama


def build_ollama(out: Path, version: str = OLLAMA_VERSION) -> Path:
    source = (HERE / "ollama" / "ollama_standin.py").read_text()
    program = source.replace('"@VERSION@"', json.dumps(version)).encode()
    dest = out / "ollama" / version
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "ollama-linux-amd64.tgz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add_dir(tar, "bin")
        _add_bytes(tar, "bin/ollama", program, 0o755)
        _add_dir(tar, "lib")
        _add_dir(tar, "lib/ollama")
        _add_bytes(
            tar,
            "lib/ollama/STANDIN.txt",
            b"provision test stand-in: the real archive holds the CUDA runner libraries here\n",
            0o644,
        )
    with archive.open("wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    digest = sha256(archive)
    (dest / "ollama-linux-amd64.tgz.sha256").write_text(f"{digest}  ./ollama-linux-amd64.tgz\n")
    (dest / "standin.json").write_text(json.dumps({"version": version, "sha256": digest, "standin": True}))
    print(f"ollama stand-in {version}: {archive} sha256 {digest}", file=sys.stderr)
    return archive


# --------------------------------------------------------------------------- images


def docker(*args: str, capture: bool = True, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        ["docker", *args],
        input=stdin,
        capture_output=capture,
        check=False,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"docker {' '.join(args[:3])} failed ({proc.returncode}): {err.strip()}")
    return proc.stdout.decode().strip() if capture and proc.stdout else ""


def rootfs_tar(base: str, cache: Path) -> Path:
    base_id = docker("image", "inspect", "-f", "{{.Id}}", base)
    target = cache / f"rootfs-{stamp_of(base_id, COLLECT)}.tar"
    for stale in cache.glob("rootfs-*.tar"):
        if stale != target:
            stale.unlink()
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp:
        proc = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", base, "-c", COLLECT],
            stdout=tmp,
            stderr=subprocess.PIPE,
            check=False,
        )
    if proc.returncode != 0:
        os.unlink(tmp.name)
        raise SystemExit(f"collecting the rootfs from {base} failed: {proc.stderr.decode(errors='replace')}")
    os.replace(tmp.name, target)
    return target


def build_image(kind: str, out: Path, base: str) -> dict[str, str]:
    program = (HERE / "engine_standin.py").read_bytes()
    if kind == "vllm":
        repo, version, archive_name = (
            "provision-standin/vllm-openai",
            VLLM_VERSION,
            "vllm-openai-standin.tar.gz",
        )
        files = {"usr/local/bin/vllm": (program, 0o755)}
        changes = ['ENTRYPOINT ["vllm", "serve"]']
    else:
        repo, version, archive_name = "provision-standin/tgi", TGI_VERSION, "tgi-standin.tar.gz"
        files = {
            "usr/local/bin/text-generation-launcher": (program, 0o755),
            "tgi-entrypoint.sh": (TGI_ENTRYPOINT.encode(), 0o755),
        }
        changes = ['ENTRYPOINT ["/tgi-entrypoint.sh"]']
    changes += [
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        f"LABEL org.opencontainers.image.title=provision-{kind}-standin",
        "LABEL provision.standin=true",
    ]
    tag = f"{repo}:{version}-standin"
    dest = out / kind
    dest.mkdir(parents=True, exist_ok=True)
    base_id = docker("image", "inspect", "-f", "{{.Id}}", base)
    stamp = stamp_of(
        kind,
        base_id,
        COLLECT,
        hashlib.sha256(program).hexdigest(),
        TGI_ENTRYPOINT,
        *changes,
        hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    )
    meta_file = dest / "image.json"
    archive = dest / archive_name
    if meta_file.exists() and archive.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("stamp") == stamp:
            print(f"{kind} stand-in image up to date: {archive} ({meta['id']})", file=sys.stderr)
            return meta
    previous = json.loads(meta_file.read_text()).get("id") if meta_file.exists() else None
    rootfs = rootfs_tar(base, out / "cache")
    with tempfile.TemporaryDirectory(dir=out) as tmpdir:
        final = Path(tmpdir) / "rootfs.tar"
        final.write_bytes(rootfs.read_bytes())
        with tarfile.open(final, mode="a") as tar:
            for name, (data, mode) in sorted(files.items()):
                _add_bytes(tar, f"./{name}", data, mode)
        args = ["import"]
        for change in changes:
            args += ["--change", change]
        docker(*args, str(final), tag)
    image_id = docker("image", "inspect", "-f", "{{.Id}}", tag)
    if previous and previous != image_id:
        # The tag moved to the new build: drop the old stand-in image rather than leave it dangling.
        subprocess.run(["docker", "rmi", previous], capture_output=True, check=False)
    with tempfile.NamedTemporaryFile(dir=dest, delete=False) as tmp:
        save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
        assert save.stdout is not None
        with gzip.GzipFile(fileobj=tmp, mode="wb", mtime=0, compresslevel=6) as gz:
            for chunk in iter(lambda: save.stdout.read(1 << 20), b""):
                gz.write(chunk)
        if save.wait() != 0:
            raise SystemExit(f"docker save {tag} failed")
    os.replace(tmp.name, archive)
    os.chmod(archive, 0o644)
    meta = {
        "kind": kind,
        "tag": tag,
        "id": image_id,
        "archive": str(archive),
        "sha256": sha256(archive),
        "stamp": stamp,
        "standin": True,
        "stands_in_for": version,
    }
    meta_file.write_text(json.dumps(meta, indent=2))
    print(f"{kind} stand-in image {tag} {image_id}: {archive}", file=sys.stderr)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["ollama", "vllm", "tgi", "all"])
    parser.add_argument("--out", type=Path, default=Path(".cache/standins"))
    parser.add_argument("--base-image", default=os.environ.get("PROVISION_MOLECULE_IMAGE", ""))
    parser.add_argument("--ollama-version", default=OLLAMA_VERSION)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.what in ("ollama", "all"):
        build_ollama(out, args.ollama_version)
    for kind in ("vllm", "tgi"):
        if args.what in (kind, "all"):
            if not args.base_image:
                parser.error("--base-image (or PROVISION_MOLECULE_IMAGE) is needed to build the images")
            build_image(kind, out, args.base_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())

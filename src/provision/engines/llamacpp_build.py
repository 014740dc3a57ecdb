"""Build llama.cpp's ``llama-server`` once on the controller and cache it by version.

Nodes get the binary copied from the controller (role ``llamacpp``); they never reach the
internet. The source is the ``llama-cpp-python`` sdist on PyPI, which vendors llama.cpp's
full source under ``vendor/llama.cpp``, so a PyPI version pins the llama.cpp version
(0.3.36 vendors ggml-org/llama.cpp@0c1e57098). PyPI has no wheels for it, only sdists.

Usage::

    python -m provision.engines.llamacpp_build [--version V] [--variant cpu|cuda] [--jobs N]
                                               [--cuda-arch LIST] [--force] [--json]

prints the cached binary's path (or a JSON object with path, sha256, version, ...).

Cache layout (``$XDG_CACHE_HOME``, default ``~/.cache``)::

    provision/llamacpp/sdist/llama_cpp_python-<version>.tar.gz
    provision/llamacpp/<version>/llama-server            (variant cpu)
    provision/llamacpp/<version>/llama-server.sha256     ("<hex>  llama-server", sha256sum -c format)
    provision/llamacpp/<version>/llama-server.json       (how it was built)
    provision/llamacpp/<version>/cuda/llama-server ...   (variant cuda)

The CPU build is portable: one static binary (``-DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF
-DGGML_OPENMP=OFF -DLLAMA_OPENSSL=OFF``, ``-static-libgcc -static-libstdc++``) that needs
only libc and libm (glibc >= the build host's, a CPU with AVX2/FMA). ``-DLLAMA_USE_PREBUILT_UI=OFF``
keeps the build offline (the web UI is not embedded; ``GET /`` answers 404, the API is
unaffected). The CUDA build adds ``-DGGML_CUDA=ON -DGGML_CUDA_NCCL=OFF`` and needs nvcc (CUDA
toolkit) where it is built; it links libcudart and libcublas dynamically, so the node needs
the CUDA runtime libraries of the same CUDA major version (role ``cuda``) and the driver's
libcuda.

Development shortcut: ``PROVISION_LLAMACPP_PREBUILT=/path/to/llama-server`` puts an existing
binary into the cache instead of building (only when nothing is cached yet, and only if it
is portable: it may need no shared library beyond libc/libm/libpthread/libdl/librt and the
loader for the cpu variant). ``PROVISION_LLAMACPP_SDIST=/path/to/sdist.tar.gz`` uses a local
sdist instead of ``pip download`` (an air-gapped controller).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from provision.errors import ProvisionError

DEFAULT_VERSION = "0.3.36"
PACKAGE = "llama-cpp-python"
BINARY = "llama-server"
VARIANTS = ("cpu", "cuda")
PREBUILT_ENV = "PROVISION_LLAMACPP_PREBUILT"
SDIST_ENV = "PROVISION_LLAMACPP_SDIST"
# GPU architectures compiled into the CUDA build: A100 (80), A10/RTX 30 (86), L4/L40/RTX 40 (89),
# H100/H200 (90). Each one adds minutes of build time.
DEFAULT_CUDA_ARCHITECTURES = "80;86;89;90"

# The portable, offline build (LLAMACPP.md): one static binary needing only libc and libm.
PORTABLE_CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_OPENMP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DCMAKE_EXE_LINKER_FLAGS=-static-libgcc -static-libstdc++ -s",
)
# NCCL off: ggml links it only when the build machine happens to have it, and the node would
# then need libnccl too; it helps only row/tensor split modes (the planner uses layer).
CUDA_CMAKE_FLAGS: tuple[str, ...] = ("-DGGML_CUDA=ON", "-DGGML_CUDA_NCCL=OFF")

# Shared libraries a portable CPU binary may need (glibc's own).
PORTABLE_NEEDED = re.compile(r"^(libc|libm|libpthread|libdl|librt)\.so\.\d+$|^ld-linux[-\w.]*\.so\.\d+$")

APT_PACKAGES = ("cmake", "g++", "make")
APT_FIX = "apt-get install -y cmake g++ make"


class BuildError(ProvisionError):
    """The binary could not be built or cached; the message says how to fix it."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


@dataclass(frozen=True)
class BuildResult:
    """What ``ensure_llama_server`` returns (and ``--json`` prints)."""

    path: str
    sha256: str
    version: str
    variant: str
    built: bool
    source: str
    llama_cpp: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# --- cache paths ---------------------------------------------------------------------------


def cache_root(env: dict[str, str] | None = None) -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/provision/llamacpp``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "provision" / "llamacpp"


def _check_version(version: str) -> str:
    if not re.fullmatch(r"\d+\.\d+\.\d+([.-]?(post|rc|a|b)\d+)?", version):
        raise BuildError(
            f"'{version}' is not a llama-cpp-python release version",
            "give an exact PyPI version such as 0.3.36",
        )
    return version


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise BuildError(f"unknown variant '{variant}'", f"use one of {', '.join(VARIANTS)}")
    return variant


def variant_dir(version: str, variant: str = "cpu", root: Path | None = None) -> Path:
    root = cache_root() if root is None else root
    base = root / _check_version(version)
    return base if _check_variant(variant) == "cpu" else base / variant


def cached_binary(version: str, variant: str = "cpu", root: Path | None = None) -> Path:
    """Where the binary of this version and variant lives in the cache."""
    return variant_dir(version, variant, root) / BINARY


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_cached(version: str, variant: str = "cpu", root: Path | None = None) -> BuildResult | None:
    """The cached build, or None when it is missing, incomplete or fails its checksum."""
    binary = cached_binary(version, variant, root)
    sums = binary.with_name(BINARY + ".sha256")
    info_file = binary.with_name(BINARY + ".json")
    if not (binary.is_file() and sums.is_file()):
        return None
    recorded = sums.read_text().split()
    if not recorded or recorded[0] != sha256_file(binary):
        return None
    info: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(info_file.read_text())
    return BuildResult(
        path=str(binary),
        sha256=recorded[0],
        version=version,
        variant=variant,
        built=False,
        source=str(info.get("source", "unknown")),
        llama_cpp=str(info.get("llama_cpp", "unknown")),
        seconds=0.0,
    )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One build per version and variant at a time (a second caller waits, then finds it cached)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- command lines -------------------------------------------------------------------------


def pip_download_command(version: str, dest: Path, python: str | None = None) -> list[str]:
    """Fetch the sdist only (no wheels exist; ``--no-binary :all:`` would build pip's build tools)."""
    return [
        python or sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        PACKAGE,
        "--dest",
        str(dest),
        f"{PACKAGE}=={_check_version(version)}",
    ]


def configure_command(
    source: Path,
    build: Path,
    variant: str = "cpu",
    *,
    commit: str | None = None,
    cuda_architectures: str = DEFAULT_CUDA_ARCHITECTURES,
) -> list[str]:
    """``cmake`` configure for the portable static build (plus CUDA for the cuda variant)."""
    argv = ["cmake", "-S", str(source), "-B", str(build), *PORTABLE_CMAKE_FLAGS]
    if _check_variant(variant) == "cuda":
        argv += [*CUDA_CMAKE_FLAGS, f"-DCMAKE_CUDA_ARCHITECTURES={cuda_architectures}"]
    if commit:
        # The sdist's vendored tree has no usable git metadata of its own: name the commit.
        argv.append(f"-DLLAMA_BUILD_COMMIT={commit}")
    return argv


def build_command(build: Path, jobs: int) -> list[str]:
    return ["cmake", "--build", str(build), "--target", BINARY, "-j", str(max(1, jobs))]


def vendored_commit(changelog: str, version: str) -> str | None:
    """The llama.cpp commit a llama-cpp-python release vendors, from its CHANGELOG.md."""
    section = re.search(rf"^## \[{re.escape(version)}\]\s*$(.*?)(?=^## \[|\Z)", changelog, re.M | re.S)
    if not section:
        return None
    found = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section.group(1))
    return found.group(1)[:9] if found else None


# --- tools ---------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    """Build tools not on PATH: cmake, a C++ compiler, make."""
    which = shutil.which
    missing = []
    if not which("cmake"):
        missing.append("cmake")
    if not (which("g++") or which("c++")):
        missing.append("g++")
    if not which("make"):
        missing.append("make")
    return missing


def ensure_tools(*, install: bool = True, log=print) -> None:
    """Check the build tools; as root with apt, install the missing ones when allowed."""
    missing = missing_tools()
    if not missing:
        return
    can_apt = install and os.geteuid() == 0 and shutil.which("apt-get")
    if can_apt:
        log(f"installing build tools: {' '.join(APT_PACKAGES)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install_argv = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
        if subprocess.run(install_argv, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=False)
            subprocess.run(install_argv, env=env, check=False)
        missing = missing_tools()
        if not missing:
            return
    raise BuildError(
        f"building llama-server needs {', '.join(missing)}, not found on this controller",
        f"{APT_FIX} (as root; Debian/Ubuntu), or put a built binary in the cache"
        f" (PROVISION_LLAMACPP_PREBUILT)",
    )


# --- steps ---------------------------------------------------------------------------------


def _run(argv: Sequence[str], log_file: Path, what: str, cwd: Path | None = None) -> None:
    with log_file.open("ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        proc = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(
            f"{what} failed (exit {proc.returncode}); last lines of {log_file}:\n" + "\n".join(tail),
            f"read {log_file}",
        )


def ensure_sdist(version: str, root: Path | None = None, log=print) -> Path:
    """The sdist: $PROVISION_LLAMACPP_SDIST, the cached one, or ``pip download``."""
    local = os.environ.get(SDIST_ENV)
    if local:
        path = Path(local)
        if not path.is_file():
            raise BuildError(f"{SDIST_ENV}={local} is not a file", f"unset {SDIST_ENV} or fix the path")
        return path
    root = cache_root() if root is None else root
    dest = root / "sdist"
    dest.mkdir(parents=True, exist_ok=True)
    name = f"llama_cpp_python-{version}.tar.gz"
    if (dest / name).is_file():
        return dest / name
    log(f"downloading {PACKAGE}=={version} (sdist)")
    proc = subprocess.run(pip_download_command(version, dest), capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not (dest / name).is_file():
        raise BuildError(
            f"pip could not download {PACKAGE}=={version}: {(proc.stderr or proc.stdout).strip()[-800:]}",
            f"check the package index (pip config list), or set {SDIST_ENV} to a downloaded sdist",
        )
    return dest / name


def extract_sdist(sdist: Path, dest: Path) -> tuple[Path, str | None]:
    """Unpack; returns (vendored llama.cpp source dir, the vendored commit when recorded)."""
    with tarfile.open(sdist) as archive:
        archive.extractall(dest, filter="data")
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        raise BuildError(f"{sdist} has no vendor/llama.cpp", "use a llama-cpp-python sdist")
    changelog = tops[0] / "CHANGELOG.md"
    version = tops[0].name.rsplit("-", 1)[-1]
    commit = vendored_commit(changelog.read_text(errors="replace"), version) if changelog.is_file() else None
    return tops[0] / "vendor" / "llama.cpp", commit


def needed_libraries(binary: Path) -> list[str] | None:
    """DT_NEEDED entries (readelf), or None when readelf is not available."""
    readelf = shutil.which("readelf")
    if not readelf:
        return None
    out = subprocess.run([readelf, "-d", str(binary)], capture_output=True, text=True, check=False).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def check_portable(binary: Path) -> None:
    needed = needed_libraries(binary)
    if needed is None:
        return
    foreign = [lib for lib in needed if not PORTABLE_NEEDED.match(lib)]
    if foreign:
        raise BuildError(
            f"{binary} is not portable: it needs {', '.join(foreign)}",
            "build with the portable static flags (python -m provision.engines.llamacpp_build),"
            f" or point {PREBUILT_ENV} at such a build",
        )


def binary_version(binary: Path) -> str:
    """``llama-server --version``'s first line (``version: 0.5.0-dev (build 1, commit 0c1e570)``)."""
    proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False)
    text = (proc.stdout + proc.stderr).strip()
    lines = [line for line in text.splitlines() if line.startswith("version:")]
    if proc.returncode != 0 or not lines:
        raise BuildError(f"{binary} --version failed (exit {proc.returncode}): {text[-400:]}", "rebuild")
    return lines[0].removeprefix("version:").strip()


def _install(binary: Path, target: Path, info: dict[str, object]) -> str:
    """Copy into the cache atomically, then write the checksum and the build record."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{BINARY}.{os.getpid()}.tmp")
    shutil.copyfile(binary, tmp)
    tmp.chmod(0o755)
    digest = sha256_file(tmp)
    os.replace(tmp, target)
    info = dict(info, sha256=digest)
    target.with_name(BINARY + ".json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    target.with_name(BINARY + ".sha256").write_text(f"{digest}  {BINARY}\n")
    return digest


def ensure_llama_server(
    version: str = DEFAULT_VERSION,
    *,
    variant: str = "cpu",
    jobs: int | None = None,
    cuda_architectures: str = DEFAULT_CUDA_ARCHITECTURES,
    force: bool = False,
    install_tools: bool = True,
    root: Path | None = None,
    log=None,
) -> BuildResult:
    """The cached ``llama-server`` for a llama-cpp-python version: built once, then reused.

    Idempotent: when the cache holds a binary whose sha256 matches its ``.sha256`` file, it
    is returned with ``built=False`` and nothing runs.
    """
    log = log or (lambda message: print(f"llamacpp-build: {message}", file=sys.stderr))
    _check_version(version)
    _check_variant(variant)
    root = cache_root() if root is None else root
    target = cached_binary(version, variant, root)
    with _locked(target.parent):
        if not force:
            cached = read_cached(version, variant, root)
            if cached:
                return cached
        started = time.monotonic()
        prebuilt = os.environ.get(PREBUILT_ENV)
        if prebuilt and not force:
            source_binary = Path(prebuilt)
            if not source_binary.is_file():
                raise BuildError(f"{PREBUILT_ENV}={prebuilt} is not a file", f"unset {PREBUILT_ENV}")
            if variant == "cpu":
                check_portable(source_binary)
            found = binary_version(source_binary)
            log(f"taking the prebuilt {source_binary} ({found}) instead of building (development)")
            info = {
                "source": f"prebuilt:{source_binary}",
                "llama_cpp": found,
                "version": version,
                "variant": variant,
                "built_at": int(time.time()),
            }
            digest = _install(source_binary, target, info)
            return BuildResult(
                str(target),
                digest,
                version,
                variant,
                True,
                info["source"],
                found,
                round(time.monotonic() - started, 1),
            )
        ensure_tools(install=install_tools, log=log)
        if variant == "cuda" and not shutil.which("nvcc") and not Path("/usr/local/cuda/bin/nvcc").is_file():
            raise BuildError(
                "the cuda variant needs nvcc (the CUDA toolkit) on the machine that builds it",
                "install the toolkit (role cuda, or NVIDIA's cuda-nvcc, cuda-cudart-dev, libcublas-dev"
                " packages) and put its bin/ on PATH, or build on a GPU host and copy the binary"
                " into the cache",
            )
        sdist = ensure_sdist(version, root, log)
        jobs = jobs or os.cpu_count() or 1
        with tempfile.TemporaryDirectory(prefix=f"build-{version}-{variant}-", dir=root) as tmp:
            work = Path(tmp)
            log_file = target.parent / "build.log"
            log_file.write_text("")
            log(f"unpacking {sdist.name}")
            source, commit = extract_sdist(sdist, work / "src")
            build_dir = work / "build"
            log(f"configuring ({variant}); log: {log_file}")
            _run(
                configure_command(
                    source, build_dir, variant, commit=commit, cuda_architectures=cuda_architectures
                ),
                log_file,
                "cmake configure",
            )
            log(f"building {BINARY} with {jobs} jobs (about 10 minutes on 2 cores for cpu)")
            _run(build_command(build_dir, jobs), log_file, "cmake --build")
            built = build_dir / "bin" / BINARY
            if not built.is_file():
                raise BuildError(f"the build finished without {built}", f"read {log_file}")
            if variant == "cpu":
                check_portable(built)
            found = binary_version(built)
            seconds = round(time.monotonic() - started, 1)
            info = {
                "source": f"sdist:{PACKAGE}=={version}",
                "llama_cpp": found,
                "version": version,
                "variant": variant,
                "commit": commit,
                "built_at": int(time.time()),
                "build_seconds": seconds,
                "jobs": jobs,
                "cmake": configure_command(
                    Path("SRC"), Path("BUILD"), variant, commit=commit, cuda_architectures=cuda_architectures
                )[5:],
            }
            digest = _install(built, target, info)
        log(f"built {target} in {seconds:.0f} s ({found})")
        return BuildResult(str(target), digest, version, variant, True, info["source"], found, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provision.engines.llamacpp_build",
        description="Build llama.cpp's llama-server from the llama-cpp-python sdist once, cache it,"
        " and print the cached binary's path.",
    )
    parser.add_argument(
        "--version", default=DEFAULT_VERSION, help=f"llama-cpp-python version ({DEFAULT_VERSION})"
    )
    parser.add_argument("--variant", choices=VARIANTS, default="cpu")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs (all CPUs)")
    parser.add_argument(
        "--cuda-arch",
        default=DEFAULT_CUDA_ARCHITECTURES,
        help=f"CMAKE_CUDA_ARCHITECTURES for the cuda variant ({DEFAULT_CUDA_ARCHITECTURES})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild although cached")
    parser.add_argument(
        "--no-install-tools", action="store_true", help="never apt-get install cmake/g++/make, fail instead"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the path")
    args = parser.parse_args(argv)
    try:
        result = ensure_llama_server(
            args.version,
            variant=args.variant,
            jobs=args.jobs,
            cuda_architectures=args.cuda_arch,
            force=args.force,
            install_tools=not args.no_install_tools,
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result.as_dict(), sort_keys=True) if args.json else result.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""provision.engines.llamacpp_build: command lines, cache layout and cache logic.

No compiler runs here: a fake ``cmake`` on PATH plays the build, a fake sdist holds the
vendored tree. The real build is exercised by the Molecule scenario ``llamacpp``.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from provision.engines import llamacpp_build as lb

FAKE_SERVER = "#!/bin/sh\necho 'version: 0.5.0-dev (build 1, commit 0c1e570)' >&2\n"

# Builds build/bin/llama-server on `cmake --build`, records every call.
FAKE_CMAKE = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
if [ "$1" = "--build" ]; then
  mkdir -p "$2/bin"
  printf '%s' "$FAKE_SERVER" > "$2/bin/llama-server"
  chmod +x "$2/bin/llama-server"
fi
"""


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv(lb.PREBUILT_ENV, raising=False)
    # Never download or build for real from a unit test: a test that got past its fakes
    # fails fast on this missing sdist instead.
    monkeypatch.setenv(lb.SDIST_ENV, str(tmp_path / "no-such-sdist.tar.gz"))
    return tmp_path / "cache"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_sdist(path: Path, version: str = "0.3.36") -> Path:
    top = f"llama_cpp_python-{version}"
    files = {
        f"{top}/CHANGELOG.md": (
            f"## [Unreleased]\n\n## [{version}]\n\n"
            "- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098\n\n"
            "## [0.3.35]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@4df29be4f\n"
        ),
        f"{top}/vendor/llama.cpp/CMakeLists.txt": "project(llama.cpp)\n",
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# --- command lines -------------------------------------------------------------------------


def test_configure_command_is_the_portable_offline_build(tmp_path):
    argv = lb.configure_command(tmp_path / "src", tmp_path / "build", commit="0c1e57098")
    assert argv[:5] == ["cmake", "-S", str(tmp_path / "src"), "-B", str(tmp_path / "build")]
    for flag in (
        "-DBUILD_SHARED_LIBS=OFF",
        "-DGGML_NATIVE=OFF",
        "-DGGML_OPENMP=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",
        "-DLLAMA_BUILD_SERVER=ON",
        "-DCMAKE_BUILD_TYPE=Release",
    ):
        assert flag in argv
    assert "-DCMAKE_EXE_LINKER_FLAGS=-static-libgcc -static-libstdc++ -s" in argv
    assert "-DLLAMA_BUILD_COMMIT=0c1e57098" in argv
    assert not [a for a in argv if "CUDA" in a]


def test_configure_command_cuda_variant(tmp_path):
    argv = lb.configure_command(tmp_path, tmp_path / "b", "cuda", cuda_architectures="90")
    assert "-DGGML_CUDA=ON" in argv
    assert "-DGGML_CUDA_NCCL=OFF" in argv  # the node needs no libnccl
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in argv
    assert "-DBUILD_SHARED_LIBS=OFF" in argv


def test_build_command_builds_only_the_server(tmp_path):
    assert lb.build_command(tmp_path, 2) == [
        "cmake",
        "--build",
        str(tmp_path),
        "--target",
        "llama-server",
        "-j",
        "2",
    ]
    assert lb.build_command(tmp_path, 0)[-1] == "1"


def test_pip_download_fetches_the_sdist_only(tmp_path):
    argv = lb.pip_download_command("0.3.36", tmp_path, python="py")
    assert argv[:4] == ["py", "-m", "pip", "download"]
    assert "--no-deps" in argv and "llama-cpp-python==0.3.36" in argv
    assert argv[argv.index("--no-binary") + 1] == "llama-cpp-python"  # never :all:
    assert ":all:" not in argv


@pytest.mark.parametrize("bad", ["latest", "0.3", "0.3.36; rm -rf /", ""])
def test_versions_must_be_exact(bad):
    with pytest.raises(lb.BuildError):
        lb.pip_download_command(bad, Path("d"))
    with pytest.raises(lb.BuildError):
        lb.cached_binary(bad, root=Path("/nonexistent"))


def test_unknown_variant_refused(tmp_path):
    with pytest.raises(lb.BuildError, match="unknown variant"):
        lb.cached_binary("0.3.36", "rocm", tmp_path)


def test_vendored_commit_from_the_changelog():
    text = (
        "## [0.3.36]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098\n\n"
        "## [0.3.35]\n- x@4df29be4f\n"
    )
    assert lb.vendored_commit(text, "0.3.36") == "0c1e57098"
    assert lb.vendored_commit(text, "0.3.35") is None
    assert lb.vendored_commit(text, "9.9.9") is None


# --- cache layout and logic ----------------------------------------------------------------


def test_cache_root_follows_xdg_then_home():
    assert lb.cache_root({"XDG_CACHE_HOME": "/x"}) == Path("/x/provision/llamacpp")
    assert lb.cache_root({"HOME": "/home/u"}) == Path("/home/u/.cache/provision/llamacpp")


def test_cache_layout(tmp_path):
    assert lb.cached_binary("0.3.36", root=tmp_path) == tmp_path / "0.3.36" / "llama-server"
    assert lb.cached_binary("0.3.36", "cuda", tmp_path) == tmp_path / "0.3.36" / "cuda" / "llama-server"


def test_read_cached_needs_a_matching_checksum(root):
    assert lb.read_cached("0.3.36", root=root) is None
    binary = executable(lb.cached_binary("0.3.36", root=root), FAKE_SERVER)
    assert lb.read_cached("0.3.36", root=root) is None  # no .sha256 yet
    sums = binary.with_name("llama-server.sha256")
    sums.write_text(f"{lb.sha256_file(binary)}  llama-server\n")
    found = lb.read_cached("0.3.36", root=root)
    assert found and found.built is False and found.sha256 == lb.sha256_file(binary)
    binary.write_text(FAKE_SERVER + "# changed\n")
    assert lb.read_cached("0.3.36", root=root) is None  # checksum mismatch: not trusted


def test_cached_binary_is_returned_without_running_anything(root, monkeypatch):
    binary = executable(lb.cached_binary("0.3.36", root=root), FAKE_SERVER)
    binary.with_name("llama-server.sha256").write_text(f"{lb.sha256_file(binary)}  llama-server\n")

    def no_run(*args, **kwargs):
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", no_run)
    result = lb.ensure_llama_server("0.3.36", root=root)
    assert result.path == str(binary) and result.built is False


def test_full_build_flow_with_a_fake_cmake(root, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    executable(bindir / "cmake", FAKE_CMAKE)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SERVER", FAKE_SERVER)
    monkeypatch.setenv(lb.SDIST_ENV, str(fake_sdist(tmp_path / "sdist.tar.gz")))
    monkeypatch.setattr(lb, "missing_tools", lambda: [])
    monkeypatch.setattr(
        lb, "needed_libraries", lambda binary: ["libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"]
    )

    first = lb.ensure_llama_server("0.3.36", jobs=2, root=root, log=lambda m: None)
    assert first.built is True
    assert first.path == str(root / "0.3.36" / "llama-server")
    assert first.llama_cpp == "0.5.0-dev (build 1, commit 0c1e570)"
    assert Path(first.path).read_text() == FAKE_SERVER
    assert (root / "0.3.36" / "llama-server.sha256").read_text() == f"{first.sha256}  llama-server\n"
    info = json.loads((root / "0.3.36" / "llama-server.json").read_text())
    assert info["source"] == "sdist:llama-cpp-python==0.3.36" and info["commit"] == "0c1e57098"
    calls = (bindir / "calls").read_text().splitlines()
    assert len(calls) == 2
    assert "-DLLAMA_BUILD_COMMIT=0c1e57098" in calls[0] and "-DGGML_NATIVE=OFF" in calls[0]
    assert calls[1].endswith("--target llama-server -j 2")
    assert [p.name for p in root.iterdir() if p.name.startswith("build-")] == []  # build tree removed

    second = lb.ensure_llama_server("0.3.36", root=root)
    assert second.built is False and second.sha256 == first.sha256
    assert len((bindir / "calls").read_text().splitlines()) == 2  # nothing rebuilt

    third = lb.ensure_llama_server("0.3.36", root=root, force=True, log=lambda m: None)
    assert third.built is True
    assert len((bindir / "calls").read_text().splitlines()) == 4


def test_prebuilt_binary_is_taken_for_development(root, tmp_path, monkeypatch):
    prebuilt = executable(tmp_path / "llama-server", FAKE_SERVER)
    monkeypatch.setenv(lb.PREBUILT_ENV, str(prebuilt))
    monkeypatch.setattr(lb, "needed_libraries", lambda binary: ["libc.so.6"])
    result = lb.ensure_llama_server("0.3.36", root=root, log=lambda m: None)
    assert result.built is True and result.source == f"prebuilt:{prebuilt}"
    assert lb.read_cached("0.3.36", root=root).sha256 == lb.sha256_file(prebuilt)


def test_prebuilt_shared_build_is_refused(root, tmp_path, monkeypatch):
    prebuilt = executable(tmp_path / "llama-server", FAKE_SERVER)
    monkeypatch.setenv(lb.PREBUILT_ENV, str(prebuilt))
    monkeypatch.setattr(
        lb, "needed_libraries", lambda binary: ["libllama-server-impl.so", "libstdc++.so.6", "libc.so.6"]
    )
    with pytest.raises(lb.BuildError, match=r"not portable: it needs libllama-server-impl\.so, libstdc"):
        lb.ensure_llama_server("0.3.36", root=root, log=lambda m: None)
    assert lb.read_cached("0.3.36", root=root) is None


def test_missing_tools_error_names_the_apt_fix(root, monkeypatch):
    monkeypatch.setattr(lb.shutil, "which", lambda name: None)
    # and nothing may be downloaded or built if the check were skipped
    monkeypatch.setattr(lb, "ensure_sdist", lambda *a, **k: pytest.fail("went past the tool check"))
    with pytest.raises(lb.BuildError) as excinfo:
        lb.ensure_llama_server("0.3.36", root=root, install_tools=False, log=lambda m: None)
    text = str(excinfo.value)
    assert "needs cmake, g++, make" in text
    assert "apt-get install -y cmake g++ make" in text


def test_cli_prints_the_cached_path(root, monkeypatch, capsys):
    binary = executable(lb.cached_binary("0.3.36", root=root), FAKE_SERVER)
    binary.with_name("llama-server.sha256").write_text(f"{lb.sha256_file(binary)}  llama-server\n")
    monkeypatch.setattr(lb, "cache_root", lambda env=None: root)
    assert lb.main(["--version", "0.3.36"]) == 0
    assert capsys.readouterr().out.strip() == str(binary)
    assert lb.main(["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(binary) and printed["built"] is False


def test_cli_reports_errors_with_exit_1(root, monkeypatch, capsys):
    monkeypatch.setattr(lb, "cache_root", lambda env=None: root)
    assert lb.main(["--version", "latest"]) == 1
    assert "not a llama-cpp-python release version" in capsys.readouterr().err

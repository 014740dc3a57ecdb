"""`manifest.json`: every file of a bundle with its size and SHA-256, and where it came from."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
CHUNK = 4 * 1024 * 1024

Progress = Callable[[int], None]


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    """SHA-256 of a file, read in 4 MiB chunks; `progress(n)` after each chunk."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def safe_relpath(path: str) -> bool:
    """A manifest path stays inside the bundle: relative, no '..', no empty parts."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(p not in ("", ".", "..") for p in parts)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """What a bundle holds. `digest` identifies its content (files + source), not its creation time."""

    model: str
    format: str  # gguf | safetensors | other
    files: list[FileEntry]
    quantization: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # kind, repo, revision
    license: str | None = None
    gated: bool = False
    created: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def digest(self) -> str:
        core = {
            "files": [asdict(f) for f in sorted(self.files, key=lambda f: f.path)],
            "source": self.source,
            "format": self.format,
        }
        return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def gguf_files(self) -> list[str]:
        return sorted(f.path for f in self.files if f.path.endswith(".gguf"))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = [asdict(f) for f in sorted(self.files, key=lambda f: f.path)]
        out["total_bytes"] = self.total_bytes
        out["digest"] = self.digest
        return out

    def write(self, directory: Path) -> Path:
        """Write `manifest.json` atomically (temp file + rename)."""
        path = directory / MANIFEST_NAME
        tmp = path.with_name(f".{MANIFEST_NAME}.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Raises ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("the manifest is not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version {version!r} is not {FORMAT_VERSION}")
        raw = data.get("files")
        if not isinstance(raw, list) or not raw:
            raise ValueError("'files' must be a non-empty list")
        files: list[FileEntry] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            try:
                entry = FileEntry(str(item["path"]), int(item["size"]), str(item["sha256"]).lower())
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"files[{i}] needs path, size and sha256") from None
            if not safe_relpath(entry.path) or entry.path in seen:
                raise ValueError(f"files[{i}].path '{entry.path}' is not a unique path inside the bundle")
            if len(entry.sha256) != 64 or any(c not in "0123456789abcdef" for c in entry.sha256):
                raise ValueError(f"files[{i}].sha256 is not a SHA-256 hex digest")
            if entry.size < 0:
                raise ValueError(f"files[{i}].size is negative")
            seen.add(entry.path)
            files.append(entry)
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("'model' must be a non-empty string")
        return cls(
            model=model,
            format=str(data.get("format") or "other"),
            files=files,
            quantization=data.get("quantization"),
            source=dict(data.get("source") or {}),
            license=data.get("license"),
            gated=bool(data.get("gated", False)),
            created=data.get("created"),
        )

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """Raises OSError or ValueError."""
        text = (directory / MANIFEST_NAME).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        return cls.from_dict(data)


def guess_format(paths: list[str]) -> str:
    if any(p.endswith(".gguf") for p in paths):
        return "gguf"
    if any(p.endswith(".safetensors") for p in paths):
        return "safetensors"
    return "other"

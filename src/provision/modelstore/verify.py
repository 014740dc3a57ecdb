"""`provision models verify DIR`: every file of a bundle against its manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from provision.errors import InvalidInput, Problem
from provision.modelstore.manifest import MANIFEST_NAME, Manifest, Progress, sha256_file


@dataclass
class VerifyResult:
    directory: Path
    manifest: Manifest
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.bad

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "directory": str(self.directory),
            "model": self.manifest.model,
            "files": len(self.manifest.files),
            "checked": self.checked,
            "bad": [{"path": p, "reason": r} for p, r in self.bad],
        }


def load_manifest(directory: Path) -> Manifest:
    """The bundle's manifest, or InvalidInput (exit 2) saying why it cannot be used."""
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise InvalidInput([Problem(str(directory), "", "not a directory", "give a bundle directory")])
    if not path.is_file():
        raise InvalidInput(
            [
                Problem(
                    str(directory),
                    "",
                    f"no {MANIFEST_NAME} here, so this is not a bundle",
                    "make one with `provision models bundle MODEL --out DIR`",
                )
            ]
        )
    try:
        return Manifest.read(directory)
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            [Problem(str(path), "", f"unusable manifest: {exc}", "re-create the bundle")]
        ) from None


def verify_bundle(directory: Path, progress: Progress | None = None) -> VerifyResult:
    """Size first (cheap), then SHA-256 of every file whose size is right."""
    manifest = load_manifest(directory)
    result = VerifyResult(directory, manifest)
    for entry in manifest.files:
        path = directory / entry.path
        result.checked += 1
        if not path.is_file():
            result.bad.append((entry.path, "missing"))
            if progress:
                progress(entry.size)
            continue
        size = path.stat().st_size
        if size != entry.size:
            result.bad.append((entry.path, f"size {size}, expected {entry.size} (truncated or replaced)"))
            if progress:
                progress(entry.size)
            continue
        digest = sha256_file(path, progress)
        if digest != entry.sha256:
            result.bad.append(
                (entry.path, f"sha256 {digest[:12]}..., expected {entry.sha256[:12]}... (corrupt)")
            )
    return result

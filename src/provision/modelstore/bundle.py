"""`provision models bundle`: a model's files from the hub (or a local path) into a bundle.

The bundle for catalog model M at quantization Q is `OUT/M/Q/` (the same layout as the nodes'
`<models_dir>/M/Q`), holding the files and `manifest.json`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from provision.catalog import Catalog, load_catalog
from provision.errors import InvalidInput, Problem
from provision.modelstore.download import DownloadFailed
from provision.modelstore.hub import GatedRepoError, HubClient, HubError, RemoteFile
from provision.modelstore.manifest import FileEntry, Manifest, guess_format, sha256_file

SAFETENSORS_INCLUDE = [
    "*.safetensors",
    "*.json",
    "tokenizer*",
    "*.model",
    "*.tiktoken",
    "merges.txt",
    "vocab.txt",
]


@dataclass
class Target:
    """What to fetch for one `MODEL` argument."""

    model: str  # catalog id, or the repository with '/' replaced by '--'
    quantization: str | None
    repo: str
    include: list[str]
    format: str
    license: str | None = None
    gated: bool = False
    notes: list[str] = field(default_factory=list)


def _invalid(arg: str, message: str, fix: str) -> InvalidInput:
    return InvalidInput([Problem(arg, "", message, fix)])


def resolve_target(
    name: str, quant: str | None, include: list[str] | None, catalog: Catalog | None = None
) -> Target:
    catalog = catalog or load_catalog()
    spec = catalog.model(name)
    if spec is None:
        if "/" not in name:
            close = catalog.suggest_model(name)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise _invalid(
                name, f"unknown model '{name}'", f"{hint}use a catalog id or a hub repository owner/name"
            )
        return Target(
            model=name.replace("/", "--"),
            quantization=quant,
            repo=name,
            include=include or [],
            format="auto",
        )
    q = catalog.quant(quant) if quant else None
    if quant and q is None:
        raise _invalid(
            quant, f"unknown quantization '{quant}'", "see `provision models list` and docs/planner.md"
        )
    fmt = q.format if q else "safetensors"
    repo = spec.hf_variants.get(fmt) or spec.hf_repo
    if include:
        patterns = include
    elif fmt == "gguf":
        patterns = [f"*{q.name if q else ''}*.gguf"]
    else:
        patterns = SAFETENSORS_INCLUDE
    return Target(
        model=spec.id,
        quantization=q.name if q else ("BF16" if spec.torch_dtype == "bfloat16" else None),
        repo=repo,
        include=patterns,
        format=fmt,
        license=spec.license,
        gated=spec.gated and repo == spec.hf_repo,  # quantized re-uploads are usually not gated
    )


def select(files: list[RemoteFile], patterns: list[str]) -> list[RemoteFile]:
    """Files matching any pattern (fnmatch, case-insensitive, against the whole path)."""
    if not patterns:
        return list(files)
    return [f for f in files if any(fnmatch.fnmatch(f.path.lower(), p.lower()) for p in patterns)]


def bundle_dir(out: Path, target: Target) -> Path:
    return out / target.model / (target.quantization or "default")


def refuse_gated_without_token(target: Target, token: str | None) -> None:
    if target.gated and not token:
        raise _invalid(
            target.model,
            f"{target.repo} is gated (license {target.license}) and no hub token was given; "
            "nothing was downloaded",
            "accept the license on the model's hub page, then set HF_TOKEN in the environment or "
            "pass --token-file (an Ansible Vault file holding the token)",
        )


Bar = Callable[[str, int], Callable[[int], None]]


def bundle_from_hub(
    target: Target,
    out: Path,
    revision: str,
    token: str | None,
    bar: Bar | None = None,
    client: HubClient | None = None,
) -> tuple[Path, Manifest]:
    """Download (resuming) the selected files at the pinned commit; write the manifest."""
    refuse_gated_without_token(target, token)
    client = client or HubClient(token=token)
    try:
        info = client.model_info(target.repo, revision)
        if info.gated and not token:
            target.gated = True
            refuse_gated_without_token(target, token)
        files = select(info.files, target.include)
        if not files:
            raise _invalid(
                target.model,
                f"no file of {target.repo}@{revision} matches {target.include}",
                "check --quant or pass --include PATTERN (the repository lists: "
                + ", ".join(f.path for f in info.files[:8])
                + ")",
            )
        dest = bundle_dir(out, target)
        dest.mkdir(parents=True, exist_ok=True)
        entries: list[FileEntry] = []
        for remote in files:
            path = dest / remote.path
            progress = bar(remote.path, remote.size) if bar else None
            if path.is_file() and path.stat().st_size == remote.size:
                # renamed into place only after it was verified; `provision models verify` re-hashes
                sha = remote.sha256 or sha256_file(path)
                if progress:
                    progress(remote.size)
            else:
                sha = client.download(target.repo, info.commit, remote, path, progress)
            entries.append(FileEntry(remote.path, remote.size, sha))
    except GatedRepoError as exc:
        raise _invalid(target.repo, str(exc), exc.fix) from None
    except HubError as exc:
        raise HubDownloadFailed(f"{exc} (fix: {exc.fix})") from None
    fmt = target.format if target.format != "auto" else guess_format([e.path for e in entries])
    manifest = Manifest(
        model=target.model,
        quantization=target.quantization,
        format=fmt,
        files=entries,
        source={"kind": "hf", "repo": target.repo, "revision": info.commit, "requested": revision},
        license=target.license,
        gated=target.gated or info.gated,
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    manifest.write(dest)
    return dest, manifest


def bundle_from_path(
    target: Target, out: Path, source: Path, bar: Bar | None = None
) -> tuple[Path, Manifest]:
    """A bundle from a local GGUF file or snapshot directory (copied, or hard-linked when possible)."""
    if not source.exists():
        raise _invalid(str(source), "no such file or directory", "give a GGUF file or a snapshot directory")
    pairs = (
        [(source.name, source)]
        if source.is_file()
        else sorted(
            (str(p.relative_to(source)), p)
            for p in source.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json"
        )
    )
    if target.include:
        pairs = [
            (rel, p)
            for rel, p in pairs
            if any(fnmatch.fnmatch(rel.lower(), i.lower()) for i in target.include)
        ]
    dest = bundle_dir(out, target)
    dest.mkdir(parents=True, exist_ok=True)
    entries = []
    for rel, path in pairs:
        target_path = dest / rel
        target_path.parent.mkdir(parents=True, exist_ok=True)
        if not (target_path.exists() and os.path.samefile(target_path, path)):
            tmp = target_path.with_name(target_path.name + ".incomplete")
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)
            except OSError:
                shutil.copyfile(path, tmp)
            os.replace(tmp, target_path)
        size = target_path.stat().st_size
        progress = bar(rel, size) if bar else None
        entries.append(FileEntry(rel, size, sha256_file(target_path, progress)))
    if not entries:
        raise _invalid(str(source), "no files to bundle", "check the path and --include")
    fmt = target.format if target.format != "auto" else guess_format([e.path for e in entries])
    manifest = Manifest(
        model=target.model,
        quantization=target.quantization,
        format=fmt,
        files=entries,
        source={"kind": "local", "name": source.name},
        license=target.license,
        gated=target.gated,
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    manifest.write(dest)
    return dest, manifest


class HubDownloadFailed(DownloadFailed):
    """A download that stopped (network, hub): exit 1, the next run resumes."""

"""One resumable, verified download: shared by the hub client and the Ollama registry client.

The file goes to `<dest>.incomplete`. A re-run asks for the rest with `Range: bytes=<size>-`
and appends to it; a server that ignores Range (200 instead of 206) makes the file start over,
honestly, from byte 0. The SHA-256 (when one is known) is computed while the bytes arrive
(continued over what was already on disk), and the file is renamed to `dest` only when its
size and SHA-256 are right; a file that does not verify is removed so the next run starts it
over. A connection that drops mid-body leaves the partial file for the next run.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from provision.errors import ProvisionError

CHUNK = 1024 * 1024
RESUME_FIX = "run the same command again: the download resumes where it stopped"


class DownloadError(Exception):
    """A download that did not complete: what happened, the fix, and the HTTP status if any."""

    def __init__(self, message: str, fix: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.fix = fix
        self.status = status


class DownloadFailed(ProvisionError):
    """A download that stopped (network, server, a file that did not verify): exit 1; the next
    run resumes."""


class Response(Protocol):
    status: int
    headers: Any

    def read1(self, n: int = -1, /) -> bytes: ...


Opener = Callable[[int], AbstractContextManager[Response]]


def _content_range_start(value: str | None) -> int | None:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*", value or "")
    return int(m.group(1)) if m else None


def download_resumable(
    open_at: Opener,
    dest: Path,
    size: int,
    sha256: str | None,
    what: str,
    progress: Callable[[int], None] | None = None,
    error: type[DownloadError] = DownloadError,
    expected_from: str = "the expected",
) -> str:
    """Download to `dest` (resuming `<dest>.incomplete`) and return the file's SHA-256.

    `open_at(offset)` sends the request with `Range: bytes=<offset>-` and returns the open
    response (it maps HTTP errors to `error` itself). `size` is the file's size; `sha256`, when
    given, must match before the file is renamed into place. `progress(n)` is called with the
    bytes already on disk, then per chunk received (and with a negative count when a server
    that ignores Range makes the file start over). Failures raise `error`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".incomplete")
    have = partial.stat().st_size if partial.exists() else 0
    if have > size:
        partial.unlink()
        have = 0
    digest = hashlib.sha256()
    if have:
        with partial.open("rb") as fh:  # the hash continues over what is already there
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        if progress:
            progress(have)
    if have < size:
        with open_at(have) as resp:
            if have and resp.status != 206:  # the server ignored Range: start over, honestly
                if progress:
                    progress(-have)
                have = 0
                digest = hashlib.sha256()
                mode = "wb"
            else:
                mode = "ab"
                start = _content_range_start(resp.headers.get("Content-Range"))
                if resp.status == 206 and start != have:
                    raise error(
                        f"{what}: asked for bytes from {have}, the server answered Content-Range "
                        f"{resp.headers.get('Content-Range')!r}",
                        RESUME_FIX,
                    )
            got = have
            with partial.open(mode) as fh:
                try:
                    # read1: whatever has arrived (up to CHUNK), so the partial file grows as the
                    # bytes come and a dropped connection loses nothing that was received
                    while chunk := resp.read1(CHUNK):
                        fh.write(chunk)
                        digest.update(chunk)
                        got += len(chunk)
                        if progress:
                            progress(len(chunk))
                except (http.client.HTTPException, OSError) as exc:
                    fh.flush()
                    raise error(
                        f"{what}: the connection broke after {got} of {size} bytes "
                        f"({type(exc).__name__}: {exc})",
                        RESUME_FIX,
                    ) from None
            if got < size:  # the body ended early: the server or the network closed it
                raise error(f"{what}: the transfer stopped after {got} of {size} bytes", RESUME_FIX)
    on_disk = partial.stat().st_size
    if on_disk != size:
        if on_disk > size:  # more than the file can hold: nothing of it can be trusted
            partial.unlink()
        raise error(f"{what}: got {on_disk} of {size} bytes", RESUME_FIX)
    sha = digest.hexdigest()
    if sha256 and sha != sha256:
        partial.unlink()
        raise error(
            f"{what}: sha256 {sha} does not match {expected_from} {sha256}; the partial file was removed",
            "run the same command again (that file starts over); if it fails again, the source "
            "serves corrupt data",
        )
    os.replace(partial, dest)
    return sha

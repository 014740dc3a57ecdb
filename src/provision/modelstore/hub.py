"""A small Hugging Face Hub client over urllib: the documented HTTP contract, nothing more.

- `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true`: the commit `sha`, `gated`,
  and `siblings` (`rfilename`, `size`, and `lfs.sha256` for files stored in LFS).
- `GET {endpoint}/{repo}/resolve/{commit}/{path}` with `Range: bytes=N-` to resume; the answer
  carries `X-Repo-Commit` and an `ETag` (for LFS files `X-Linked-Etag`, the SHA-256).
- `Authorization: Bearer <token>`; a gated repository answers 401 without one, 403 when the
  token's account has not been granted access.

`HF_ENDPOINT` points the client at a mirror (or the tests' stand-in), as it does for
huggingface_hub. Downloads go to `<dest>.incomplete` and are resumed from its size; a file is
renamed into place only when its SHA-256 (or, for small non-LFS files, its size) matches
(`provision.modelstore.download`, shared with the Ollama registry client).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.modelstore.download import DownloadError, download_resumable

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_S = 60


class HubError(DownloadError):
    """The hub (or the way to it) failed: message, fix, HTTP status."""


class GatedRepoError(HubError):
    """A gated repository and no token (401) or a token without access (403)."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files only; small git files have only a git blob id


@dataclass(frozen=True)
class RepoInfo:
    repo: str
    commit: str
    gated: bool
    files: list[RemoteFile]


def endpoint_from_env() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


class HubClient:
    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self.endpoint = (endpoint or endpoint_from_env()).rstrip("/")
        self._token = token

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "provision-modelstore/1", "Accept-Encoding": "identity"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _open(self, url: str, headers: dict[str, str], what: str):
        request = urllib.request.Request(url, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            raise self._status_error(exc.code, what, exc.headers.get("X-Error-Code")) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise HubError(
                f"cannot reach {self.endpoint} for {what}: {getattr(exc, 'reason', exc)}",
                "check the network or HF_ENDPOINT; on an air-gapped site make the bundle on a "
                "machine with internet and carry it over",
            ) from None

    def _status_error(self, status: int, what: str, code: str | None) -> HubError:
        if status == 401:
            return GatedRepoError(
                f"{what}: the hub answered 401 ({code or 'authentication required'}): the "
                "repository is gated or private and no token was given",
                "accept the model's license on its hub page, then set HF_TOKEN in the environment "
                "(or --token-file with an Ansible Vault file holding the token)",
                status,
            )
        if status == 403:
            return GatedRepoError(
                f"{what}: the hub answered 403: this token's account has no access",
                "request access on the model's hub page with the token's account, or use another token",
                status,
            )
        if status == 404:
            return HubError(
                f"{what}: not found (404)", "check the repository name, the revision and the file", status
            )
        return HubError(f"{what}: the hub answered HTTP {status}", "retry later", status)

    def model_info(self, repo: str, revision: str = "main") -> RepoInfo:
        quoted_rev = urllib.parse.quote(revision, safe="")
        url = f"{self.endpoint}/api/models/{repo}/revision/{quoted_rev}?blobs=true"
        with self._open(url, self._headers(), f"model info of {repo}@{revision}") as resp:
            data = json.loads(resp.read().decode())
        commit = data.get("sha")
        if not isinstance(commit, str) or len(commit) != 40:
            raise HubError(f"model info of {repo}@{revision} has no commit sha", "retry; check HF_ENDPOINT")
        files = []
        for sib in data.get("siblings") or []:
            lfs = sib.get("lfs") or {}
            size = lfs.get("size", sib.get("size"))
            if size is None:
                raise HubError(
                    f"model info of {repo} lacks file sizes (blobs=true ignored?)", "check HF_ENDPOINT"
                )
            files.append(RemoteFile(sib["rfilename"], int(size), lfs.get("sha256")))
        return RepoInfo(repo, commit, bool(data.get("gated")), files)

    def file_url(self, repo: str, commit: str, path: str) -> str:
        return f"{self.endpoint}/{repo}/resolve/{commit}/{urllib.parse.quote(path)}"

    def download(
        self,
        repo: str,
        commit: str,
        remote: RemoteFile,
        dest: Path,
        progress: Callable[[int], None] | None = None,
    ) -> str:
        """Download (resuming `<dest>.incomplete`) and return the file's SHA-256 (the shared
        `download.download_resumable`: Range resume, SHA-256 before the rename)."""
        url = self.file_url(repo, commit, remote.path)
        what = f"{repo}/{remote.path}"

        @contextmanager
        def open_at(offset: int) -> Iterator[Any]:
            headers = self._headers()
            headers["Range"] = f"bytes={offset}-"
            with self._open(url, headers, what) as resp:
                served_commit = resp.headers.get("X-Repo-Commit")
                if served_commit and served_commit != commit:
                    raise HubError(
                        f"{remote.path}: the hub served commit {served_commit}, not {commit}",
                        "retry; the revision must be a pinned commit",
                    )
                yield resp

        return download_resumable(
            open_at,
            dest,
            remote.size,
            remote.sha256,
            remote.path,
            progress,
            error=HubError,
            expected_from="the hub's",
        )

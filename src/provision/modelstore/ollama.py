"""Ollama library models as bundles: a small registry client (urllib) and a local-store reader.

What this relies on, read in Ollama's own source (github.com/ollama/ollama) and threads:

- Names (`types/model/name.go`, `server/modelpath.go`): `[host/][namespace/]model[:tag]`; the
  defaults are host `registry.ollama.ai`, namespace `library`, tag `latest`; a ':' after the
  last '/' starts the tag (so `host:port/ns/model` has no tag). Allowed characters: host
  `[A-Za-z0-9_][A-Za-z0-9_.:-]*` (1-350), namespace `[A-Za-z0-9_][A-Za-z0-9_-]*` (1-80), model
  and tag `[A-Za-z0-9_][A-Za-z0-9_.-]*` (1-80). A `scheme://` in front is stripped by Ollama
  (it uses https unless told `--insecure`).
- Manifest (`server/images.go`, `pullModelManifest`): `GET {scheme}://{host}/v2/{namespace}/
  {model}/manifests/{tag}` with `Accept: application/vnd.docker.distribution.manifest.v2+json`;
  a JSON object `schemaVersion` 2, `mediaType`, `config` and `layers` [{`mediaType`, `digest`,
  `size`}]. A 404 there means no such model or tag (`makeRequestWithRetry` -> os.ErrNotExist).
- Layer media types (`server/images.go`, `GetModel`): `application/vnd.ollama.image.model`
  (the GGUF weights), `.projector`, `.adapter` (may repeat), `.template` (older models:
  `.prompt`), `.system`, `.params` (a JSON object of options), `.messages` (a JSON list),
  `.license` (may repeat); `.embed` is deprecated and ignored by Ollama.
- Blobs (`server/download.go`, `downloadBlob`/`run`): `GET .../v2/{namespace}/{model}/blobs/
  {digest}`; the registry answers 307 Temporary Redirect to its CDN (Ollama stops at the first
  redirect to another host and downloads from the Location; the CDN is
  `*.r2.cloudflarestorage.com`, ollama/ollama issue #4307, PR #6675) and parts are fetched with
  `Range: bytes=a-b`. After the download Ollama checks each blob's SHA-256 against its digest
  (`verifyBlob`). urllib follows the redirect itself and keeps the Range header.
- Digests are `sha256:<64 hex>` only (`GetBlobsPath` rejects anything else: a digest is used in
  a file path, so it is validated before use here too).
- The local store (`OLLAMA_MODELS`, default `~/.ollama/models`; `server/modelpath.go`,
  `GetManifestPath`, `GetBlobsPath`): `manifests/<host>/<namespace>/<model>/<tag>` (the
  manifest JSON, as Ollama re-encoded it after the pull) and `blobs/sha256-<hex>`.
- A model's digest is the SHA-256 of its manifest's bytes (`GetManifest`/`ParseNamedManifest`
  hash the manifest file; `/api/tags` reports that digest). Ollama says it has no official
  registry API (ollama/ollama PR #10197), so this is the subset its own client uses.

The bundle layout (`OUT/<model>/<quant or tag>/`, a contract with the ollama role; see
docs/models.md): `model.gguf`, `projector.gguf`, `ollama/template`, `ollama/system`,
`ollama/params.json`, `ollama/license` (further license layers: `ollama/license-2`, ...),
`ollama/messages.json`, `ollama/adapter-N.gguf` (N from 1), and `manifest.json`. Every file is
the layer's blob byte for byte, so its SHA-256 is the layer digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.catalog import Catalog, load_catalog
from provision.errors import InvalidInput, Problem
from provision.modelstore.download import (
    RESUME_FIX,
    DownloadError,
    DownloadFailed,
    download_resumable,
)
from provision.modelstore.manifest import FileEntry, Manifest, sha256_file

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_REGISTRY = f"https://{DEFAULT_HOST}"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA = "application/vnd.ollama.image."
TIMEOUT_S = 60
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

Bar = Callable[[str, int], Callable[[int], None]]


# --- names -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OllamaName:
    """`[scheme://][host/][namespace/]model[:tag]`, with Ollama's defaults filled in."""

    model: str
    namespace: str = DEFAULT_NAMESPACE
    tag: str = DEFAULT_TAG
    host: str | None = None  # None: the default registry (or --registry / OLLAMA_REGISTRY)
    scheme: str | None = None

    @classmethod
    def parse(cls, text: str) -> OllamaName:
        """Raises ValueError saying what is wrong."""
        s = text.strip()
        if not s:
            raise ValueError("the name is empty")
        if "@" in s:
            raise ValueError("a digest reference (name@sha256:...) is not supported; name a tag")
        scheme = None
        if "://" in s:
            scheme, s = s.split("://", 1)
            if scheme not in ("http", "https"):
                raise ValueError(f"scheme '{scheme}' is not http or https")
        tag = DEFAULT_TAG
        if s.rfind(":") > s.rfind("/"):
            s, tag = s.rsplit(":", 1)
            if not _PART.fullmatch(tag):
                raise ValueError(
                    f"tag '{tag}' is not a tag (letters, digits, '_', '-', '.'; not first '-' or '.')"
                )
        parts = s.split("/")
        if len(parts) > 3:
            raise ValueError(f"'{text}' has {len(parts)} '/'-separated parts; at most host/namespace/model")
        host = parts[0] if len(parts) == 3 else None
        namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
        model = parts[-1]
        if host is not None and not _HOST.fullmatch(host):
            raise ValueError(f"host '{host}' is not a host name")
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace '{namespace}' is not a namespace (letters, digits, '_', '-')")
        if not _PART.fullmatch(model):
            raise ValueError(f"model '{model}' is not a model name (letters, digits, '_', '-', '.')")
        if scheme and host is None:
            raise ValueError(f"'{text}' names a scheme but no host (host/namespace/model)")
        return cls(model=model, namespace=namespace, tag=tag, host=host, scheme=scheme)

    @property
    def repository(self) -> str:
        """`namespace/model`: the registry path, and the manifest's `source.name`."""
        return f"{self.namespace}/{self.model}"

    @property
    def store_host(self) -> str:
        return self.host or DEFAULT_HOST

    def same_model(self, other: OllamaName) -> bool:
        """Ollama compares names case-insensitively (Name.EqualFold)."""
        return (
            self.store_host.lower(),
            self.namespace.lower(),
            self.model.lower(),
            self.tag.lower(),
        ) == (other.store_host.lower(), other.namespace.lower(), other.model.lower(), other.tag.lower())

    def __str__(self) -> str:
        """The shortest form, as Ollama shows names."""
        prefix = ""
        if self.host and self.host != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"

    def bundle_model_id(self) -> str:
        """The bundle's `<model>` folder for a name that is not a catalog model.

        The name without its tag, the default host and (under it) the default namespace left
        out as Ollama shows names, then '/' -> '--' and ':' (a host's port) -> '-':
        `someone/coder:7b` -> `someone--coder`, `mistral:7b` -> `mistral`,
        `example.com:5000/team/m:v1` -> `example.com-5000--team--m`. The tag is the folder
        below it (tags hold only letters, digits, '_', '-', '.').
        """
        short = str(self).rsplit(":", 1)[0]
        return short.replace("/", "--").replace(":", "-")


# --- what to fetch for one MODEL argument ----------------------------------------------------


@dataclass
class OllamaTarget:
    argument: str  # what the user typed (for messages)
    name: OllamaName
    model: str  # the bundle's <model>: a catalog id, or OllamaName.bundle_model_id()
    directory: str  # the bundle's <quant or tag>
    quantization: str | None
    license: str | None = None


def _invalid(where: str, message: str, fix: str) -> InvalidInput:
    return InvalidInput([Problem(where, "", message, fix)])


def resolve_ollama_target(
    argument: str, quant: str | None = None, catalog: Catalog | None = None
) -> OllamaTarget:
    """A catalog id (its `ollama_tags[quant]`, else its `ollama` tag) or an Ollama model name."""
    catalog = catalog or load_catalog()
    q = catalog.quant(quant) if quant else None
    if quant and q is None:
        close = catalog.suggest_quant(quant)
        hint = f"did you mean {close[0]}? " if close else ""
        raise _invalid(quant, f"unknown quantization '{quant}'", f"{hint}see docs/planner.md")
    if q is not None and q.format != "gguf":
        raise _invalid(
            q.name,
            f"Ollama models are GGUF files; {q.name} is a {q.format} quantization",
            "pick a GGUF quantization (e.g. Q4_K_M, Q8_0, F16) or leave --quant out",
        )
    spec = catalog.model(argument)
    if spec is None:
        try:
            name = OllamaName.parse(argument)
        except ValueError as exc:
            raise _invalid(
                argument,
                f"not a catalog id and not an Ollama model name: {exc}",
                "give a catalog id (provision models list) or an Ollama name "
                "[host/][namespace/]model[:tag], e.g. llama3.2:1b or someone/model:q4_K_M",
            ) from None
        # an Ollama tag the catalog knows (e.g. llama3.2:1b-instruct-q8_0) is filed as that
        # catalog model and quantization: the folder the planner's model_dir names
        for candidate in catalog.models:
            for qname, tag in sorted(candidate.ollama_tags.items()):
                if not name.same_model(OllamaName.parse(tag)):
                    continue
                if q is not None and q.name != qname:
                    raise _invalid(
                        q.name,
                        f"--quant {q.name} contradicts {name}, which the catalog lists as "
                        f"{candidate.id} at {qname}",
                        f"leave --quant out, or give --quant {qname}",
                    )
                return OllamaTarget(argument, name, candidate.id, qname, qname, candidate.license)
        qname = q.name if q else None
        return OllamaTarget(argument, name, name.bundle_model_id(), qname or name.tag, qname)
    library = (
        f"ollama.com/library/{OllamaName.parse(spec.ollama).model}/tags" if spec.ollama else "ollama.com"
    )
    if q is not None:
        tag = spec.ollama_tags.get(q.name)
        if not tag:
            known = ", ".join(sorted(spec.ollama_tags)) or "none"
            raise _invalid(
                argument,
                f"the catalog has no Ollama tag for {spec.id} at {q.name} (it has: {known})",
                f"give --quant one of those, or name the Ollama tag itself instead of '{argument}' "
                f"(the tags are listed on {library})",
            )
    else:
        tag = spec.ollama
        if not tag:
            raise _invalid(
                argument,
                f"{spec.id} has no Ollama library model in the catalog",
                "bundle its GGUF from the hub instead (provision models bundle "
                f"{spec.id} --quant Q4_K_M --out DIR, without --from-ollama)",
            )
        # the catalog's default tag is often also one of its quantizations' tags
        default = OllamaName.parse(tag)
        q = next(
            (
                catalog.quant(k)
                for k, v in sorted(spec.ollama_tags.items())
                if default.same_model(OllamaName.parse(v))
            ),
            None,
        )
    name = OllamaName.parse(tag)
    qname = q.name if q else None
    return OllamaTarget(argument, name, spec.id, qname or name.tag, qname, spec.license)


# --- manifests and layers --------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # sha256:<hex>
    size: int

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class OllamaManifest:
    raw: bytes
    layers: list[Layer]
    config: Layer | None

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()

    @classmethod
    def parse(cls, raw: bytes) -> OllamaManifest:
        """Raises ValueError saying what is wrong."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("schemaVersion") != 2:
            raise ValueError(f"schemaVersion {data.get('schemaVersion')!r} is not 2")

        def layer(item: Any, where: str) -> Layer:
            if not isinstance(item, dict):
                raise ValueError(f"{where} is not an object")
            media, digest, size = item.get("mediaType"), item.get("digest"), item.get("size")
            if not isinstance(media, str) or not media:
                raise ValueError(f"{where}.mediaType is missing")
            if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
                raise ValueError(f"{where}.digest {digest!r} is not sha256:<64 hex digits>")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(f"{where}.size {size!r} is not a size")
            return Layer(media, digest, size)

        raw_layers = data.get("layers")
        if not isinstance(raw_layers, list) or not raw_layers:
            raise ValueError("'layers' must be a non-empty list")
        layers = [layer(item, f"layers[{i}]") for i, item in enumerate(raw_layers)]
        config = layer(data["config"], "config") if data.get("config") else None
        return cls(raw, layers, config)


SINGLE = {
    "model": "model.gguf",
    "projector": "projector.gguf",
    "template": "ollama/template",
    "prompt": "ollama/template",  # the template's older media type
    "system": "ollama/system",
    "params": "ollama/params.json",
    "messages": "ollama/messages.json",
}
IGNORED = {"embed"}  # deprecated; Ollama ignores it too


def bundle_layout(manifest: OllamaManifest, target: OllamaTarget) -> list[tuple[str, Layer]]:
    """(bundle path, layer) for every layer, in the contract's names; InvalidInput for a model
    that does not fit the layout (no or several model layers, a layer type it has no place for)."""
    out: list[tuple[str, Layer]] = []
    seen: dict[str, str] = {}
    licenses = adapters = 0
    for layer in manifest.layers:
        kind = layer.media_type.removeprefix(MEDIA) if layer.media_type.startswith(MEDIA) else ""
        if kind in IGNORED:
            continue
        if kind in SINGLE:
            path = SINGLE[kind]
            if path in seen:
                raise _invalid(
                    target.argument,
                    f"{target.name} has more than one {kind} layer ({seen[path]} and {layer.media_type}); "
                    f"the bundle layout has one {path}",
                    "bundle a tag with a single GGUF model file, or place the files yourself "
                    "(provision models bundle --from-path)",
                )
            seen[path] = layer.media_type
        elif kind == "license":
            licenses += 1
            path = "ollama/license" if licenses == 1 else f"ollama/license-{licenses}"
        elif kind == "adapter":
            adapters += 1
            path = f"ollama/adapter-{adapters}.gguf"
        else:
            raise _invalid(
                target.argument,
                f"{target.name} has a layer of type {layer.media_type}, which a GGUF bundle has no "
                "place for (provision bundles GGUF-based Ollama models)",
                "pick a GGUF-based tag of the model, or let a connected node `ollama pull` it",
            )
        out.append((path, layer))
    if "model.gguf" not in {p for p, _ in out}:
        raise _invalid(
            target.argument,
            f"{target.name} has no model layer ({MEDIA}model)",
            "check the name: this is not a model Ollama can run from a GGUF file",
        )
    return out


def _remove_stale(dest: Path, keep: set[str]) -> None:
    """Files of the Ollama layout that an earlier bundle of this folder had and this one does not
    (a tag that moved: a system prompt dropped, fewer adapters). Only the layout's own names."""
    candidates = [dest / "projector.gguf", dest / "projector.gguf.incomplete", *(dest / "ollama").glob("*")]
    for path in candidates:
        rel = path.relative_to(dest).as_posix()
        base = rel.removesuffix(".incomplete")
        ours = base in SINGLE.values() or re.fullmatch(r"ollama/(license(-\d+)?|adapter-\d+\.gguf)", base)
        if ours and base not in keep and path.is_file():
            path.unlink()


def _manifest(target: OllamaTarget, entries: list[FileEntry], source: dict[str, Any]) -> Manifest:
    return Manifest(
        model=target.model,
        quantization=target.quantization,
        format="gguf",
        files=entries,
        source=source,
        license=target.license,
        gated=False,  # the Ollama library asks for no token
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


# --- the registry ----------------------------------------------------------------------------


class RegistryError(DownloadError):
    """The registry (or the way to it) failed: message, fix, HTTP status."""


def registry_url(name: OllamaName, registry: str | None = None) -> str:
    """Where to ask: `registry` (--registry) if given; else the name's own host; else
    OLLAMA_REGISTRY; else https://registry.ollama.ai."""
    if registry:
        url = registry
    elif name.host:
        url = f"{name.scheme or 'https'}://{name.host}"
    else:
        url = os.environ.get("OLLAMA_REGISTRY") or DEFAULT_REGISTRY
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise _invalid(
            registry or "OLLAMA_REGISTRY",
            f"'{url}' is not a registry URL",
            "give http(s)://HOST[:PORT], e.g. https://registry.ollama.ai",
        )
    return url.rstrip("/")


class RegistryClient:
    def __init__(self, registry: str = DEFAULT_REGISTRY) -> None:
        self.base = registry.rstrip("/")

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base).netloc

    def _open(self, url: str, headers: dict[str, str], what: str):
        headers = {"User-Agent": "provision-modelstore/1", "Accept-Encoding": "identity", **headers}
        try:
            return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                raise RegistryError(f"{what}: not found (404)", "check the name and the tag", 404) from None
            if exc.code in (401, 403):
                raise RegistryError(
                    f"{what}: the registry refused it ({exc.code}): a private model, or none of that name",
                    "check the name; provision sends no registry credentials",
                    exc.code,
                ) from None
            raise RegistryError(
                f"{what}: the registry answered HTTP {exc.code}", RESUME_FIX, exc.code
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RegistryError(
                f"cannot reach {self.base} for {what}: {getattr(exc, 'reason', exc)}",
                "check the network, --registry or OLLAMA_REGISTRY; on a machine without internet "
                "bundle from a local Ollama store (--ollama-models); " + RESUME_FIX,
            ) from None

    def manifest_url(self, name: OllamaName) -> str:
        return f"{self.base}/v2/{name.repository}/manifests/{urllib.parse.quote(name.tag)}"

    def blob_url(self, name: OllamaName, digest: str) -> str:
        return f"{self.base}/v2/{name.repository}/blobs/{digest}"

    def manifest(self, name: OllamaName) -> OllamaManifest:
        what = f"the manifest of {name} at {self.base}"
        with self._open(self.manifest_url(name), {"Accept": MANIFEST_ACCEPT}, what) as resp:
            try:
                raw = resp.read(MAX_MANIFEST_BYTES + 1)
            except (http.client.HTTPException, OSError) as exc:
                raise RegistryError(f"{what}: the connection broke ({exc})", RESUME_FIX) from None
            announced = resp.headers.get("Docker-Content-Digest")
        if len(raw) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"{what}: larger than {MAX_MANIFEST_BYTES} bytes", "check --registry")
        try:
            manifest = OllamaManifest.parse(raw)
        except ValueError as exc:
            raise RegistryError(f"{what} is unusable: {exc}", "check --registry; retry later") from None
        # the distribution spec's header, when the registry sends one, names the same bytes
        if announced and announced != manifest.digest:
            raise RegistryError(
                f"{what}: Docker-Content-Digest {announced} but the bytes hash to {manifest.digest}",
                RESUME_FIX,
            )
        return manifest

    def download_blob(
        self, name: OllamaName, layer: Layer, dest: Path, progress: Callable[[int], None] | None = None
    ) -> str:
        """Resumable download of one blob (the registry redirects to its CDN; urllib follows and
        keeps Range), renamed to `dest` only when its SHA-256 equals the layer digest."""
        url = self.blob_url(name, layer.digest)

        @contextmanager
        def open_at(offset: int) -> Iterator[Any]:
            with self._open(url, {"Range": f"bytes={offset}-"}, f"{dest.name} ({layer.digest[:19]})") as resp:
                yield resp

        return download_resumable(
            open_at,
            dest,
            layer.size,
            layer.hex,
            f"{dest.name} of {name}",
            progress,
            error=RegistryError,
            expected_from="the layer digest",
        )


def bundle_from_ollama(
    target: OllamaTarget,
    out: Path,
    registry: str | None = None,
    bar: Bar | None = None,
    client: RegistryClient | None = None,
    catalog: Catalog | None = None,
) -> tuple[Path, Manifest]:
    """The model's layers from the registry into `OUT/<model>/<quant or tag>/` (resuming, every
    blob checked against its digest), then manifest.json."""
    client = client or RegistryClient(registry_url(target.name, registry))
    try:
        manifest = client.manifest(target.name)
    except RegistryError as exc:
        if exc.status in (401, 403, 404):
            close = (catalog or load_catalog()).suggest_model(target.argument)
            hint = f" (or did you mean the catalog's '{close[0]}'?)" if close else ""
            raise _invalid(
                target.argument,
                f"{client.base} has no model {target.name.repository} with tag '{target.name.tag}' "
                f"(HTTP {exc.status}); nothing was downloaded",
                "check the name and tag on the model's tags page (ollama.com/library/"
                f"{target.name.model}/tags){hint}",
            ) from None
        raise DownloadFailed(f"{exc} (fix: {exc.fix})") from None
    layout = bundle_layout(manifest, target)
    dest = out / target.model / target.directory
    dest.mkdir(parents=True, exist_ok=True)
    _remove_stale(dest, {p for p, _ in layout})
    entries: list[FileEntry] = []
    try:
        for rel, layer in layout:
            path = dest / rel
            progress = bar(rel, layer.size) if bar else None
            sha = None
            if path.is_file() and path.stat().st_size == layer.size:
                # a file from an earlier run: it was renamed into place only after it verified,
                # but the tag may have moved since, so it is checked against this digest
                sha = sha256_file(path, progress)
                if sha == layer.hex:
                    path.with_name(path.name + ".incomplete").unlink(missing_ok=True)
                else:
                    if progress:
                        progress(-layer.size)
                    path.unlink()
                    sha = None
            if sha is None:
                sha = client.download_blob(target.name, layer, path, progress)
            entries.append(FileEntry(rel, layer.size, sha))
    except RegistryError as exc:
        raise DownloadFailed(f"{exc} (fix: {exc.fix})") from None
    source = {
        "kind": "ollama",
        "registry": client.host,
        "name": target.name.repository,
        "tag": target.name.tag,
        "digest": manifest.digest,
    }
    result = _manifest(target, entries, source)
    result.write(dest)
    return dest, result


# --- a local Ollama store (OLLAMA_MODELS) ----------------------------------------------------


def bundle_from_ollama_store(
    target: OllamaTarget, out: Path, store: Path, bar: Bar | None = None
) -> tuple[Path, Manifest]:
    """The model from an Ollama store (`ollama pull` on this machine): blobs hard-linked into the
    bundle where the file system allows (copied otherwise), each one hashed against its digest."""
    if not (store / "manifests").is_dir() or not (store / "blobs").is_dir():
        raise _invalid(
            str(store),
            "not an Ollama model store (no manifests/ and blobs/ in it)",
            "give --ollama-models the OLLAMA_MODELS folder: ~/.ollama/models, or "
            "/usr/share/ollama/.ollama/models for the Linux service",
        )
    name = target.name
    path = store / "manifests" / name.store_host / name.namespace / name.model / name.tag
    if not path.is_file():
        tags = sorted(p.name for p in path.parent.glob("*")) if path.parent.is_dir() else []
        have = f" (it has tags: {', '.join(tags)})" if tags else ""
        raise _invalid(
            target.argument,
            f"{store} holds no {name}{have}",
            f"`ollama pull {name}` on this machine first, or check --ollama-models",
        )
    raw = path.read_bytes()
    try:
        manifest = OllamaManifest.parse(raw)
    except ValueError as exc:
        raise _invalid(str(path), f"unusable Ollama manifest: {exc}", f"`ollama pull {name}` again") from None
    layout = bundle_layout(manifest, target)
    dest = out / target.model / target.directory
    dest.mkdir(parents=True, exist_ok=True)
    _remove_stale(dest, {p for p, _ in layout})
    entries: list[FileEntry] = []
    for rel, layer in layout:
        blob = store / "blobs" / f"sha256-{layer.hex}"
        if not blob.is_file() or blob.stat().st_size != layer.size:
            why = "missing" if not blob.is_file() else f"{blob.stat().st_size} bytes, not {layer.size}"
            raise _invalid(
                str(blob),
                f"the blob of {name}'s {rel} is {why}",
                f"`ollama pull {name}` again (it re-fetches missing or partial blobs)",
            )
        target_path = dest / rel
        target_path.parent.mkdir(parents=True, exist_ok=True)
        progress = bar(rel, layer.size) if bar else None
        if target_path.exists() and os.path.samefile(target_path, blob):
            check = target_path
        else:
            check = target_path.with_name(target_path.name + ".incomplete")
            check.unlink(missing_ok=True)
            try:
                os.link(blob, check)  # same file system: no copy, no extra space
            except OSError:
                shutil.copyfile(blob, check)
        sha = sha256_file(check, progress)
        if sha != layer.hex:
            check.unlink()  # our link or copy; the store's blob is left alone
            raise _invalid(
                str(blob),
                f"the blob of {name}'s {rel} is corrupt: sha256 {sha}, its digest says {layer.hex}",
                f"`ollama rm {name}` and `ollama pull {name}` again",
            )
        if check != target_path:
            os.replace(check, target_path)
        entries.append(FileEntry(rel, layer.size, sha))
    source = {
        "kind": "ollama",
        "registry": name.store_host,
        "name": name.repository,
        "tag": name.tag,
        "digest": manifest.digest,
        "store": "local",
    }
    result = _manifest(target, entries, source)
    result.write(dest)
    return dest, result

"""Model placement: bundles (files + manifest.json), their verification, and the hub client.

A bundle is a directory holding a model's files and a `manifest.json` that names every file
with its size and SHA-256, plus where the files came from (repository, pinned revision),
their format and license. The `models` stage places bundles on the nodes and verifies them
there against the same manifest (docs/models.md).
"""

from provision.modelstore.manifest import MANIFEST_NAME, FileEntry, Manifest

__all__ = ["MANIFEST_NAME", "FileEntry", "Manifest"]

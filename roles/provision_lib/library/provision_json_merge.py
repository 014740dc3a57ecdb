#!/usr/bin/python
# Copyright: provision contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Merge a mapping into a JSON file, key by key, without owning the whole file."""
# Ansible's module layout puts DOCUMENTATION/EXAMPLES/RETURN before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_json_merge
short_description: Merge a mapping into a JSON file key by key
description:
  - Reads the JSON object stored at O(path), deep-merges O(data) into it and
    writes the result back only when the merged document differs from what
    is on disk.
  - Mappings are merged recursively; every other value (lists included) in
    O(data) replaces the value in the file. Keys present in the file but not
    in O(data) are kept, so several roles can share one file (for example
    C(/etc/docker/daemon.json), where the docker role sets logging and the
    NVIDIA container toolkit role adds its runtime).
  - The file is created when it is absent. Its parent directory must exist,
    except in check mode.
  - The new content is written to a temporary file in the same directory and
    renamed over O(path), so readers never see a half-written file. The
    owner, group and mode of an existing file are kept unless O(owner),
    O(group) or O(mode) say otherwise.
  - Semantic comparison decides whether to write, so a file that differs
    only in formatting or key order is left alone.
  - The role C(provision_lib) ships this module; list it as a dependency in a
    role's C(meta/main.yml) to use it. It is also available under the name
    C(provision_json_merge).
version_added: "0.1.0"
author:
  - provision contributors
options:
  path:
    description:
      - The JSON file to merge into.
    type: path
    required: true
    aliases: [dest]
  data:
    description:
      - The mapping to merge into the file's top-level object.
    type: dict
    required: true
  indent:
    description:
      - Indentation of the JSON written when the file changes.
    type: int
    default: 2
  backup:
    description:
      - Keep a timestamped copy of the previous file when it changes.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - A key cannot be removed with this module; write C(null) to clear a value
    or remove the key with another tool.
  - An existing file that is empty or holds only white space counts as C({}).
    An existing file with invalid JSON, or whose top level is not an object,
    makes the task fail and is left untouched.
"""

EXAMPLES = r"""
- name: Configure docker logging without touching other keys
  provision_json_merge:
    path: /etc/docker/daemon.json
    data:
      log-driver: json-file
      log-opts:
        max-size: 100m
        max-file: "3"
      live-restore: true
    owner: root
    group: root
    mode: "0644"
  notify: Restart docker

- name: Add the NVIDIA runtime (keeps log-opts written by the docker role)
  provision_json_merge:
    path: /etc/docker/daemon.json
    data:
      runtimes:
        nvidia:
          path: nvidia-container-runtime
          runtimeArgs: []
    backup: true
    mode: "0644"
"""

RETURN = r"""
path:
  description: The file merged into.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
content:
  description: The merged JSON object (what the file holds after the task, or would hold in check mode).
  returned: success
  type: dict
  sample: {"live-restore": true, "log-driver": "json-file"}
created:
  description: Whether the file did not exist before.
  returned: success
  type: bool
  sample: false
backup_file:
  description: The copy of the previous file, when O(backup) made one.
  returned: changed and backup requested and the file existed
  type: str
  sample: /etc/docker/daemon.json.12345.2026-01-01@00:00:00~
"""

import contextlib
import copy
import json
import os
import stat
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native


class JsonFileError(Exception):
    """The existing file cannot be merged into (unreadable, invalid JSON, not an object)."""


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A new mapping: ``base`` with ``overlay`` merged in key by key.

    Mappings present on both sides are merged recursively; any other value of
    ``overlay`` (lists included) replaces the one in ``base``. Key order is
    that of ``base``, with new keys appended in ``overlay``'s order. Neither
    argument is modified.
    """
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def canonical(document: Any) -> str:
    """A text form for comparing documents (``true`` differs from ``1``)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def parse_document(text: str, path: str = "<text>") -> dict[str, Any]:
    """Parse the file's text: blank counts as ``{}``; anything but an object fails."""
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise JsonFileError(
            f"{path} does not hold valid JSON ({exc}); it was left unchanged: "
            "fix or remove the file, then run again"
        ) from exc
    if not isinstance(document, dict):
        raise JsonFileError(
            f"{path} holds a JSON {type(document).__name__}, not an object; it was left unchanged: "
            "fix or remove the file, then run again"
        )
    return document


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise JsonFileError(f"cannot read {path}: {exc}") from exc


def render(document: dict[str, Any], indent: int = 2) -> str:
    """The text written to disk (UTF-8, trailing newline)."""
    return json.dumps(document, indent=indent, ensure_ascii=False) + "\n"


def plan(path: str, data: dict[str, Any], indent: int = 2) -> tuple[str | None, dict[str, Any], str, bool]:
    """Work out the merge: (old text, merged document, new text, changed)."""
    old_text = read_text(path)
    existing = parse_document(old_text, path) if old_text is not None else {}
    merged = deep_merge(existing, data)
    changed = old_text is None or canonical(merged) != canonical(existing)
    return old_text, merged, render(merged, indent), changed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` through a temporary file in the same directory.

    An existing file's mode, owner and group carry over to the new one; a new
    file gets 0666 less the umask, as ``open()`` would give it. The temporary
    file is removed if anything fails before the rename.
    """
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            st = os.stat(path)
        except FileNotFoundError:
            os.chmod(tmp, 0o666 & ~_umask())
        else:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            # not root: the file becomes ours, like any rewrite would
            with contextlib.suppress(PermissionError):
                os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True, "aliases": ["dest"]},
            "data": {"type": "dict", "required": True},
            "indent": {"type": "int", "default": 2},
            "backup": {"type": "bool", "default": False},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    data = module.params["data"]
    result: dict[str, Any] = {"changed": False, "path": path}

    if os.path.isdir(path):
        module.fail_json(msg=f"{path} is a directory; path must name a JSON file", **result)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        old_text, merged, new_text, changed = plan(path, data, module.params["indent"])
    except JsonFileError as exc:
        module.fail_json(msg=to_native(exc), **result)

    result.update(changed=changed, content=merged, created=old_text is None)
    if changed and module._diff:
        result["diff"] = {
            "before_header": path if old_text is not None else f"{path} (absent)",
            "after_header": path,
            "before": old_text or "",
            "after": new_text,
        }

    if changed and not module.check_mode:
        if not os.path.isdir(directory):
            module.fail_json(
                msg=f"the directory {directory} does not exist; create it before merging into {path}",
                **result,
            )
        if module.params["backup"] and old_text is not None:
            result["backup_file"] = module.backup_local(path)
        try:
            write_atomic(path, new_text)
        except OSError as exc:
            module.fail_json(msg=f"cannot write {path}: {to_native(exc)}", **result)
        if old_text is None:
            module.set_default_selinux_context(path, False)

    if os.path.exists(path):
        file_args = module.load_file_common_arguments(module.params, path=path)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    elif module.check_mode:
        pass  # created in a real run; the attributes would be set then

    module.exit_json(**result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()

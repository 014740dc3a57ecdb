"""Load YAML while remembering where every value came from.

`load_yaml` returns the plain data plus a `Source` that maps a YAML path
(a tuple of keys and list indexes) to its line number, so that every error
can name the file, the path and the line. Syntax errors, duplicate keys and
an empty file become `Problem`s, never tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


def format_path(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Source:
    """Where the values of one YAML document live."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, path: PathKey) -> int | None:
        # The nearest known ancestor is a good enough pointer for a missing key.
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


class YamlError(Exception):
    def __init__(self, file: str, line: int | None, message: str, fix: str) -> None:
        super().__init__(message)
        self.file, self.line, self.message, self.fix = file, line, message, fix


def _construct(node: yaml.Node, path: PathKey, src: Source, loader: Any) -> Any:
    src.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise YamlError(
                    src.file,
                    key_node.start_mark.line + 1,
                    f"{format_path(path) or 'top level'}: a mapping key must be a plain "
                    f"scalar, found {type(key).__name__}",
                    "write the key as a plain string",
                )
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise YamlError(
                    src.file,
                    key_node.start_mark.line + 1,
                    f"{format_path((*path, key))}: duplicate key '{key}' "
                    f"(first at line {src.lines.get((*path, key))})",
                    "remove one of the two entries: YAML keeps only the last one silently",
                )
            out[key] = _construct(value_node, (*path, key), src, loader)
            src.lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), src, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(file: Path, *, display: str | None = None) -> tuple[Any, Source]:
    """Parse one YAML file. Raises YamlError with line and fix on any problem."""
    name = display or str(file)
    src = Source(file=name)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError(name, None, "file not found", "check the path") from None
    except IsADirectoryError:
        raise YamlError(name, None, "is a directory, not a YAML file", "name the inventory file") from None
    except UnicodeDecodeError as exc:
        raise YamlError(name, None, f"not UTF-8 text ({exc.reason})", "save the file as UTF-8") from None
    return parse_yaml(text, src)


# libyaml's parser when the wheel has it (about 10x faster on big inventories).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, src: Source) -> tuple[Any, Source]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, src
        return _construct(node, (), src, loader), src
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        if exc.context:
            reason = f"{exc.context}, {reason}"
        raise YamlError(
            src.file,
            line,
            f"YAML syntax error: {reason}",
            "fix the indentation or quoting on that line (tabs are not allowed; quote values "
            "that contain ': ' or start with '*', '&', '!', '{', '[')",
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(src.file, None, f"YAML error: {exc}", "fix the YAML syntax") from None
    finally:
        loader.dispose()

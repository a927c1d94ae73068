"""GraphSense TagPack/ActorPack YAML reading, with a fast path for the common layout.

Most public TagPacks are a header followed by ``tags:`` and a block list of one-line
``key: scalar`` items. PyYAML (even the C loader) spends ~20 s on the 524k public tags,
so such files are read line by line here, resolving every plain scalar with PyYAML's own
implicit resolver (so ``true`` is a bool and ``2022-11-16`` a date exactly as YAML says).
Any line outside that simple form (comments, nested maps, quoted escapes, multi-line
values) sends the whole file to ``yaml.CSafeLoader``; both paths give the same dicts.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputFileError

_LINE = re.compile(r"^(- |  )([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?$")
_SQ = re.compile(r"^'((?:[^']|'')*)'$")
_DQ = re.compile(r'^"([^"\\]*)"$')
_FLOW_LIST = re.compile(r"^\[([A-Za-z0-9_ ,.-]*)\]$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


class _Fallback(Exception):
    """The file is not in the simple layout; parse it with the full YAML loader."""


def _plain(value: str, cache: dict[str, Any]) -> Any:
    hit = cache.get(value, cache)
    if hit is not cache:
        return hit
    if not value or value[0] in _INDICATORS or ": " in value or " #" in value:
        raise _Fallback
    if value.endswith(":"):
        raise _Fallback
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
    out: Any
    if tag == _STR_TAG:
        out = value
    elif tag == "tag:yaml.org,2002:bool":
        out = value.lower() in ("true", "yes", "on", "y")
    elif tag == "tag:yaml.org,2002:timestamp" and _DATE.match(value):
        out = dt.date.fromisoformat(value)
    else:
        raise _Fallback  # ints, floats, nulls, times: leave them to the real loader
    cache[value] = out
    return out


def _scalar(raw: str, cache: dict[str, Any]) -> Any:
    raw = raw.strip()
    if raw.startswith("'"):
        m = _SQ.match(raw)
        if not m:
            raise _Fallback
        return m.group(1).replace("''", "'")
    if raw.startswith('"'):
        m = _DQ.match(raw)
        if not m:
            raise _Fallback
        return m.group(1)
    if raw.startswith("["):
        m = _FLOW_LIST.match(raw)
        if not m:
            raise _Fallback
        return [_plain(v.strip(), cache) for v in m.group(1).split(",") if v.strip()]
    return _plain(raw, cache)


def _fast_tags(lines: list[str], first_line: int) -> list[tuple[int, dict[str, Any]]]:
    cache: dict[str, Any] = {}
    out: list[tuple[int, dict[str, Any]]] = []
    current: dict[str, Any] | None = None
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None or m.group(3) is None:
            raise _Fallback
        lead, key, raw = m.groups()
        if lead == "- ":
            current = {}
            out.append((first_line + offset, current))
        elif current is None:
            raise _Fallback
        if key in current:
            raise _Fallback  # duplicate key: let the real loader decide
        current[key] = _scalar(raw, cache)
    return out


def load_yaml(path: Path) -> Any:
    try:
        with path.open("rb") as fh:
            return yaml.load(fh, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputFileError(str(path), line, f"not valid YAML: {exc}") from None


def read_tagpack(path: Path) -> tuple[dict[str, Any], list[tuple[int | None, dict[str, Any]]]]:
    """The header dict and the ``(line, tag dict)`` list of one TagPack file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(str(path), None, f"not UTF-8 text: {exc}") from None
    lines = text.split("\n")
    tags_at = next((i for i, ln in enumerate(lines) if ln.rstrip() == "tags:"), None)
    if tags_at is not None:
        try:
            header = yaml.load("\n".join(lines[:tags_at]), Loader=yaml.CSafeLoader) or {}
            if isinstance(header, dict):
                return header, list(_fast_tags(lines[tags_at + 1 :], tags_at + 2))
        except (_Fallback, yaml.YAMLError):
            pass
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise InputFileError(str(path), 1, "a TagPack is a mapping with a 'tags' list")
    tags = doc.pop("tags", None)
    if not isinstance(tags, list):
        raise InputFileError(str(path), None, "field 'tags': missing or not a list")
    # item lines of the block list, in order, for error messages
    starts = [i + 1 for i, ln in enumerate(lines) if ln.startswith("- ")]
    starts = [s for s in starts if tags_at is None or s > tags_at]
    numbered: list[tuple[int | None, dict[str, Any]]] = []
    for i, tag in enumerate(tags):
        line = starts[i] if len(starts) == len(tags) else None
        if not isinstance(tag, dict):
            raise InputFileError(str(path), line, f"tag #{i + 1} is not a mapping")
        numbered.append((line, tag))
    return doc, numbered

"""A corpus of manifests: the valid examples and systematic mutations of them, for agreement tests."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.manifests.loader import load_document

# Values of every JSON type, and strings that probe patterns, lengths and formats.
PROBES: list[Any] = [
    None,
    True,
    0,
    7,
    -1,
    90.0,
    1.5,
    "",
    "x",
    "A b",
    "a" * 501,
    "2026-02-30",
    "2026-10-01",
    "eu-west",
    "partners.scp.dev/v1",
    "tech-lead",
    "ngo",
    "GET",
    "personal",
    "abc\n",
    [],
    ["x"],
    {},
    {"k": "v"},
]


def load(path: Path) -> Any:
    return load_document(path.read_bytes()).data


def mutations(document: Any) -> Iterator[tuple[str, Any]]:
    """(description, mutated copy): each leaf replaced by each probe, each key removed, a key added."""
    for path, _ in nodes(document):
        for probe in PROBES:
            yield f"{_label(path)} = {probe!r:.30}", replace(document, path, probe)
        if path and isinstance(path[-1], str):
            yield f"del {_label(path)}", _delete(document, path)
    for path, node in nodes(document):
        if isinstance(node, dict):
            yield f"{_label(path)} + unknown key", replace(document, (*path, "surprise"), "x")
        if isinstance(node, list) and node:
            yield f"{_label(path)} + copy of first", replace(document, (*path, len(node)), copy.deepcopy(node[0]))
            yield f"{_label(path)} emptied", replace(document, path, [])


def nodes(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, document
    if isinstance(document, dict):
        for key, value in document.items():
            yield from nodes(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from nodes(value, (*path, index))


def _label(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path) or "<root>"


def replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    result = copy.deepcopy(document)
    if not path:
        return value
    parent = result
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, list) and path[-1] == len(parent):
        parent.append(value)
    else:
        parent[path[-1]] = value
    return result


def _delete(document: Any, path: tuple[Any, ...]) -> Any:
    result = copy.deepcopy(document)
    parent = result
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    return result

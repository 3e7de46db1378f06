"""Turns the bytes of a YAML manifest into plain data and the line of every node, safely.

Parsing is done by libyaml (through PyYAML's C binding) when it is installed and by ruamel.yaml's
pure-Python composer otherwise. Both hand us the same node graph; everything after that —
scalar typing, duplicate keys, alias expansion limits, line numbers — is ours, so the two parsers
give the same result. libyaml is used first because pure-Python parsing costs about 14 times as much
as libyaml on our manifests (benchmarks/), and validation must stay within twice a plain C parse.

Scalars are typed by the YAML 1.2 core schema (``yes`` is a string, ``010`` is ten, dates stay
strings): a manifest means the same in every modern YAML tool and in the JSON Schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

try:  # pragma: no cover - which branch runs depends on how PyYAML was built
    from yaml._yaml import CParser as _CParser

    HAVE_LIBYAML = True
except ImportError:  # pragma: no cover
    HAVE_LIBYAML = False

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

MAX_FILE_BYTES = 1024 * 1024
# A manifest is a few hundred nodes; this bounds what aliases may expand to ("billion laughs").
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]

_INT = re.compile(r"[-+]?[0-9]+\Z")
_INT_OCT = re.compile(r"0o[0-7]+\Z")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(nan|NaN|NAN)\Z")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp"))
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_WORDS = _NULLS | _TRUES | _FALSES


class YamlProblem(Exception):
    """The file cannot be turned into a manifest; carries the 1-based line it points at."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Document:
    """One YAML document: plain data (dicts, lists, str, int, float, bool, None) and node lines."""

    data: Any
    lines: dict[Path, int] = field(repr=False)
    text: str = field(repr=False, default="")

    def line_of(self, path: Path) -> int:
        """The line of the node at ``path``, or of its nearest ancestor that exists."""
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return self.lines.get((), 1)


def load_document(raw: bytes) -> Document:
    """Parse one manifest file. Raises :class:`YamlProblem` for anything that is not one YAML mapping."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlProblem(f"file is larger than {MAX_FILE_BYTES // 1024} KiB; a manifest is far smaller", 1)
    text = _decode(raw)
    parser = _parser()
    roots = parser.compose(text)
    if not roots:
        raise YamlProblem("file is empty; expected one YAML mapping (apiVersion, kind, metadata, spec)", 1)
    if len(roots) > 1:
        raise YamlProblem(
            "file holds more than one YAML document; put each manifest in a file of its own",
            _line(roots[1]),
        )
    root = roots[0]
    if not isinstance(root, parser.mapping_type):
        raise YamlProblem("top level is not a mapping; expected apiVersion, kind, metadata and spec", _line(root))
    builder = _Builder(parser)
    data = builder.build(root, ())
    return Document(data=data, lines=builder.lines, text=text)


def _decode(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8",
            line,
        ) from exc
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise YamlProblem("file contains a NUL character; manifests are text", line)
    return text


@dataclass(frozen=True)
class _Parser:
    """A YAML composer and the node classes it produces."""

    compose_documents: Callable[[str], list[Any]]
    mapping_type: type
    sequence_type: type
    error_type: type[Exception]

    def compose(self, text: str) -> list[Any]:
        try:
            return self.compose_documents(text)
        except self.error_type as exc:
            raise YamlProblem(_describe_parse_error(exc), _parse_error_line(exc)) from exc
        except RecursionError as exc:
            raise YamlProblem(f"nesting is deeper than {MAX_DEPTH} levels", 1) from exc


if HAVE_LIBYAML:

    class _LibyamlComposer(_CParser):
        """libyaml's composer without PyYAML's YAML 1.1 resolver: we type scalars ourselves."""

        _TAGS: dict[Any, str] = {  # noqa: RUF012
            yaml.ScalarNode: _STR_TAG,
            yaml.SequenceNode: "tag:yaml.org,2002:seq",
            yaml.MappingNode: "tag:yaml.org,2002:map",
        }

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            return self._TAGS[kind]

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass


def _compose_libyaml(text: str) -> list[Any]:
    loader = _LibyamlComposer(text)
    try:
        documents: list[Any] = []
        # Stop at the second document: we only need to know that there is one.
        while len(documents) < 2 and loader.check_node():
            documents.append(loader.get_node())
        return documents
    finally:
        loader.dispose()


def _compose_ruamel(text: str) -> list[Any]:
    from ruamel.yaml import YAML

    documents: list[Any] = []
    for node in YAML(typ="safe", pure=True).compose_all(text):
        documents.append(node)
        if len(documents) > 1:
            break
    return documents


_PARSERS: dict[str, _Parser] = {}


def _parser(name: str | None = None) -> _Parser:
    """The parser to use: libyaml when available, else ruamel.yaml (``name`` forces one, for tests)."""
    name = name or _DEFAULT_PARSER
    if name not in _PARSERS:
        if name == "libyaml":
            _PARSERS[name] = _Parser(_compose_libyaml, yaml.MappingNode, yaml.SequenceNode, yaml.YAMLError)
        else:
            from ruamel.yaml import nodes
            from ruamel.yaml.error import YAMLError

            _PARSERS[name] = _Parser(_compose_ruamel, nodes.MappingNode, nodes.SequenceNode, YAMLError)
    return _PARSERS[name]


_DEFAULT_PARSER = "libyaml" if HAVE_LIBYAML else "ruamel"


def _line(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _parse_error_line(exc: Exception) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def _describe_parse_error(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        text = f"{context}: {problem}" if context else str(problem)
        return f"malformed YAML ({text}); check indentation, quotes and colons on this line"
    return "malformed YAML; check indentation, quotes and colons on this line"


class _Builder:
    """Builds plain data from a node graph, recording lines and bounding alias expansion."""

    def __init__(self, parser: _Parser) -> None:
        self.lines: dict[Path, int] = {}
        self.expanded = 0
        self.mapping_type: type = parser.mapping_type
        self.sequence_type: type = parser.sequence_type

    def build(self, node: Any, path: Path) -> Any:
        self.expanded += 1
        if self.expanded > MAX_EXPANDED_NODES:
            raise YamlProblem(
                f"document expands to more than {MAX_EXPANDED_NODES} nodes (aliases used to blow up size?); "
                "write the manifest out without anchors",
                _line(node),
            )
        if len(path) > MAX_DEPTH:
            raise YamlProblem(f"nesting is deeper than {MAX_DEPTH} levels", _line(node))
        self.lines[path] = _line(node)
        if isinstance(node, self.mapping_type):
            return self._mapping(node, path)
        if isinstance(node, self.sequence_type):
            items: list[Any] = node.value  # type: ignore[attr-defined]
            return [self.build(item, (*path, index)) for index, item in enumerate(items)]
        return _scalar(node)

    def _mapping(self, node: Any, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or (key_node.value == "<<" and not key_node.style):
                raise YamlProblem("merge keys (<<) are not supported in manifests; write the keys out", _line(key_node))
            if isinstance(key_node, self.mapping_type | self.sequence_type):
                raise YamlProblem("a mapping key must be a plain string", _line(key_node))
            key = key_node.value
            if key in result:
                raise YamlProblem(
                    f"duplicate key {key!r} (first on line {self.lines[(*path, key)]}); "
                    "YAML keeps only one of them, remove the other",
                    _line(key_node),
                )
            child = (*path, key)
            result[key] = self.build(value_node, child)
            # Point a mapping entry at its key: that is the line people look for.
            self.lines[child] = _line(key_node)
        return result


def _scalar(node: Any) -> Any:
    if node.tag not in _CORE_TAGS:
        raise YamlProblem(f"unsupported YAML tag {node.tag!r}; manifests use plain values", _line(node))
    value: str = node.value
    if node.style:  # quoted or block scalars are always strings
        return value
    return _resolve_plain(value)


def _resolve_plain(value: str) -> Any:
    """Type a plain scalar by the YAML 1.2 core schema."""
    first = value[:1]
    if first.isalpha() and value not in _WORDS:
        return value  # most values: no number or keyword starts with a letter
    if value in _NULLS:
        return None
    if value in _TRUES:
        return True
    if value in _FALSES:
        return False
    if _INT.match(value):
        return int(value)
    if _INT_OCT.match(value):
        return int(value[2:], 8)
    if _INT_HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if _INF.match(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.match(value):
        return float("nan")
    return value

"""The YAML loader: plain data, the line of every node, and a clear problem instead of a traceback."""

from __future__ import annotations

import pytest

from reconciler.manifests import loader
from reconciler.manifests.loader import YamlProblem, load_document
from tests.conftest import PROJECT_ROOT
from tests.support.repo import PARTNER, line_of

PARSERS = ["libyaml", "ruamel"]


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with each YAML parser; they must behave the same."""
    monkeypatch.setattr(loader, "_DEFAULT_PARSER", request.param)
    return str(request.param)


def test_libyaml_is_the_fast_path_here() -> None:
    assert loader.HAVE_LIBYAML, "PyYAML without libyaml: validation would run at pure-Python speed"


def test_lines_point_at_keys_and_items(parser: str) -> None:
    document = load_document(PARTNER.encode())
    assert document.line_of(("spec", "webhooks", 0, "url")) == line_of(PARTNER, "url:")
    assert document.line_of(("spec", "scopes", 2)) == line_of(PARTNER, "payment:status:update")
    assert document.line_of(("spec", "residency")) == line_of(PARTNER, "residency:")
    # a path that does not exist falls back to its nearest existing ancestor
    assert document.line_of(("spec", "residency", "zone")) == line_of(PARTNER, "residency:")


def test_yaml_1_2_core_schema_types(parser: str) -> None:
    text = "a: yes\nb: 010\nc: 2026-10-01\nd: ~\ne: true\nf: 1.5\ng: '7'\nh: 0x1F\ni: on\nj: .inf\n"
    data = load_document(text.encode()).data
    assert data == {
        "a": "yes",
        "b": 10,
        "c": "2026-10-01",
        "d": None,
        "e": True,
        "f": 1.5,
        "g": "7",
        "h": 31,
        "i": "on",
        "j": float("inf"),
    }


def test_byte_order_mark_is_accepted(parser: str) -> None:
    assert load_document(b"\xef\xbb\xbfa: 1\n").data == {"a": 1}


def test_anchors_within_limits_are_expanded(parser: str) -> None:
    data = load_document(b"base: &b [x, y]\ncopy: *b\n").data
    assert data == {"base": ["x", "y"], "copy": ["x", "y"]}


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"a: 1\nb: [1, 2\nc: 3\n", 3, "malformed YAML"),
        (b"a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first on line 1)"),
        (b"[1, 2]\n", 1, "not a mapping"),
        (b"a: 1\nb: \xc3\x28\n", 2, "not valid UTF-8"),
        (b"a: 1\n---\nb: 2\n", 3, "more than one YAML document"),
        (b"# only a comment\n", 1, "empty"),
        (b"a: !!python/object:os.system x\n", 1, "unsupported YAML tag"),
        (b'a: 1\nb: !!python/name:os.system "x"\n', 2, "unsupported YAML tag"),
        (b"base: &b {x: 1}\nderived:\n  <<: *b\n", 3, "merge keys"),
        (b"a: 1\nb: \x00\n", 2, "NUL"),
    ],
)
def test_bad_input_is_a_problem_with_a_line(parser: str, content: bytes, line: int, words: str) -> None:
    with pytest.raises(YamlProblem) as caught:
        load_document(content)
    assert caught.value.line == line
    assert words in caught.value.message


def test_billion_laughs_is_refused_without_expanding(parser: str) -> None:
    rows = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    with pytest.raises(YamlProblem, match="expands to more than"):
        load_document("\n".join(rows).encode())


def test_deep_nesting_is_refused(parser: str) -> None:
    with pytest.raises(YamlProblem, match="nest"):
        load_document(b"a: " + b"[" * 200 + b"]" * 200)


def test_oversized_file_is_refused_before_parsing() -> None:
    with pytest.raises(YamlProblem, match="larger than"):
        load_document(b"a: " + b"x" * (loader.MAX_FILE_BYTES + 1))


@pytest.mark.parametrize("path", sorted(PROJECT_ROOT.glob("p*/**/*.yaml")), ids=lambda p: p.name)
def test_both_parsers_give_identical_data_and_lines(path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = path.read_bytes()  # type: ignore[attr-defined]
    results = []
    for name in PARSERS:
        monkeypatch.setattr(loader, "_DEFAULT_PARSER", name)
        document = load_document(raw)
        results.append((document.data, document.lines))
    assert results[0] == results[1]

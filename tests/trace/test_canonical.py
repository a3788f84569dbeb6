"""Canonical JSON is byte for byte Python's
`json.dumps(v, sort_keys=True, separators=(",", ":"))`, on both paths into
the core: Python objects and JSON text."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import cra
import pytest
from conftest import reference_canonical
from cra._core import canonical_json_text
from cra.errors import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SPECIAL_CHARS = (
    [chr(c) for c in range(0x20)]
    + ['"', "\\", "/", "\x7f", "\x80", "\u00e9", "\u2028", "\u2029", "\ufeff", "\uffff"]
    + ["\U0001f600", "\U00010000", "\U0010ffff", "\ud800", "\udbff", "\udc00", "\udfff"]
)
TEXT = st.text(st.characters() | st.sampled_from(SPECIAL_CHARS), max_size=24)

BOUNDARY_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    0.2 + 0.1,
    2.0,
    100.0,
    123.456,
    1e16,
    1e16 - 2,
    9999999999999998.0,
    1e15,
    1.2345678901234567e16,
    1e17,
    1e-4,
    1e-5,
    0.00012345,
    0.000012345,
    1e-7,
    1e22,
    1e23,
    1e300,
    -1e-300,
    5e-324,
    2.2250738585072014e-308,
    2.225073858507201e-308,
    1.7976931348623157e308,
]
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(BOUNDARY_FLOATS)
INTS = (
    st.integers()
    | st.integers(-(2**200), 2**200)
    | st.sampled_from(
        [0, -1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**64 + 1, -(2**64)]
    )
)
SCALARS = st.none() | st.booleans() | INTS | FLOATS | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(TEXT, inner, max_size=6)
    ),
    max_leaves=30,
)

PROPERTY = settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(JSON_VALUES)
def test_objects_and_text_match_json_dumps(value: Any) -> None:
    assert cra.canonical_json(value) == reference_canonical(value)
    text = json.dumps(value)
    assert canonical_json_text(text) == reference_canonical(json.loads(text))


@settings(max_examples=500, deadline=None, database=None)
@given(JSON_VALUES.filter(lambda v: "\\ud" not in json.dumps(v)))
def test_text_with_raw_utf8_and_whitespace(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    assert canonical_json_text(text) == reference_canonical(json.loads(text))


@pytest.mark.parametrize(
    "value, want",
    [
        (1e-7, "1e-07"),
        (1e16, "1e+16"),
        (2.0, "2.0"),
        (-0.0, "-0.0"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (2**70, "1180591620717411303424"),
        ({"b": 1, "a": [True, None]}, '{"a":[true,null],"b":1}'),
        ("caf\u00e9 \U0001f600", '"caf\\u00e9 \\ud83d\\ude00"'),
    ],
)
def test_known_forms(value: Any, want: str) -> None:
    assert cra.canonical_json(value) == want == reference_canonical(value)


def test_lone_surrogates_match_json_dumps() -> None:
    value = {"\udc00k": ["\ud800", "x\udfffy", "\ud83d", "\ud83d\ude00"], "\ue000": 1}
    assert cra.canonical_json(value) == reference_canonical(value)
    text = json.dumps(value)
    assert canonical_json_text(text) == reference_canonical(json.loads(text))


@settings(max_examples=2_000, deadline=None, database=None)
@given(st.lists(st.tuples(TEXT, st.booleans(), INTS), max_size=8))
def test_keys_escaped_or_raw_sort_and_dedupe_alike(members: list[tuple[str, bool, int]]) -> None:
    # One object whose keys are written partly as escapes and partly as raw
    # UTF-8 (a key with a lone surrogate can only be escaped): the reader
    # keeps them in two forms and must order and de-duplicate them as one.
    parts = []
    for key, raw, n in members:
        raw = raw and not any(0xD800 <= ord(c) < 0xE000 for c in key)
        parts.append(f"{json.dumps(key, ensure_ascii=not raw)}:{n}")
    text = "{" + ",".join(parts) + "}"
    assert canonical_json_text(text) == reference_canonical(json.loads(text))


def test_duplicate_key_in_two_spellings_keeps_the_last() -> None:
    text = r'{"\u00e9":1,"' + "\u00e9" + r'":2,"\ud83d\ude00":3,"' + "\U0001f600" + '":4}'
    assert canonical_json_text(text) == r'{"\u00e9":2,"\ud83d\ude00":4}'


def test_fault_path_names_an_escaped_key() -> None:
    with pytest.raises(cra.CraError) as e:
        canonical_json_text(r'{"a\u00e9/b":[1,{"\ud800":nul}]}')
    assert e.value.path == "/a\u00e9~1b/1/\ufffd"


def test_keys_sort_by_code_point() -> None:
    value = {"\U0001f600": 1, "\uffff": 2, "\ud800": 3, "z": 4, "Z": 5, "\u00e9": 6, "": 7}
    assert cra.canonical_json(value) == reference_canonical(value)


def test_subclasses_of_json_types() -> None:
    class MyInt(int):
        def __repr__(self) -> str:
            return "nope"

    class MyFloat(float):
        def __repr__(self) -> str:
            return "nope"

    value = OrderedDict([("b", MyInt(3)), ("a", (MyFloat(0.5), MyInt(2**80)))])
    assert cra.canonical_json(value) == reference_canonical(value)


@pytest.mark.parametrize(
    "value, path",
    [
        (math.nan, ""),
        ({"a": [math.inf]}, "/a/0"),
        ({"a": [1, {"b": -math.inf}]}, "/a/1/b"),
        ([0, [0, 0, math.nan]], "/1/2"),
        ({"a/b": {"c~d": math.nan}}, "/a~1b/c~0d"),
    ],
)
def test_non_finite_refused_with_path(value: Any, path: str) -> None:
    with pytest.raises(ValidationError) as exc:
        cra.canonical_json(value)
    assert exc.value.code == "INVALID_PAYLOAD"
    assert exc.value.path == path


@pytest.mark.parametrize("text", ["NaN", '{"a":[Infinity]}', "[-Infinity]", "1e400"])
def test_non_finite_text_refused(text: str) -> None:
    with pytest.raises(ValidationError) as exc:
        canonical_json_text(text)
    assert exc.value.code == "INVALID_PAYLOAD"


@pytest.mark.parametrize(
    "value, path",
    [({1: "x"}, ""), ({"a": {None: 1}}, "/a"), ([{(1, 2): 0}], "/0"), ({"a": [{b"k": 1}]}, "/a/0")],
)
def test_non_str_keys_refused(value: Any, path: str) -> None:
    with pytest.raises(ValidationError) as exc:
        cra.canonical_json(value)
    assert exc.value.code == "INVALID_PAYLOAD"
    assert exc.value.path == path


@pytest.mark.parametrize(
    "value, path",
    [
        ({"a": [1, {"b": object()}]}, "/a/1/b"),
        ({"s": {1, 2}}, "/s"),
        ([b"bytes"], "/0"),
        ({"d": Decimal("1.5")}, "/d"),
        ({"c": 1j}, "/c"),
    ],
)
def test_unsupported_types_refused_with_path(value: Any, path: str) -> None:
    with pytest.raises(ValidationError) as exc:
        cra.canonical_json(value)
    assert exc.value.code == "INVALID_PAYLOAD"
    assert exc.value.path == path


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", '"\x01"', "01", "1 2", "tru"])
def test_text_that_is_not_json_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        canonical_json_text(text)


def test_duplicate_keys_in_text_keep_the_last() -> None:
    text = '{"a": 1, "b": 2, "a": 3}'
    assert canonical_json_text(text) == reference_canonical(json.loads(text)) == '{"a":3,"b":2}'


def nested(depth: int) -> Any:
    value: Any = 0
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def nested_text(depth: int) -> str:
    """The canonical text of `nested(depth)`, built without recursion."""
    opens = ["[" if i % 2 else '{"k":' for i in reversed(range(depth))]
    closes = ["]" if i % 2 else "}" for i in range(depth)]
    return "".join(opens) + "0" + "".join(closes)


def test_nesting_helpers_agree_with_json_dumps() -> None:
    assert reference_canonical(nested(200)) == nested_text(200)


@pytest.mark.parametrize("depth", [200, 1000])
def test_deep_but_allowed_nesting(depth: int) -> None:
    want = nested_text(depth)
    assert cra.canonical_json(nested(depth)) == want
    assert canonical_json_text(want) == want


@pytest.mark.parametrize("depth", [1001, 100_000])
def test_too_deep_is_a_typed_error(depth: int) -> None:
    with pytest.raises(ValidationError) as exc:
        cra.canonical_json(nested(depth))
    assert exc.value.code == "INVALID_PAYLOAD"
    assert exc.value.path is not None
    with pytest.raises(ValidationError) as exc:
        canonical_json_text(nested_text(depth))
    assert exc.value.code == "INVALID_PAYLOAD"

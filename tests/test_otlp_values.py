"""Attribute values become the strings the Collector's pcommon.Value.AsString() writes."""

from __future__ import annotations

import pytest

from correlator.otlp.values import as_string, format_double
from tests.factories import any_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0.1, "0.1", id="short"),
        pytest.param(123.0, "123", id="integral"),
        pytest.param(1e21, "1e+21", id="exponent-from-1e21"),
        pytest.param(1.5e21, "1.5e+21", id="exponent-mantissa"),
        pytest.param(1e20, "100000000000000000000", id="plain-below-1e21"),
        pytest.param(1e-7, "1e-7", id="small-exponent-without-zero-padding"),
        pytest.param(1e-6, "0.000001", id="plain-from-1e-6"),
        pytest.param(-2.5e-300, "-2.5e-300", id="three-digit-exponent"),
        pytest.param(-0.0, "-0", id="negative-zero"),
        pytest.param(123456789012345678.0, "123456789012345680", id="shortest-digits-then-zeros"),
        pytest.param(float("nan"), "json: unsupported value: NaN", id="nan"),
        pytest.param(float("-inf"), "json: unsupported value: -Inf", id="negative-infinity"),
    ],
)
def test_doubles_format_like_go_json(value: float, expected: str) -> None:
    assert format_double(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("plain", "plain", id="string"),
        pytest.param(True, "true", id="bool"),
        pytest.param(-42, "-42", id="int"),
        pytest.param(b"\x00\x01\xfe", "AAH+", id="bytes-base64"),
        pytest.param(["a", 1, 2.0, True, b"\x01"], '["a",1,2,true,"AQ=="]', id="array"),
        pytest.param({"b": 1, "a": [{"y": None, "x": "q"}]}, '{"a":[{"x":"q","y":null}],"b":1}', id="sorted-map"),
        pytest.param({"html": "<&>", "ctl": "\n\t\x01", "uni": "é\u2028"},
                     '{"ctl":"\\n\\t\\u0001","html":"\\u003c\\u0026\\u003e","uni":"é\\u2028"}', id="go-escapes"),
        pytest.param([float("nan")], "", id="nan-in-array-fails-like-go"),
    ],
)  # fmt: skip
def test_any_values_as_string(value: object, expected: str) -> None:
    assert as_string(any_value(value)) == expected

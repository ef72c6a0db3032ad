"""Saved JSON columns are decoded as ``json.loads`` decodes them (`columns.decode` calls the
decoder's scanner directly, and hands anything it does not take whole to the full decoder)."""

from __future__ import annotations

import json
import math

import pytest

from ferroflow import exceptions
from ferroflow.persistence import columns, saved

TEXTS = [
    '{"factory":{"name":"m.f","args":[10],"kwargs":{}}}',
    "5",
    '"text"',
    "[1, 2.5, null, true]",
    ' {"a": 1}',
    '{"a": 1}\n',
    "\t[]\t",
    '{"\\u00e9t\\u00e9": "\\ud83d\\ude00"}',
]
BROKEN = ["", "1 2", '{"a": 1}x', "[1,2", '{"a" 1}', "nul", " ", '"unterminated']


@pytest.mark.parametrize("text", TEXTS)
def test_what_json_reads_is_read_alike(text: str) -> None:
    assert columns.decode(text) == json.loads(text)


@pytest.mark.parametrize("text", BROKEN)
def test_what_json_refuses_is_refused_with_its_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        columns.decode(text)
    assert (got.value.msg, got.value.pos) == (expected.value.msg, expected.value.pos)


def test_constants_and_deep_nesting_behave_as_json_loads() -> None:
    assert math.isnan(columns.decode("NaN")) and columns.decode("-Infinity") == -math.inf
    with pytest.raises(RecursionError):
        columns.decode("[" * 100_000 + "]" * 100_000)
    # A damaged column names its row and field.
    with pytest.raises(exceptions.StorageFailure, match="'meta' field is not valid JSON"):
        saved.decode_meta('{"a": 1} trailing', "flow detail 'x'")

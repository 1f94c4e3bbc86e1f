"""The shared reader of sandbox containers' JSON-lines stdout."""

from __future__ import annotations

import pytest

from sandbox.client.framing import read_json_lines


def test_records_in_order_blank_lines_skipped_marker_noted() -> None:
    lines = read_json_lines(b'{"a": 1}\n\n  \n{"a": 2}\n{"done": true, "results": 2}\n')
    assert lines.records == [{"a": 1}, {"a": 2}]
    assert lines.done


def test_no_marker_and_a_false_marker_are_not_done() -> None:
    lines = read_json_lines(b'{"a": 1}\n{"done": false}\n')
    assert lines.records == [{"a": 1}, {"done": False}]
    assert not lines.done
    assert read_json_lines(b"").records == []


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b'{"a": 1}\n{"a": \n', r"unparsable line b'\{\"a\": '"),
        (b"[1, 2]\n", "not an object"),
        (b"null\n", "not an object"),
    ],
)
def test_a_line_that_is_not_an_object_is_named(stdout: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_json_lines(stdout)

"""CodeT test samples rewritten as CodeRM-style test completions (pure, no I/O).

A CodeT test sample continues a prompt ending in ``assert ``. To run the public
CodeGen-16B samples through the unittest path, each sample becomes the text a CodeRM
test model would have answered: one fenced python block holding ``import unittest`` and
one ``unittest.TestCase`` class with a ``test_<i>`` method per assert (the sample's
first asserts, exactly as :func:`~shared.core.extraction.extract_completion_asserts`
splits them). That text is then an ordinary chat test completion: the extractor's
:func:`~shared.core.extraction.extract_chat_unittest` wraps it as CodeRM wraps
tests, and equal classes of a problem dedupe by content hash like any other test.
"""

from __future__ import annotations

import io
import tokenize

from shared.core.extraction import (
    DEFAULT_TEST_CASE_LIMIT,
    extract_completion_asserts,
)
from shared.enums import ExtractionStatus

_FENCE = "```"
_METHOD_INDENT = " " * 8


def unittest_class_name(entry_point: str) -> str:
    """``Test`` + the entry point in CamelCase (``has_close_elements`` -> ``TestHasCloseElements``).

    Never equal to the entry point it is made from, so it cannot shadow the function
    under test.
    """
    words = [word for word in entry_point.strip().split("_") if word]
    return "Test" + "".join(word[:1].upper() + word[1:] for word in words)


def _string_continuation_lines(code: str) -> set[int]:
    """1-based numbers of lines that continue a string literal started on an earlier line.

    Indenting such a line would change the string's value, so it is left as it is.
    """
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            (start, _), (end, _) = token.start, token.end
            if end > start:
                inside.update(range(start + 1, end + 1))
    except (tokenize.TokenError, SyntaxError):
        return set()
    return inside


def _method_body(case: str) -> str:
    """``case`` indented as a method body, string literals left unchanged."""
    keep = _string_continuation_lines(case)
    return "\n".join(
        line if number in keep or not line.strip() else _METHOD_INDENT + line
        for number, line in enumerate(case.split("\n"), start=1)
    )


def codet_sample_to_unittest(
    sample: str, entry_point: str, limit: int = DEFAULT_TEST_CASE_LIMIT
) -> str | None:
    """A CodeRM-style test completion made from one CodeT test sample, or None.

    The sample's asserts are the first ``limit`` that CodeT's splitting keeps
    (:func:`~shared.core.extraction.extract_completion_asserts`); each becomes one
    method ``test_<i>`` (1-based, in order) of one class :func:`unittest_class_name`, whose
    lines are indented to the method body except lines that continue a multi-line
    string literal. Asserts holding a code fence (they would end the block early) are
    left out. The result is a fenced python block with ``import unittest`` and the
    class. None if the sample yields no assert.
    """
    extracted = extract_completion_asserts(sample, entry_point, limit)
    if extracted.status is not ExtractionStatus.OK:
        return None
    cases = [case for case in extracted.code if _FENCE not in case]
    if not cases:
        return None
    methods = "\n\n".join(
        f"    def test_{i}(self):\n{_method_body(case)}" for i, case in enumerate(cases, start=1)
    )
    class_line = f"class {unittest_class_name(entry_point)}(unittest.TestCase):"
    return f"```python\nimport unittest\n\n\n{class_line}\n{methods}\n```"

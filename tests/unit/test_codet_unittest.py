"""Tests of shared/core/codet_unittest.py (CodeT samples as CodeRM-style tests)."""

from __future__ import annotations

import gzip
import json
import unittest
from typing import Any

import pytest

from services.cli.importers import CompletionRecord, as_unittest_tests
from shared.core.codet_unittest import codet_sample_to_unittest, unittest_class_name
from shared.core.extraction import content_hash, extract_chat_unittest, pair_code
from shared.enums import ExtractionStatus
from shared.settings import reference_data_dir

DATA = reference_data_dir()

SAMPLE = (
    "add(1, 2) == 3\n"
    "assert add(0, 0) == 0, 'zero'\n"
    "assert other(1) == 1\n"
    "assert add(-1,\n"
    "           1) == 0\n\n"
    "print(add(1, 1))\n"
)

COMPLETION = (
    "```python\n"
    "import unittest\n\n\n"
    "class TestAdd(unittest.TestCase):\n"
    "    def test_1(self):\n"
    "        assert add(1, 2) == 3\n\n"
    "    def test_2(self):\n"
    "        assert add(0, 0) == 0, 'zero'\n\n"
    "    def test_3(self):\n"
    "        assert add(-1,\n"
    "                   1) == 0\n"
    "```"
)

WRAPPED = (
    "import unittest\n\n"
    "class TestAdd(unittest.TestCase):\n"
    "    def test_1(self):\n"
    "        assert add(1, 2) == 3\n\n"
    "    def test_2(self):\n"
    "        assert add(0, 0) == 0, 'zero'\n\n"
    "    def test_3(self):\n"
    "        assert add(-1,\n"
    "                   1) == 0\n\n"
    "import io\nimport unittest\n\n"
    "suite = unittest.TestLoader().loadTestsFromTestCase(TestAdd)\n"
    "runner = unittest.TextTestRunner(stream=io.StringIO(), verbosity=2)\n"
    "result = runner.run(suite)\n"
)


def wrapped(completion: str | None) -> str:
    assert completion is not None
    extracted = extract_chat_unittest(completion)
    assert extracted.status is ExtractionStatus.OK, extracted.detail
    return extracted.code[0]


def run_pair(solution: str, test: str) -> unittest.TestResult:
    namespace: dict[str, Any] = {}
    exec(pair_code(solution, test), namespace)
    result = namespace["result"]
    assert isinstance(result, unittest.TestResult)
    return result


def test_sample_becomes_one_class_a_method_per_assert() -> None:
    assert codet_sample_to_unittest(SAMPLE, "add") == COMPLETION


def test_extraction_wraps_it_as_coderm_wraps_tests() -> None:
    assert wrapped(codet_sample_to_unittest(SAMPLE, "add")) == WRAPPED


@pytest.mark.parametrize(
    ("solution", "passes"),
    [
        pytest.param("def add(a, b):\n    return a + b", True, id="right"),
        pytest.param("def add(a, b):\n    return a - b", False, id="wrong"),
        pytest.param("def add(a, b):\n    raise ValueError", False, id="error"),
    ],
)
def test_wrapped_class_runs_every_assert(solution: str, passes: bool) -> None:
    result = run_pair(solution, wrapped(codet_sample_to_unittest(SAMPLE, "add")))
    assert result.testsRun == 3
    assert result.wasSuccessful() is passes


def test_first_five_asserts_only() -> None:
    sample = "".join(f"f({i}) == {i}\nassert " for i in range(8))
    test = wrapped(codet_sample_to_unittest(sample, "f"))
    assert [f"def test_{i}(self):" in test for i in range(1, 7)] == [True] * 5 + [False]
    assert "assert f(4) == 4" in test
    assert "f(5)" not in test
    assert run_pair("def f(x):\n    return x if x < 5 else -1", test).wasSuccessful()


def test_limit_is_a_parameter() -> None:
    sample = "".join(f"f({i}) == {i}\nassert " for i in range(8))
    test = wrapped(codet_sample_to_unittest(sample, "f", limit=7))
    assert "def test_7(self):" in test
    assert "def test_8(self):" not in test


@pytest.mark.parametrize(
    "sample",
    [
        pytest.param("\n", id="blank"),
        pytest.param("other(1) == 2\nassert other(2) == 3", id="no-entry-point"),
        pytest.param("\n    add(1) == 2\nassert ", id="does-not-compile"),
        pytest.param("____ == ____, 'test failed'\n", id="placeholder"),
    ],
)
def test_no_assert_gives_none(sample: str) -> None:
    assert codet_sample_to_unittest(sample, "add") is None


def test_multiline_string_keeps_its_value() -> None:
    sample = 'f("""a\nb""") == "a\\nb"\n'
    test = wrapped(codet_sample_to_unittest(sample, "f"))
    assert '        assert f("""a\nb""") == "a\\nb"' in test
    assert run_pair("def f(s):\n    return s", test).wasSuccessful()


def test_assert_holding_a_fence_is_left_out() -> None:
    sample = 'f("```\\n```") == 1\nassert f("x") == 1'
    assert codet_sample_to_unittest(sample, "f") is not None
    test = wrapped(codet_sample_to_unittest(sample, "f"))
    assert 'def test_1(self):\n        assert f("x") == 1' in test
    assert "def test_2" not in test


def test_multi_statement_case_stays_in_its_method() -> None:
    sample = "f(1) == 1\nx = f(2)\nassert f(3) == 3"
    test = wrapped(codet_sample_to_unittest(sample, "f"))
    assert "    def test_1(self):\n        assert f(1) == 1\n        x = f(2)\n" in test
    assert run_pair("def f(x):\n    return x", test).testsRun == 2


@pytest.mark.parametrize(
    ("entry_point", "name"),
    [
        ("has_close_elements", "TestHasCloseElements"),
        ("add", "TestAdd"),
        ("_private__name_", "TestPrivateName"),
        ("camelCase", "TestCamelCase"),
    ],
)
def test_unittest_class_name_is_camel_case(entry_point: str, name: str) -> None:
    assert unittest_class_name(entry_point) == name


def _load(name: str) -> list[dict[str, Any]]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"reference data not present: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_codegen16b_figures() -> None:
    """The pair counts of the reference measurement and of the issue's full run.

    12,290 = first 10 solutions x the first 10 test samples that yield a class, of each
    problem (the reference executor's measurement); 208,000 = 100 solutions x every
    distinct wrapped class (2,080 over the 155 problems with any assert).
    """
    entry_points = {
        r["prompt"]: r["entry_point"]
        for r in _load("humaneval/HumanEval_for_test_case_generation.jsonl.gz")
    }
    prefix = "codet-codegen16b/HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_"
    reference_pairs = 0
    distinct = 0
    for record in _load(prefix + "test_case.jsonl.gz"):
        entry_point = entry_points[record["prompt"]]
        tests = [
            wrapped(completion)
            for completion in (codet_sample_to_unittest(s, entry_point) for s in record["samples"])
            if completion is not None
        ]
        reference_pairs += 10 * min(10, len(tests))
        distinct += len({content_hash(test) for test in tests})
    assert reference_pairs == 12_290
    assert distinct == 2_080


def test_import_keeps_positions_and_marks_samples_without_asserts() -> None:
    records = [CompletionRecord("HumanEval/0", (SAMPLE, "\n", "other(1) == 1", "```x```"))]
    (converted,) = as_unittest_tests(records, {"HumanEval/0": "add"})
    assert converted.task_id == "HumanEval/0"
    assert converted.samples == (COMPLETION, "\n", "other(1) == 1", "")
    statuses = [extract_chat_unittest(text).status for text in converted.samples]
    assert statuses == [
        ExtractionStatus.OK,
        ExtractionStatus.EMPTY,
        ExtractionStatus.NO_CODE_BLOCK,
        ExtractionStatus.EMPTY,
    ]

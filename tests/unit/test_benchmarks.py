"""Benchmark importers (evalplus, LiveCodeBench, CodeRM prompts) on real file slices."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from services.cli.benchmarks import (
    load_benchmark,
    mbpp_inputs,
    read_coderm_prompts,
    read_evalplus,
    read_livecodebench,
    with_prompts,
)
from services.cli.importers import ImportFormatError
from shared.core.oracle import GroundTruthKind, Oracle
from shared.core.pyliteral import decode

DATA = Path(__file__).resolve().parents[1] / "data"
EVALPLUS = DATA / "evalplus"
PROMPTS = DATA / "coderm-prompts"


def _records(path: Path) -> dict[str, dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return {str(r["task_id"]): r for r in rows}


def origin_literal(test_code: str, name: str) -> Any:
    """The literal assigned to ``name`` in an ``-OriginFmt`` test (inputs or results)."""
    for node in ast.walk(ast.parse(test_code)):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return decode(ast.unparse(node.value))
    raise AssertionError(f"no {name} in the test")


def test_humaneval_plus_problems_keep_inputs_atol_and_canonical_solution() -> None:
    problems = read_evalplus(EVALPLUS / "HumanEvalPlus.jsonl.gz", "humaneval")
    raw = _records(EVALPLUS / "HumanEvalPlus.jsonl.gz")
    assert [p.task_id for p in problems] == [
        "HumanEval/0",
        "HumanEval/1",
        "HumanEval/2",
        "HumanEval/32",
    ]
    for problem in problems:
        record = raw[problem.task_id]
        oracle = Oracle.model_validate(problem.oracle)
        assert problem.ground_truth == GroundTruthKind.OUTPUTS.value
        assert (problem.prompt, problem.canonical_solution) == (
            record["prompt"],
            record["canonical_solution"],
        )
        assert problem.test_code == record["test"]
        assert decode(oracle.base_input) == record["base_input"]
        assert decode(oracle.plus_input) == record["plus_input"]
        assert (oracle.base_count, oracle.plus_count) == (
            len(record["base_input"]),
            len(record["plus_input"]),
        )
        assert oracle.atol == record["atol"]
        assert oracle.dataset == "humaneval" and oracle.expected is None
    assert Oracle.model_validate(problems[2].oracle).atol == 1e-6


def test_humaneval_plus_mini_reads_the_same_way() -> None:
    problems = read_evalplus(EVALPLUS / "HumanEvalPlus-Mini.jsonl.gz", "humaneval")
    assert [p.task_id for p in problems] == ["HumanEval/0", "HumanEval/1"]
    assert all(Oracle.model_validate(p.oracle).plus_count > 0 for p in problems)


def test_mbpp_plus_inputs_equal_the_origin_format_literals() -> None:
    """Our deserialised MBPP+ inputs (tuples where evalplus makes them) are exactly the
    inputs evalplus wrote into the self-contained -OriginFmt tests."""
    problems = {p.task_id: p for p in read_evalplus(EVALPLUS / "MbppPlus.jsonl.gz", "mbpp")}
    origin = _records(EVALPLUS / "MbppPlus-OriginFmt.jsonl.gz")
    assert set(problems) == {"Mbpp/2", "Mbpp/3", "Mbpp/82", "Mbpp/581", "Mbpp/793"}
    for number, record in origin.items():
        oracle = Oracle.model_validate(problems[f"Mbpp/{number}"].oracle)
        inputs = decode(oracle.base_input) + decode(oracle.plus_input)
        assert inputs == origin_literal(record["test"], "inputs")
    similar = Oracle.model_validate(problems["Mbpp/2"].oracle)
    assert decode(similar.base_input)[0] == [(3, 4, 5, 6), (5, 7, 4, 10)]
    assert Oracle.model_validate(problems["Mbpp/82"].oracle).atol == 0.0001
    assert Oracle.model_validate(problems["Mbpp/793"].oracle).plus_count == 0  # written as {}


@pytest.mark.parametrize(
    ("task_id", "raw", "expected"),
    [
        ("Mbpp/2", [[1, 2], [3]], [(1, 2), (3,)]),
        ("Mbpp/63", [[[1, 2], [3, 4]]], [[(1, 2), (3, 4)]]),
        ("Mbpp/75", [[[1, 2]], 3], [[(1, 2)], 3]),
        ("Mbpp/106", [[1], [2, 3]], [[1], (2, 3)]),
        ("Mbpp/115", [[[1, 2], [], 5]], [[{1, 2}, {}, {}]]),
        ("Mbpp/124", [1, "1+2j"], [1.0, 1 + 2j]),
        ("Mbpp/259", [[[1, 2]], [[3]]], [((1, 2),), ((3,),)]),
        ("Mbpp/278", [[1, [2, 3], 4]], [(1, (2, 3), 4)]),
        ("Mbpp/722", [{"a": [1, 2]}, 5], [{"a": (1, 2)}, 5]),
        ("Mbpp/252", ["1+1j"], [1 + 1j]),
        ("Mbpp/580", [[1, [2, [3]]]], [(1, (2, (3,)))]),
        ("Mbpp/3", [[1, 2]], [[1, 2]]),
    ],
)
def test_mbpp_input_rules_by_hand(task_id: str, raw: list[Any], expected: list[Any]) -> None:
    assert mbpp_inputs(task_id, [raw]) == [expected]


def test_mbpp_115_keeps_evalplus_quirk_of_an_empty_dict() -> None:
    [[items]] = mbpp_inputs("Mbpp/115", [[[[]]]])
    assert items == [{}] and type(items[0]) is dict


def test_coderm_prompts_join_by_task_id() -> None:
    prompts = read_coderm_prompts(PROMPTS, "humaneval+")
    problems = read_evalplus(EVALPLUS / "HumanEvalPlus.jsonl.gz", "humaneval")
    joined, matched = with_prompts(problems, prompts)
    assert matched == 4
    first = joined[0]
    assert first.solution_messages is not None and first.test_messages is not None
    assert first.solution_messages[0]["role"] == "user"
    assert "has_close_elements" in first.solution_messages[0]["content"]
    assert "unittest" in first.test_messages[0]["content"]
    _, none = with_prompts(problems, read_coderm_prompts(PROMPTS, "mbpp+"))
    assert none == 0


def test_livecodebench_problems_have_entry_points_and_no_ground_truth() -> None:
    problems = read_livecodebench(PROMPTS)
    assert [p.task_id for p in problems] == ["3228", "3233", "3236"]
    first = problems[0]
    assert first.entry_point == "maximumSetSize"
    assert first.ground_truth == GroundTruthKind.NONE.value
    assert first.oracle is None and first.test_code == ""
    assert first.prompt.startswith("You are given two 0-indexed integer arrays")
    assert "class Solution:" in first.prompt
    assert all(p.solution_messages and p.test_messages for p in problems)


def test_load_benchmark_dispatches_and_explains_missing_inputs() -> None:
    loaded = load_benchmark("mbpp+", EVALPLUS / "MbppPlus.jsonl.gz", None, PROMPTS)
    assert loaded.prompts_matched == 5 and len(loaded.problems) == 5
    assert load_benchmark("livecodebench", None, None, PROMPTS).prompts_matched == 3
    with pytest.raises(ImportFormatError, match="--coderm-prompts"):
        load_benchmark("livecodebench", None, None, None)
    with pytest.raises(ImportFormatError, match="needs --file"):
        load_benchmark("humaneval+", None, None, None)
    with pytest.raises(ImportFormatError, match="unknown benchmark format"):
        load_benchmark("apps", None, None, None)
    with pytest.raises(ImportFormatError, match="missing"):
        load_benchmark("humaneval", EVALPLUS / "HumanEvalPlus-Mini.jsonl.gz", None, None)

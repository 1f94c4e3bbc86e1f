"""Readers of CodeRM's own files (services/cli/importers.py), on files written as CodeRM
writes them: one ``json.dumps(obj, ensure_ascii=False)`` per line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from services.cli.importers import (
    CODERM_FORMATS,
    CompletionRecord,
    ImportFormatError,
    coderm_prompt_index,
    known_records,
    read_coderm_inference,
    read_coderm_solutions,
    read_coderm_unit_tests,
)
from shared.enums import CompletionFormat, Role

F = "`" * 3


def write(path: Path, records: list[Any], raw: str = "") -> Path:
    """``records`` as CodeRM writes JSON Lines (plus ``raw`` text appended), gzipped if
    the name ends in ``.gz``."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + raw
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


SOLUTIONS = ["def f(x):\n    return 'é' * x", "def f(x):\n    return '中文'"]


@pytest.mark.parametrize("name", ["sol_m_200.jsonl", "sol_m_100_func.jsonl.gz"])
def test_solutions_strings(tmp_path: Path, name: str) -> None:
    path = write(
        tmp_path / name,
        [
            {"task_id": "HumanEval/0", "solutions": SOLUTIONS},
            {"task_id": "HumanEval/1", "solutions": []},
        ],
    )
    raw = path.read_bytes()
    assert "中文".encode() in (gzip.decompress(raw) if name.endswith(".gz") else raw)
    assert read_coderm_solutions(path) == [
        CompletionRecord("HumanEval/0", tuple(SOLUTIONS)),
        CompletionRecord("HumanEval/1", ()),
    ]


def test_solutions_annotated(tmp_path: Path) -> None:
    anno = [
        {"solution": s, "base_status": "pass", "plus_status": status, "base_fail_tests": []}
        for s, status in zip(SOLUTIONS, ("pass", "fail"), strict=True)
    ]
    path = write(tmp_path / "sol_m_200_anno.jsonl", [{"task_id": "Mbpp/2", "solutions": anno}])
    assert read_coderm_solutions(path) == [CompletionRecord("Mbpp/2", tuple(SOLUTIONS))]


TEST = (
    "import unittest\n\nclass TestF(unittest.TestCase):\n    def test_ü(self):\n"
    "        self.assertEqual(f('ß'), 1)\n\nsuite = unittest.TestLoader()"
    ".loadTestsFromTestCase(TestF)\nrunner = unittest.TextTestRunner(stream=output, "
    "verbosity=2)\nresult = runner.run(suite)\nlocals_dict['result'] = result\n"
)


def test_unit_tests(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ut_m_100.jsonl.gz",
        [{"task_id": "HumanEval/0", "unit_tests": [TEST, TEST.replace("ß", "ss")]}],
    )
    assert read_coderm_unit_tests(path) == [
        CompletionRecord("HumanEval/0", (TEST, TEST.replace("ß", "ss")))
    ]


PROMPT_0 = "Write a function that doubles x — «doppelt».\n```python\ndef f(x):\n```"
PROMPT_1 = "写一个函数"
INDEX = coderm_prompt_index(
    {
        "HumanEval/0": [{"role": "user", "content": PROMPT_0}],
        "HumanEval/1": [{"role": "user", "content": PROMPT_1}],
        "HumanEval/2": None,
    }
)


def test_prompt_index() -> None:
    assert INDEX == {PROMPT_0: "HumanEval/0", PROMPT_1: "HumanEval/1"}


def test_inference(tmp_path: Path) -> None:
    responses = [f"Sure:\n{F}python\ndef f(x):\n    return 2 * x\n{F}", "无法回答"]
    path = write(
        tmp_path / "inference.jsonl",
        [
            {"messages": [{"role": "user", "content": PROMPT_1}], "responses": ["x"]},
            {"messages": [{"role": "user", "content": PROMPT_0}], "responses": responses},
        ],
    )
    assert read_coderm_inference(path, INDEX) == [
        CompletionRecord("HumanEval/1", ("x",)),
        CompletionRecord("HumanEval/0", tuple(responses)),
    ]


def test_inference_unmatched_prompt_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "inference.jsonl",
        [
            {"messages": [{"role": "user", "content": PROMPT_0}], "responses": []},
            {"messages": [{"role": "user", "content": "another prompt"}], "responses": []},
        ],
    )
    with pytest.raises(ImportFormatError, match=r"inference\.jsonl:2: .*'another prompt'"):
        read_coderm_inference(path, INDEX)


def test_inference_needs_prompts(tmp_path: Path) -> None:
    path = write(tmp_path / "inference.jsonl", [])
    with pytest.raises(ImportFormatError, match="--coderm-prompts"):
        read_coderm_inference(path, {})


READERS: dict[str, Any] = {
    "sol": read_coderm_solutions,
    "ut": read_coderm_unit_tests,
    "inference": lambda path: read_coderm_inference(path, INDEX),
}
GOOD_LINES: dict[str, Any] = {
    "sol": {"task_id": "A", "solutions": []},
    "ut": {"task_id": "A", "unit_tests": []},
    "inference": {"messages": [{"role": "user", "content": PROMPT_1}], "responses": []},
}


@pytest.mark.parametrize(
    ("kind", "line", "message"),
    [
        ("sol", {"task_id": "T", "solutions": "code"}, "solutions"),
        ("sol", {"task_id": "T", "solutions": [1]}, "solution"),
        ("sol", {"task_id": "T", "solutions": [{"code": "x"}]}, "solution"),
        ("sol", {"solutions": []}, "task_id"),
        ("sol", {"task_id": None, "solutions": []}, "task_id"),
        ("ut", {"task_id": "T", "unit_tests": [None]}, "unit_tests"),
        ("ut", {"task_id": "T", "solutions": []}, "unit_tests"),
        ("ut", ["T", []], "JSON object"),
        ("inference", {"messages": [], "responses": []}, "messages"),
        ("inference", {"messages": [{"role": "user"}], "responses": []}, "messages"),
        ("inference", {"messages": [{"content": PROMPT_0}], "responses": "x"}, "responses"),
        ("inference", {"messages": [{"content": PROMPT_0}], "responses": [None]}, "responses"),
    ],
)
def test_malformed_line_names_file_and_line(
    tmp_path: Path, kind: str, line: Any, message: str
) -> None:
    """A blank line 2 is skipped; the malformed line 3 is named."""
    path = write(tmp_path / "file.jsonl", [GOOD_LINES[kind]], raw="\n" + json.dumps(line) + "\n")
    with pytest.raises(ImportFormatError, match=rf"file\.jsonl:3: .*{message}"):
        READERS[kind](path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [("{not json\n", "not JSON"), ('{"task_id": "T", "solutions": []\n', "not JSON")],
)
def test_broken_json(tmp_path: Path, raw: str, message: str) -> None:
    path = write(tmp_path / "sol.jsonl", [{"task_id": "A", "solutions": []}], raw=raw)
    with pytest.raises(ImportFormatError, match=rf"sol\.jsonl:2: {message}"):
        read_coderm_solutions(path)


def test_not_gzip_and_not_utf8(tmp_path: Path) -> None:
    fake = tmp_path / "sol.jsonl.gz"
    fake.write_text('{"task_id": "A", "solutions": []}\n')
    with pytest.raises(ImportFormatError, match=r"sol\.jsonl\.gz:1: unreadable"):
        read_coderm_solutions(fake)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"task_id": "A", "solutions": []}\n{"task_id": "\xe9"}\n')
    with pytest.raises(ImportFormatError, match=r"latin\.jsonl:\d+: unreadable"):
        read_coderm_solutions(latin)


def test_duplicate_task_is_refused(tmp_path: Path) -> None:
    line = {"task_id": "A", "unit_tests": []}
    path = write(tmp_path / "ut.jsonl", [line, {"task_id": "B", "unit_tests": []}, line])
    with pytest.raises(ImportFormatError, match=r"ut\.jsonl:3: task 'A' again \(first on line 1\)"):
        read_coderm_unit_tests(path)


def test_integer_task_ids_are_text(tmp_path: Path) -> None:
    path = write(tmp_path / "sol.jsonl", [{"task_id": 7, "solutions": ["x = 1"]}])
    assert read_coderm_solutions(path) == [CompletionRecord("7", ("x = 1",))]


def test_known_records() -> None:
    records = [CompletionRecord("A", ("a",)), CompletionRecord("Z", ()), CompletionRecord("B", ())]
    assert known_records(records, {"A", "B"}) == ([records[0], records[2]], ["Z"])


def test_formats() -> None:
    assert CODERM_FORMATS == {
        "coderm-sol": (Role.SOLUTION, CompletionFormat.CODE),
        "coderm-ut": (Role.TEST, CompletionFormat.CODE),
        "coderm-inference": (None, CompletionFormat.CHAT_REF),
    }

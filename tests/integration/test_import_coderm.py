"""``coderm import-completions`` on CodeRM's own files, through the real CLI and PostgreSQL.

The files are built here exactly as CodeRM's scripts write them (one
``json.dumps(obj, ensure_ascii=False)`` per line): the merged inference output
``{messages, responses}``, ``sol_<model>_200.jsonl`` (plain and evalplus-annotated) and
``ut_<model>_100.jsonl``. The stored completions must be the files' texts, and the
extractor's ``extract()`` on them must give CodeRM's own text, written out by hand.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from services.extractor.handlers import extract
from shared.db.models import Completion, Problem
from shared.enums import ExtractionStatus
from tests.stack import Stack, cli, query

pytestmark = pytest.mark.integration

BENCHMARK = "coderm-import-test"
F = "`" * 3

PROBLEMS = [
    {
        "task_id": "HumanEval/0",
        "prompt": 'def double(s):\n    """Return s twice: «é» -> «éé»."""\n',
        "entry_point": "double",
        "canonical_solution": "    return s * 2\n",
        "test": "def check(candidate):\n    assert candidate('é') == 'éé'\n",
    },
    {
        "task_id": "HumanEval/1",
        "prompt": 'def half(x):\n    """中文: x / 2."""\n',
        "entry_point": "half",
        "canonical_solution": "    return x / 2\n",
        "test": "def check(candidate):\n    assert candidate(4) == 2\n",
    },
]
SOL_PROMPTS = {
    "HumanEval/0": "Write `double` — doubling «é»:\n```python\ndef double(s):\n```",
    "HumanEval/1": "写一个函数 half。",
}
UT_PROMPTS = {
    "HumanEval/0": "Write unit tests for `double` («é»).",
    "HumanEval/1": "为 half 写单元测试。",
}

DRIVER = (
    "\n\nsuite = unittest.TestLoader().loadTestsFromTestCase({name})\n"
    "runner = unittest.TextTestRunner(stream=output, verbosity=2)\n"
    "result = runner.run(suite)\n"
    "locals_dict['result'] = result\n"
)

SOL_0 = ["def double(s):\n    return s * 2", "def double(s):\n    return s + 'é'"]
SOL_1 = ["def half(x):\n    return x // 2"]
UT_0 = [
    "import unittest\n\nclass TestDouble(unittest.TestCase):\n    def test_é(self):\n"
    "        self.assertEqual(double('é'), 'éé')" + DRIVER.format(name="TestDouble"),
    "\n)" + DRIVER.format(name="TestDouble"),
]

CHAT_SOL_0 = [
    f"Sure — here:\n{F}python\ndef double(s):\n    return s * 2\n{F}",
    f"{F}python\ndef double(s):\n    return s\n{F}\nor\n{F}python\ndef double(s):\n    pass\n{F}",
    "I can't.",
]
CHAT_UT_0 = [
    f"Tests:\n{F}python\nimport unittest\nfrom your_module import double\n\n"
    "class TestDouble(unittest.TestCase):\n    def test_é(self):\n"
    "        self.assertEqual(double('é'), 'éé')\n\n# the function\n"
    f"def double(s):\n    return s * 2\n\nif __name__ == '__main__':\n    unittest.main()\n{F}",
    f"{F}python\nclass TestDouble(unittest.TestCase):\n    def test_a(self):\n"
    f"        self.assertEqual(double('a'), 'aa')\n{F}",
    "无",
]
#: CodeRM's text for each chat answer above (None: CodeRM drops the response).
CHAT_SOL_0_REF = ["def double(s):\n    return s * 2", None, None]
CHAT_UT_0_REF: list[str | None] = [UT_0[0], UT_0[1], None]


def write(path: Path, records: list[Any]) -> Path:
    """JSON Lines as CodeRM writes them (gzipped if the name ends in ``.gz``)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def chat(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def run_cli(stack: Stack, *args: str) -> str:
    result = cli(stack, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def import_completions(stack: Stack, file: Path, model: str, role: str, fmt: str) -> str:
    return run_cli(
        stack,
        *("import-completions", str(file), "--benchmark", BENCHMARK, "--model", model),
        *("--role", role, "--format", fmt),
    )


def stored(stack: Stack, model: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """``(task id, role) -> [(format, text), ...]`` of a model's completions, by sample index."""
    rows = query(
        stack,
        """SELECT p.task_id, c.role, c.sample_index, c.format, c.text FROM completions c
           JOIN models m ON m.id = c.model_id JOIN problems p ON p.id = c.problem_id
           JOIN benchmarks b ON b.id = p.benchmark_id
           WHERE m.name = $1 AND b.name = $2 ORDER BY 1, 2, 3""",
        model,
        BENCHMARK,
    )
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for row in rows:
        samples = out.setdefault((row["task_id"], row["role"]), [])
        assert row["sample_index"] == len(samples)
        samples.append((row["format"], row["text"]))
    return out


def extracted(task_id: str, role: str, fmt: str, text: str) -> str | None:
    """What the extractor's ``extract()`` makes of one stored completion (None: nothing)."""
    spec = next(p for p in PROBLEMS if p["task_id"] == task_id)
    problem = Problem(prompt=spec["prompt"], entry_point=spec["entry_point"])
    result, _ = extract(Completion(role=role, format=fmt, text=text), problem)
    if result.status is not ExtractionStatus.OK:
        return None
    (code,) = result.code
    return code


@pytest.fixture(scope="module")
def benchmark(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-problem HumanEval-format benchmark with CodeRM's prompts attached."""
    directory = tmp_path_factory.mktemp("coderm-files")
    prompts = directory / "prompts"
    prompts.mkdir()
    for role, texts in (("sol", SOL_PROMPTS), ("ut", UT_PROMPTS)):
        write(
            prompts / f"input_humaneval+_{role}.jsonl.gz",
            [{"task_id": t, "messages": chat(c)} for t, c in texts.items()],
        )
    file = write(directory / "problems.jsonl", PROBLEMS)
    out = run_cli(
        stack,
        *("import-benchmark", BENCHMARK, "--format", "humaneval", "--file", str(file)),
        *("--coderm-prompts", str(prompts)),
    )
    assert "CodeRM prompts: 2 of 2 matched" in out
    return directory


@pytest.mark.parametrize("anno", [False, True], ids=["plain", "annotated"])
def test_coderm_sol(stack: Stack, benchmark: Path, anno: bool) -> None:
    def shape(solutions: list[str]) -> list[Any]:
        if not anno:
            return list(solutions)
        return [{"solution": s, "base_status": "pass", "plus_status": "fail"} for s in solutions]

    name = "sol_m_200_anno.jsonl.gz" if anno else "sol_m_200.jsonl"
    file = write(
        benchmark / name,
        [
            {"task_id": "HumanEval/0", "solutions": shape(SOL_0)},
            {"task_id": "HumanEval/77", "solutions": shape(["x = 1"])},
            {"task_id": "HumanEval/1", "solutions": shape(SOL_1)},
        ],
    )
    model = f"ref-sol-{'anno' if anno else 'plain'}"
    out = import_completions(stack, file, model, "solution", "coderm-sol")
    assert "2 problems, 3 samples in file, 3 new" in out
    assert "stored as code completions" in out
    assert "1 lines skipped, task id in no problem of coderm-import-test: HumanEval/77" in out
    got = stored(stack, model)
    assert got == {
        ("HumanEval/0", "solution"): [("code", s) for s in SOL_0],
        ("HumanEval/1", "solution"): [("code", s) for s in SOL_1],
    }
    for (task_id, role), samples in got.items():
        assert [extracted(task_id, role, f, t) for f, t in samples] == [t for _, t in samples]
    again = import_completions(stack, file, model, "solution", "coderm-sol")
    assert "3 samples in file, 0 new" in again


def test_coderm_ut(stack: Stack, benchmark: Path) -> None:
    file = write(benchmark / "ut_m_100.jsonl", [{"task_id": "HumanEval/0", "unit_tests": UT_0}])
    out = import_completions(stack, file, "ref-ut", "test", "coderm-ut")
    assert "1 problems, 2 samples in file, 2 new" in out
    assert "stored as code completions" in out
    assert "0 lines skipped" in out
    got = stored(stack, "ref-ut")
    assert got == {("HumanEval/0", "test"): [("code", t) for t in UT_0]}
    assert [extracted("HumanEval/0", "test", f, t) for f, t in got["HumanEval/0", "test"]] == UT_0


def test_coderm_inference(stack: Stack, benchmark: Path) -> None:
    for role, prompts, responses in (
        ("solution", SOL_PROMPTS, CHAT_SOL_0),
        ("test", UT_PROMPTS, CHAT_UT_0),
    ):
        file = write(
            benchmark / f"inference_{role}.jsonl",
            [
                {"messages": chat(prompts["HumanEval/1"]), "responses": []},
                {"messages": chat(prompts["HumanEval/0"]), "responses": responses},
            ],
        )
        out = import_completions(stack, file, "ref-chat", role, "coderm-inference")
        assert "2 problems, 3 samples in file, 3 new" in out
        assert "stored as chat-ref completions" in out
    got = stored(stack, "ref-chat")
    assert got == {
        ("HumanEval/0", "solution"): [("chat-ref", t) for t in CHAT_SOL_0],
        ("HumanEval/0", "test"): [("chat-ref", t) for t in CHAT_UT_0],
    }
    for role, expected in (("solution", CHAT_SOL_0_REF), ("test", CHAT_UT_0_REF)):
        samples = got["HumanEval/0", role]
        assert [extracted("HumanEval/0", role, f, t) for f, t in samples] == expected


@pytest.mark.parametrize(
    ("fmt", "role", "lines", "message"),
    [
        (
            "coderm-inference",
            "solution",
            [
                {"messages": chat(SOL_PROMPTS["HumanEval/0"]), "responses": ["a"]},
                {"messages": chat("a prompt of another benchmark"), "responses": ["b"]},
            ],
            "bad.jsonl:2: the first message matches no problem's CodeRM prompt",
        ),
        (
            "coderm-inference",
            "test",  # the solution prompts do not match the test prompts
            [{"messages": chat(SOL_PROMPTS["HumanEval/0"]), "responses": ["a"]}],
            "bad.jsonl:1: the first message matches no problem's CodeRM prompt",
        ),
        (
            "coderm-sol",
            "solution",
            [{"task_id": "HumanEval/0", "solutions": ["a"]}, {"task_id": "HumanEval/1"}],
            "bad.jsonl:2: expected {task_id, solutions[]}",
        ),
        (
            "coderm-ut",
            "test",
            [
                {"task_id": "HumanEval/0", "unit_tests": ["t"]},
                {"task_id": "HumanEval/1", "unit_tests": [3]},
            ],
            "bad.jsonl:2: expected {task_id, unit_tests[]} of strings",
        ),
        (
            "coderm-ut",
            "test",
            [{"task_id": "HumanEval/77", "unit_tests": ["t"]}],
            "task ids not in coderm-import-test: ['HumanEval/77']",
        ),
        ("coderm-ut", "solution", [], "--format coderm-ut does not take --role solution"),
    ],
)
def test_errors_import_nothing(
    stack: Stack, benchmark: Path, fmt: str, role: str, lines: list[Any], message: str
) -> None:
    file = write(benchmark / "bad.jsonl", lines)
    result = cli(
        stack,
        *("import-completions", str(file), "--benchmark", BENCHMARK, "--model", "ref-bad"),
        *("--role", role, "--format", fmt),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stdout.split())
    assert stored(stack, "ref-bad") == {}

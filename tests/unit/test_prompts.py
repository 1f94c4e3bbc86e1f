"""Prompts (shared/core/prompts.py) against CodeRM's and CodeT's published prompts."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.core.extraction import CODET_STOP_STRINGS
from shared.core.prompts import (
    ChatMessage,
    ProblemText,
    Prompt,
    build_prompt,
    codet_test_prompt,
    messages_from_json,
    question,
    reference_solution,
    solution_messages,
    unit_test_messages,
)
from shared.enums import CompletionFormat, Role
from shared.settings import reference_data_dir

DATA = reference_data_dir()
UT_PARTS = re.compile(r"### question\n(.*)\n\n### code solution\n(.*)\n\nPlease add", re.S)


def _records(path: Path) -> dict[str, dict[str, Any]]:
    with gzip.open(path, "rt") as handle:
        return {str(r["task_id"]): r for r in map(json.loads, handle)}


def _content(record: dict[str, Any]) -> str:
    messages = record["messages"]
    assert len(messages) == 1 and messages[0]["role"] == "user"
    return str(messages[0]["content"])


@pytest.mark.parametrize(
    ("benchmark", "evalplus"), [("humaneval+", "HumanEvalPlus"), ("mbpp+", "MbppPlus")]
)
def test_solution_template_rebuilds_coderm_prompts_exactly(benchmark: str, evalplus: str) -> None:
    """Every CodeRM solution prompt of HumanEval+ and MBPP+ equals our template applied
    to the evalplus problem's prompt."""
    problems = _records(DATA / "evalplus" / f"{evalplus}.jsonl.gz")
    published = _records(DATA / "coderm-prompts" / f"input_{benchmark}_sol.jsonl.gz")
    assert len(published) == len(problems)
    for task_id, record in published.items():
        (message,) = solution_messages(problems[task_id]["prompt"])
        assert message == ChatMessage("user", _content(record)), task_id


@pytest.mark.parametrize("benchmark", ["humaneval+", "mbpp+", "livecodebench"])
def test_unit_test_template_rebuilds_coderm_prompts_exactly(benchmark: str) -> None:
    """Every CodeRM unit-test prompt equals our template applied to its own question
    and reference solution."""
    published = _records(DATA / "coderm-prompts" / f"input_{benchmark}_ut.jsonl.gz")
    for task_id, record in published.items():
        content = _content(record)
        found = UT_PARTS.search(content)
        assert found is not None, task_id
        (message,) = unit_test_messages(*found.groups())
        assert message.content == content, task_id


def test_question_of_mbpp_prompts_is_coderms() -> None:
    """MBPP+: CodeRM's question is the prompt's docstring (all but 5 of 378, where CodeRM
    edited the text)."""
    problems = _records(DATA / "evalplus" / "MbppPlus.jsonl.gz")
    published = _records(DATA / "coderm-prompts" / "input_mbpp+_ut.jsonl.gz")
    same = 0
    for task_id, record in published.items():
        found = UT_PARTS.search(_content(record))
        assert found is not None
        p = problems[task_id]
        same += question(p["prompt"], p["entry_point"]) == found.group(1)
    assert same == 373


def test_question_of_humaneval_prompt_names_the_function() -> None:
    prompt = 'def add(a, b):\n    """ Add two numbers.\n    >>> add(1, 2)\n    3\n    """\n'
    assert (
        question(prompt, "add")
        == "Write a function named `add`. Add two numbers.\n>>> add(1, 2)\n3"
    )


@pytest.mark.parametrize(
    ("prompt", "canonical", "expected"),
    [
        pytest.param(
            'def f(x):\n    """Double."""\n',
            "    return 2 * x\n",
            'def f(x):\n    """Double."""\n    return 2 * x',
            id="humaneval-body",
        ),
        pytest.param(
            '"""\nDouble x.\n"""\n',
            "\ndef f(x):\n  return 2 * x\n",
            "def f(x):\n  return 2 * x",
            id="mbpp-whole-function",
        ),
        pytest.param("def f(x):\n", "    return (", "def f(x):\n    return (", id="unparsable"),
    ],
)
def test_reference_solution(prompt: str, canonical: str, expected: str) -> None:
    assert reference_solution(prompt, canonical, "f") == expected


def test_codet_test_prompt_rebuilds_humaneval_test_prompts_exactly() -> None:
    """CodeT's test-generation prompts are the HumanEval prompt, ``pass``, a comment and
    ``assert ``; ours are the same text for all 164 problems."""
    problems = _records(DATA / "humaneval" / "HumanEval_for_code_generation.jsonl.gz")
    published = _records(DATA / "humaneval" / "HumanEval_for_test_case_generation.jsonl.gz")
    for task_id, record in published.items():
        p = problems[task_id]
        assert codet_test_prompt(p["prompt"], p["entry_point"]) == record["prompt"], task_id


def test_codet_test_prompt_for_a_module_docstring_adds_no_pass() -> None:
    prompt = '"""\nWrite a function f.\n"""\n'
    assert codet_test_prompt(prompt, "f") == prompt + "\n# check the correctness of f\nassert "


PROBLEM = ProblemText(
    task_id="T/1",
    prompt='def f(x):\n    """Double x."""\n',
    entry_point="f",
    canonical_solution="    return 2 * x\n",
)
STORED = ProblemText(
    task_id="T/1",
    prompt=PROBLEM.prompt,
    entry_point="f",
    test_prompt="stored test prompt\nassert ",
    solution_messages=(ChatMessage("user", "stored solution prompt"),),
    test_messages=(ChatMessage("system", "s"), ChatMessage("user", "stored test prompt")),
)


@pytest.mark.parametrize(
    ("problem", "role", "fmt", "expected"),
    [
        pytest.param(
            PROBLEM,
            Role.SOLUTION,
            CompletionFormat.COMPLETION,
            Prompt(CompletionFormat.COMPLETION, text=PROBLEM.prompt, stop=CODET_STOP_STRINGS),
            id="codet-solution",
        ),
        pytest.param(
            PROBLEM,
            Role.TEST,
            CompletionFormat.COMPLETION,
            Prompt(
                CompletionFormat.COMPLETION,
                text=PROBLEM.prompt + "    pass\n\n# check the correctness of f\nassert ",
            ),
            id="codet-test-built",
        ),
        pytest.param(
            STORED,
            Role.TEST,
            CompletionFormat.COMPLETION,
            Prompt(CompletionFormat.COMPLETION, text="stored test prompt\nassert "),
            id="codet-test-stored",
        ),
        pytest.param(
            PROBLEM,
            Role.SOLUTION,
            CompletionFormat.CHAT,
            Prompt(CompletionFormat.CHAT, messages=solution_messages(PROBLEM.prompt)),
            id="coderm-solution-built",
        ),
        pytest.param(
            STORED,
            Role.SOLUTION,
            CompletionFormat.CHAT,
            Prompt(CompletionFormat.CHAT, messages=STORED.solution_messages),
            id="coderm-solution-stored",
        ),
        pytest.param(
            PROBLEM,
            Role.TEST,
            CompletionFormat.CHAT,
            Prompt(
                CompletionFormat.CHAT,
                messages=unit_test_messages(
                    "Write a function named `f`. Double x.",
                    'def f(x):\n    """Double x."""\n    return 2 * x',
                ),
            ),
            id="coderm-test-built-from-canonical",
        ),
        pytest.param(
            STORED,
            Role.TEST,
            CompletionFormat.CHAT,
            Prompt(CompletionFormat.CHAT, messages=STORED.test_messages),
            id="coderm-test-stored",
        ),
    ],
)
def test_build_prompt(
    problem: ProblemText, role: Role, fmt: CompletionFormat, expected: Prompt
) -> None:
    assert build_prompt(problem, role, fmt) == expected


def test_digest_tells_prompts_apart() -> None:
    base = build_prompt(PROBLEM, Role.SOLUTION, CompletionFormat.COMPLETION)
    digests = {
        base.digest(),
        Prompt(base.format, text=base.text).digest(),
        Prompt(base.format, text=base.text + " ", stop=base.stop).digest(),
        build_prompt(PROBLEM, Role.SOLUTION, CompletionFormat.CHAT).digest(),
    }
    assert len(digests) == 4
    assert (
        base.digest() == build_prompt(PROBLEM, Role.SOLUTION, CompletionFormat.COMPLETION).digest()
    )


def test_messages_from_json() -> None:
    raw = [{"role": "user", "content": "hi"}]
    assert messages_from_json(raw) == (ChatMessage("user", "hi"),)
    assert messages_from_json(None) == ()

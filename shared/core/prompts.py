"""Prompts for a problem and role: CodeRM's chat prompts and CodeT's completion prompts.

Chat (CodeRM): a problem imported with CodeRM's prompt set carries its exact messages
(``solution_messages``, ``test_messages``); any other problem gets them built from the
same templates. The solution template wraps the problem's prompt in a python block;
the unit-test template gives the unit-test model a *question* and a *reference
solution*. Rebuilding CodeRM's HumanEval+ and MBPP+ solution prompts, and all three
sets' unit-test prompts from their question and solution, reproduces the published
text exactly (tests/unit/test_prompts.py checks this on the real files).

Completion (CodeT): a solution continues the problem's prompt (stopped at CodeT's stop
strings, which the extractor would cut at anyway); tests continue the prompt closed
with ``pass`` and ``# check the correctness of <entry point>`` followed by ``assert ``.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.core.extraction import CODET_STOP_STRINGS
from shared.enums import CompletionFormat, Role


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn."""

    role: str
    content: str


SOLUTION_TEMPLATE = (
    "Please provide a self-contained Python script that solves the following problem "
    "in a markdown code block:\n```python\n{prompt}\n```\n"
)
UNIT_TEST_TEMPLATE = (
    "Below is a question and it's corresponding code answer. Please write test cases to "
    "check the correctness of the code answer. You need to use the unittest library in "
    "Python and create a test class for testing.\n\n"
    "### question\n{question}\n\n"
    "### code solution\n{solution}\n\n"
    "Please add detailed comments to the test cases you write. You do not need to test "
    "the function's ability to throw exceptions.\n"
)
TEST_PROMPT_TAIL = "\n# check the correctness of {entry_point}\nassert "


@dataclass(frozen=True)
class ProblemText:
    """What a prompt is made of (a problem row, without the database)."""

    task_id: str
    prompt: str
    entry_point: str
    test_prompt: str | None = None
    canonical_solution: str = ""
    solution_messages: tuple[ChatMessage, ...] = ()
    test_messages: tuple[ChatMessage, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """A ready prompt: chat messages or raw text, with the stop strings it needs."""

    format: CompletionFormat
    messages: tuple[ChatMessage, ...] = ()
    text: str = ""
    stop: tuple[str, ...] = ()

    def digest(self) -> str:
        """A hex sha256 of everything that shapes the samples."""
        payload = {
            "format": self.format.value,
            "messages": [[m.role, m.content] for m in self.messages],
            "text": self.text,
            "stop": list(self.stop),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def messages_from_json(raw: Iterable[Mapping[str, object]] | None) -> tuple[ChatMessage, ...]:
    """Chat messages from their stored JSON form (``[{role, content}]``)."""
    return tuple(ChatMessage(str(m["role"]), str(m["content"])) for m in raw or ())


def solution_messages(prompt: str) -> tuple[ChatMessage, ...]:
    """CodeRM's chat prompt asking for a solution to ``prompt``."""
    return (ChatMessage("user", SOLUTION_TEMPLATE.format(prompt=prompt)),)


def unit_test_messages(question: str, solution: str) -> tuple[ChatMessage, ...]:
    """CodeRM's chat prompt asking for a unittest class, given a reference solution."""
    return (ChatMessage("user", UNIT_TEST_TEMPLATE.format(question=question, solution=solution)),)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def question(prompt: str, entry_point: str) -> str:
    """The *question* of a unit-test prompt, as CodeRM words it.

    HumanEval style (a function signature with a docstring): "Write a function named
    `f`. " and the docstring. MBPP style (a module docstring): that docstring. Anything
    else: the prompt itself.
    """
    tree = _parse(prompt)
    if tree is None:
        return prompt.strip()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            doc = ast.get_docstring(node)
            if doc:
                return f"Write a function named `{entry_point}`. {doc}"
    return ast.get_docstring(tree) or prompt.strip()


def reference_solution(prompt: str, canonical_solution: str, entry_point: str) -> str:
    """The benchmark's own solution as a whole program: the canonical solution if it
    defines the entry point itself (MBPP), else the prompt it continues (HumanEval)."""
    tree = _parse(canonical_solution)
    defines = tree is not None and any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name == entry_point
        for node in tree.body
    )
    program = canonical_solution if defines else prompt + canonical_solution
    return program.strip("\n")


def codet_test_prompt(prompt: str, entry_point: str) -> str:
    """CodeT's test-generation prompt: the problem closed with ``pass`` (when that makes
    it valid code) and an ``assert `` to continue."""
    closed = prompt + "    pass\n"
    body = closed if _parse(closed) is not None else prompt
    return body + TEST_PROMPT_TAIL.format(entry_point=entry_point)


def build_prompt(problem: ProblemText, role: Role, fmt: CompletionFormat) -> Prompt:
    """The prompt of ``problem`` for sampling ``role`` completions in format ``fmt``."""
    if fmt is CompletionFormat.COMPLETION:
        if role is Role.SOLUTION:
            return Prompt(fmt, text=problem.prompt, stop=CODET_STOP_STRINGS)
        text = problem.test_prompt or codet_test_prompt(problem.prompt, problem.entry_point)
        return Prompt(fmt, text=text)
    if role is Role.SOLUTION:
        return Prompt(fmt, messages=problem.solution_messages or solution_messages(problem.prompt))
    if problem.test_messages:
        return Prompt(fmt, messages=problem.test_messages)
    reference = reference_solution(problem.prompt, problem.canonical_solution, problem.entry_point)
    return Prompt(
        fmt, messages=unit_test_messages(question(problem.prompt, problem.entry_point), reference)
    )

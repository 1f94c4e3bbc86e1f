"""Pure readers of benchmark and completion files (gzipped or plain JSON Lines)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.core.codet_unittest import codet_sample_to_unittest
from shared.enums import CompletionFormat, Role


class ImportFormatError(ValueError):
    """A file does not have the fields its format needs."""


@dataclass(frozen=True)
class ProblemRecord:
    """One benchmark problem as imported.

    ``ground_truth`` is how its solutions are labelled (``shared.core.oracle.GroundTruthKind``),
    ``oracle`` the evalplus inputs (``shared.core.oracle.Oracle`` as JSON) for ``outputs``;
    ``solution_messages`` / ``test_messages`` CodeRM's chat prompts, when imported.
    """

    task_id: str
    position: int
    prompt: str
    entry_point: str
    canonical_solution: str
    test_code: str
    test_prompt: str | None
    ground_truth: str = "tests"
    oracle: dict[str, Any] | None = None
    solution_messages: list[dict[str, Any]] | None = None
    test_messages: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class CompletionRecord:
    """One problem's samples, keyed by ``task_id`` once joined."""

    task_id: str
    samples: tuple[str, ...]


def read_jsonl_numbered(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for the JSON objects of a ``.jsonl`` or ``.jsonl.gz``
    file (blank lines skipped), with the file and line number in every error."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ImportFormatError(f"{path}:{number}: not JSON: {error}") from error
                if not isinstance(record, dict):
                    raise ImportFormatError(f"{path}:{number}: expected a JSON object")
                yield number, record
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ImportFormatError(f"{path}:{number + 1}: unreadable: {error}") from error


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a ``.jsonl`` or ``.jsonl.gz`` file, with line numbers in errors."""
    for _, record in read_jsonl_numbered(path):
        yield record


def _require(record: Mapping[str, Any], fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if not isinstance(record.get(f), str)]
    if missing:
        raise ImportFormatError(f"{where}: missing or non-string fields {missing}")


def read_humaneval(path: Path, test_prompts: Path | None = None) -> list[ProblemRecord]:
    """HumanEval-format problems (``task_id, prompt, entry_point, canonical_solution, test``),
    optionally joined by ``task_id`` with the test-generation prompts of the same problems."""
    extra: dict[str, str] = {}
    if test_prompts is not None:
        for record in read_jsonl(test_prompts):
            _require(record, ("task_id", "prompt"), str(test_prompts))
            extra[record["task_id"]] = record["prompt"]
    problems = []
    for position, record in enumerate(read_jsonl(path)):
        _require(record, ("task_id", "prompt", "entry_point", "test"), f"{path} record {position}")
        problems.append(
            ProblemRecord(
                task_id=record["task_id"],
                position=position,
                prompt=record["prompt"],
                entry_point=record["entry_point"],
                canonical_solution=str(record.get("canonical_solution", "")),
                test_code=record["test"],
                test_prompt=extra.get(record["task_id"]),
            )
        )
    return problems


def read_codet_samples(path: Path, task_by_prompt: Mapping[str, str]) -> list[CompletionRecord]:
    """CodeT-format generations ``{prompt, samples[]}``, joined to task ids by exact prompt."""
    out = []
    for number, record in enumerate(read_jsonl(path), start=1):
        prompt, samples = record.get("prompt"), record.get("samples")
        if not isinstance(prompt, str) or not isinstance(samples, list):
            raise ImportFormatError(f"{path}:{number}: expected {{prompt, samples[]}}")
        task_id = task_by_prompt.get(prompt)
        if task_id is None:
            raise ImportFormatError(f"{path}:{number}: prompt matches no problem of the benchmark")
        out.append(CompletionRecord(task_id, tuple(str(s) for s in samples)))
    return out


def read_task_completions(path: Path) -> list[CompletionRecord]:
    """Plain generations ``{task_id, completions[]}`` (strings, or objects with ``text``)."""
    out = []
    for number, record in enumerate(read_jsonl(path), start=1):
        task_id, completions = record.get("task_id"), record.get("completions")
        if not isinstance(task_id, str) or not isinstance(completions, list):
            raise ImportFormatError(f"{path}:{number}: expected {{task_id, completions[]}}")
        texts = [c["text"] if isinstance(c, dict) else c for c in completions]
        if not all(isinstance(t, str) for t in texts):
            raise ImportFormatError(f"{path}:{number}: completions must be strings")
        out.append(CompletionRecord(task_id, tuple(texts)))
    return out


def as_unittest_tests(
    records: Sequence[CompletionRecord], entry_points: Mapping[str, str]
) -> list[CompletionRecord]:
    """CodeT test samples rewritten as CodeRM-style chat test completions.

    Each sample that yields an assert becomes one fenced ``unittest`` class
    (:func:`~shared.core.codet_unittest.codet_sample_to_unittest`); one that
    yields none is kept as it is, so the chat extraction records it as giving no code
    block (a sample holding a code fence is kept as empty text, for the same reason).
    Sample positions are unchanged. ``entry_points`` maps task id -> entry point.
    """
    out = []
    for record in records:
        entry_point = entry_points[record.task_id]
        samples = []
        for sample in record.samples:
            converted = codet_sample_to_unittest(sample, entry_point)
            if converted is None:
                converted = "" if "```" in sample else sample
            samples.append(converted)
        out.append(CompletionRecord(record.task_id, tuple(samples)))
    return out


# ------------------------------------------------------------------ CodeRM's own files

#: ``coderm import-completions --format`` values for CodeRM's files: the role their
#: completions have and the completion format they are stored with.
CODERM_FORMATS: dict[str, tuple[Role | None, CompletionFormat]] = {
    "coderm-sol": (Role.SOLUTION, CompletionFormat.CODE),
    "coderm-ut": (Role.TEST, CompletionFormat.CODE),
    "coderm-inference": (None, CompletionFormat.CHAT_REF),
}


def _task_id(record: Mapping[str, Any], where: str) -> str:
    """A record's ``task_id`` as text (CodeRM writes strings; integers are accepted)."""
    task_id = record.get("task_id")
    if isinstance(task_id, bool) or not isinstance(task_id, str | int):
        raise ImportFormatError(f"{where}: missing or invalid task_id")
    return str(task_id)


def _one_line_per_task(records: Sequence[tuple[int, CompletionRecord]], path: Path) -> None:
    """Refuse a file that has two lines for one task (their samples would collide)."""
    first: dict[str, int] = {}
    for number, record in records:
        if record.task_id in first:
            raise ImportFormatError(
                f"{path}:{number}: task {record.task_id!r} again (first on line "
                f"{first[record.task_id]})"
            )
        first[record.task_id] = number


def read_coderm_solutions(path: Path) -> list[CompletionRecord]:
    """CodeRM's extracted solutions, ``{task_id, solutions[]}`` per line.

    Both shapes its scripts write: ``sol_<model>_200.jsonl`` / ``..._100_func.jsonl``
    (``solutions`` are code strings) and the evalplus-annotated ``..._anno.jsonl``
    (objects with a ``solution`` string, plus status fields, which are not imported).
    A sample's position is its CodeRM ``sol_id``.
    """
    numbered = []
    for number, record in read_jsonl_numbered(path):
        where = f"{path}:{number}"
        task_id, solutions = _task_id(record, where), record.get("solutions")
        if not isinstance(solutions, list):
            raise ImportFormatError(f"{where}: expected {{task_id, solutions[]}}")
        codes = [s.get("solution") if isinstance(s, dict) else s for s in solutions]
        if not all(isinstance(c, str) for c in codes):
            raise ImportFormatError(
                f"{where}: solutions must be strings or objects with a 'solution' string"
            )
        numbered.append((number, CompletionRecord(task_id, tuple(str(c) for c in codes))))
    _one_line_per_task(numbered, path)
    return [record for _, record in numbered]


def read_coderm_unit_tests(path: Path) -> list[CompletionRecord]:
    """CodeRM's extracted unit tests (``ut_<model>_100.jsonl``), ``{task_id, unit_tests[]}``
    per line: already wrapped, deduplicated tests. A sample's position is its ``ut_id``."""
    numbered = []
    for number, record in read_jsonl_numbered(path):
        where = f"{path}:{number}"
        task_id, tests = _task_id(record, where), record.get("unit_tests")
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise ImportFormatError(f"{where}: expected {{task_id, unit_tests[]}} of strings")
        numbered.append((number, CompletionRecord(task_id, tuple(tests))))
    _one_line_per_task(numbered, path)
    return [record for _, record in numbered]


def coderm_prompt_index(messages_by_task: Mapping[str, Sequence[Any] | None]) -> dict[str, str]:
    """``first message's content -> task id`` over the problems that have CodeRM messages
    (CodeRM joins its inference output to its prompt file by exactly this text)."""
    index: dict[str, str] = {}
    for task_id, messages in messages_by_task.items():
        if not messages or not isinstance(messages[0], Mapping):
            continue
        content = messages[0].get("content")
        if isinstance(content, str):
            index.setdefault(content, task_id)
    return index


def read_coderm_inference(path: Path, task_by_content: Mapping[str, str]) -> list[CompletionRecord]:
    """CodeRM's merged inference output, ``{messages[], responses[]}`` per line.

    Each line is joined to a problem by its first message's ``content``, which must
    equal the first message of that problem's stored CodeRM prompt (``task_by_content``,
    see :func:`coderm_prompt_index`); a line that matches none is an error. The samples
    are the raw responses, in order.
    """
    if not task_by_content:
        raise ImportFormatError(
            "no problem of the benchmark has CodeRM prompts for this role "
            "(import the benchmark with --coderm-prompts DIR)"
        )
    numbered = []
    for number, record in read_jsonl_numbered(path):
        where = f"{path}:{number}"
        messages, responses = record.get("messages"), record.get("responses")
        if (
            not isinstance(messages, list)
            or not messages
            or not isinstance(messages[0], dict)
            or not isinstance(messages[0].get("content"), str)
            or not isinstance(responses, list)
            or not all(isinstance(r, str) for r in responses)
        ):
            raise ImportFormatError(
                f"{where}: expected {{messages: [{{role, content}}, ...], responses: [str, ...]}}"
            )
        content: str = messages[0]["content"]
        task_id = task_by_content.get(content)
        if task_id is None:
            raise ImportFormatError(
                f"{where}: the first message matches no problem's CodeRM prompt "
                f"(it begins {content[:80]!r})"
            )
        numbered.append((number, CompletionRecord(task_id, tuple(responses))))
    _one_line_per_task(numbered, path)
    return [record for _, record in numbered]


def known_records(
    records: Sequence[CompletionRecord], task_ids: Container[str]
) -> tuple[list[CompletionRecord], list[str]]:
    """The records whose task id is in ``task_ids``, and the task ids of the others."""
    known = [r for r in records if r.task_id in task_ids]
    return known, [r.task_id for r in records if r.task_id not in task_ids]


class JoinKeys(Protocol):
    """What the completion readers join a file's lines to problems by (a stored problem)."""

    @property
    def task_id(self) -> str:
        """The benchmark's task id."""

    @property
    def prompt(self) -> str:
        """The completion prompt (CodeT solutions)."""

    @property
    def test_prompt(self) -> str | None:
        """The test-generation prompt (CodeT tests), if any."""

    @property
    def solution_messages(self) -> list[Any] | None:
        """CodeRM's chat prompt for solutions, if imported."""

    @property
    def test_messages(self) -> list[Any] | None:
        """CodeRM's chat prompt for unit tests, if imported."""


def read_completions(
    file_format: str, path: Path, role: Role, problems: Sequence[JoinKeys]
) -> list[CompletionRecord]:
    """The samples of a generations file of ``--format file_format`` for ``role``.

    ``codet`` lines are joined to problems by exact prompt (the test prompt for tests),
    ``coderm-inference`` lines by their first message against the problems' CodeRM
    prompts; the other formats name their task ids.
    """
    solution = role is Role.SOLUTION
    if file_format == "codet":
        key = {(p.prompt if solution else p.test_prompt or p.prompt): p.task_id for p in problems}
        return read_codet_samples(path, key)
    if file_format == "jsonl":
        return read_task_completions(path)
    if file_format == "coderm-sol":
        return read_coderm_solutions(path)
    if file_format == "coderm-ut":
        return read_coderm_unit_tests(path)
    if file_format == "coderm-inference":
        chats = {p.task_id: p.solution_messages if solution else p.test_messages for p in problems}
        return read_coderm_inference(path, coderm_prompt_index(chats))
    raise ImportFormatError(f"unknown --format {file_format!r}")

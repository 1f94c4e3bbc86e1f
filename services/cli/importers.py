"""Pure readers of benchmark and completion files (gzipped or plain JSON Lines)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.extractor.codet_unittest import codet_sample_to_unittest


class ImportFormatError(ValueError):
    """A file does not have the fields its format needs."""


@dataclass(frozen=True)
class ProblemRecord:
    """One benchmark problem as imported.

    ``ground_truth`` is how its solutions are labelled (``shared.oracle.GroundTruthKind``),
    ``oracle`` the evalplus inputs (``shared.oracle.Oracle`` as JSON) for ``outputs``;
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


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a ``.jsonl`` or ``.jsonl.gz`` file, with line numbers in errors."""
    opener = gzip.open if path.suffix == ".gz" else open
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
    (:func:`~services.extractor.codet_unittest.codet_sample_to_unittest`); one that
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

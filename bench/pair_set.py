"""The executor benchmark's pair set: real CodeGen-16B solutions x unittest-wrapped tests.

For every HumanEval problem, the first ``solutions`` solution samples of CodeT's
CodeGen-Mono-16B release (prompt + body cut at CodeT's stop strings) x the first
``tests`` distinct tests made from its test samples: each sample turned into a
CodeRM-style unittest answer (one method per assert, first 5 asserts) and extracted and
wrapped exactly as CodeRM's ``preprocess/extract_unit_test.py`` does (its ``output`` and
``locals_dict`` driver; ``reference=False``: our own wrapping instead), deduplicated by
text; samples that yield no assert (many are empty) are skipped. A pair's module is
``solution + "\n\n" + test``, as CodeRM's ``evaluation/evaluate.py`` writes its pair
file. With the defaults (10 x 10) that is 12,290 pairs (9 problems have no test).

    .venv/bin/python -m bench.pair_set OUT.jsonl      # write them as exec-pairs input
"""

from __future__ import annotations

import gzip
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.core.codet_unittest import codet_sample_to_unittest
from shared.core.extraction import extract_chat_unittest, extract_completion_solution
from shared.core.extraction_ref import extract_unittest_ref
from shared.enums import ExtractionStatus
from shared.settings import reference_data_dir

DATA = reference_data_dir()
PROBLEMS = DATA / "humaneval" / "HumanEval_for_code_generation.jsonl.gz"
TEST_PROMPTS = DATA / "humaneval" / "HumanEval_for_test_case_generation.jsonl.gz"
CODET = DATA / "codet-codegen16b"
SOLUTIONS = CODET / "HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_code_solution.jsonl.gz"
TESTS = CODET / "HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_test_case.jsonl.gz"


@dataclass(frozen=True)
class PairInput:
    """One exec-pairs input line, with the two parts the module is made of."""

    task_id: str
    sol_id: int
    ut_id: int
    solution: str
    test: str

    @property
    def code(self) -> str:
        """The module CodeRM's executor runs: solution, blank line, test (the pair file's
        ``code``)."""
        return f"{self.solution}\n\n{self.test}"

    def line(self) -> dict[str, object]:
        """The exec-pairs input record."""
        return {
            "task_id": self.task_id,
            "sol_id": self.sol_id,
            "ut_id": self.ut_id,
            "code": self.code,
        }


def _read(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _samples_by_prompt(path: Path) -> dict[str, list[str]]:
    return {str(r["prompt"]): [str(s) for s in r["samples"]] for r in _read(path)}


def unittest_tests(
    samples: list[str], entry_point: str, reference: bool = True
) -> Iterator[tuple[int, str]]:
    """(sample index, wrapped unittest text) of the samples that yield a new test."""
    seen: set[str] = set()
    extract = extract_unittest_ref if reference else extract_chat_unittest
    for index, sample in enumerate(samples):
        completion = codet_sample_to_unittest(sample, entry_point)
        if completion is None:
            continue
        extracted = extract(completion)
        if extracted.status is ExtractionStatus.OK and extracted.code[0] not in seen:
            seen.add(extracted.code[0])
            yield index, extracted.code[0]


def build_pairs(solutions: int = 10, tests: int = 10, reference: bool = True) -> list[PairInput]:
    """The pair set, problem by problem, solution-major; tests wrapped as CodeRM wraps
    them (``reference``) or as our extractor does."""
    problems = _read(PROBLEMS)
    test_prompts = {str(r["task_id"]): str(r["prompt"]) for r in _read(TEST_PROMPTS)}
    solution_samples = _samples_by_prompt(SOLUTIONS)
    test_samples = _samples_by_prompt(TESTS)
    pairs: list[PairInput] = []
    for problem in problems:
        task_id, prompt = str(problem["task_id"]), str(problem["prompt"])
        entry_point = str(problem["entry_point"])
        made = unittest_tests(test_samples[test_prompts[task_id]], entry_point, reference)
        wrapped = list(itertools.islice(made, tests))
        for sol_id, sample in enumerate(solution_samples[prompt][:solutions]):
            solution = extract_completion_solution(prompt, sample).code[0]
            pairs.extend(PairInput(task_id, sol_id, ut_id, solution, t) for ut_id, t in wrapped)
    return pairs


def main(argv: list[str]) -> int:
    """Write the pair set as exec-pairs input lines."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    pairs = build_pairs()
    with open(argv[0], "w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(pair.line()) + "\n")
    print(f"{len(pairs)} pairs -> {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

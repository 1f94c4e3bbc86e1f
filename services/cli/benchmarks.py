"""Pure readers of the benchmark formats beyond HumanEval's: evalplus's HumanEval+ and
MBPP+ release files, LiveCodeBench problems from CodeRM's prompt files, and CodeRM's
chat prompts (``input_<set>_{sol,ut}.jsonl.gz``) joined to problems by ``task_id``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from services.cli.importers import ImportFormatError, ProblemRecord, read_humaneval, read_jsonl
from shared.core.oracle import GroundTruthKind, Oracle
from shared.core.pyliteral import LiteralError, encode

FORMATS = ("humaneval", "humaneval+", "mbpp+", "livecodebench")
#: CodeRM prompt set of each format (HumanEval's task ids are HumanEval+'s).
PROMPT_SETS = {
    "humaneval": "humaneval+",
    "humaneval+": "humaneval+",
    "mbpp+": "mbpp+",
    "livecodebench": "livecodebench",
}
Messages = list[dict[str, Any]]
Args = list[Any]


# ------------------------------------------------------------------ MBPP+ inputs


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _each_arg_tuple(args: Args) -> Args:
    return [tuple(a) for a in args]


def _each_arg_rows_tuples(args: Args) -> Args:
    return [[tuple(row) for row in a] for a in args]


def _first_rows_tuples(args: Args) -> Args:
    return [[tuple(row) for row in args[0]], args[1]]


def _second_tuple(args: Args) -> Args:
    return [args[0], tuple(args[1])]


def _first_sets(args: Args) -> Args:
    # evalplus's rule, quirk included: an empty or non-list item becomes ``{}`` (a dict)
    return [[set(item) if isinstance(item, list) and item else {} for item in args[0]]]


def _float_complex(args: Args) -> Args:
    return [float(args[0]), complex(args[1])]


def _first_tuple_keep_second(args: Args) -> Args:
    return [tuple(args[0]), args[1]]


def _each_arg_tuple_of_tuples(args: Args) -> Args:
    return [tuple(tuple(row) for row in a) for a in args]


def _first_items_tuples(args: Args) -> Args:
    return [tuple(tuple(item) if isinstance(item, list) else item for item in args[0])]


def _first_tuple(args: Args) -> Args:
    return [tuple(args[0]), *args[1:3]]


def _dict_values_tuples(args: Args) -> Args:
    return [{key: tuple(value) for key, value in args[0].items()}, *args[1:]]


def _complex_arg(args: Args) -> Args:
    return [complex(args[0])]


def _all_tuples(args: Args) -> Args:
    return list(_tuples(args))


_MBPP_GROUPS: tuple[tuple[tuple[int, ...], Callable[[Args], Args]], ...] = (
    (
        (
            2,
            116,
            132,
            143,
            222,
            261,
            273,
            394,
            399,
            421,
            424,
            429,
            470,
            560,
            579,
            596,
            616,
            630,
            726,
            740,
            744,
            809,
        ),
        _each_arg_tuple,
    ),
    (
        (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780),
        _each_arg_rows_tuples,
    ),
    ((75, 413, 444, 753), _first_rows_tuples),
    ((106, 750), _second_tuple),
    ((115,), _first_sets),
    ((124,), _float_complex),
    ((250, 405, 446, 617, 720, 763, 808), _first_tuple_keep_second),
    ((259, 401, 445), _each_arg_tuple_of_tuples),
    ((278,), _first_items_tuples),
    ((307,), _first_tuple),
    ((722,), _dict_values_tuples),
    ((252,), _complex_arg),
    ((580, 615, 791), _all_tuples),
)
_MBPP_INPUTS = {number: rule for numbers, rule in _MBPP_GROUPS for number in numbers}


def mbpp_inputs(task_id: str, inputs: Sequence[Args]) -> list[Args]:
    """MBPP+ inputs as evalplus hands them to the function (``mbpp_deserialize_inputs``):
    JSON has no tuples, sets or complex numbers, so named tasks get them back."""
    number = int(task_id.rsplit("/", 1)[-1])
    rule = _MBPP_INPUTS.get(number)
    return [list(args) for args in inputs] if rule is None else [rule(list(a)) for a in inputs]


# ------------------------------------------------------------------ evalplus files

_EVALPLUS_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution")
MBPP_NOT_NONE = frozenset({"check_str", "text_match_three", "text_starta_endb"})


def _oracle(record: Mapping[str, Any], dataset: Literal["humaneval", "mbpp"]) -> Oracle:
    # an empty input set may be written as {} (MbppPlus's Mbpp/793): evalplus iterates it
    base, plus = record.get("base_input") or [], record.get("plus_input") or []
    if not isinstance(base, list) or not isinstance(plus, list):
        raise ImportFormatError(f"{record['task_id']}: base_input/plus_input must be lists")
    if dataset == "mbpp":
        base, plus = mbpp_inputs(record["task_id"], base), mbpp_inputs(record["task_id"], plus)
    try:
        return Oracle(
            dataset=dataset,
            atol=float(record.get("atol") or 0.0),
            output_not_none=dataset == "mbpp" and record["entry_point"] in MBPP_NOT_NONE,
            base_input=encode(base),
            plus_input=encode(plus),
            base_count=len(base),
            plus_count=len(plus),
        )
    except (LiteralError, ValueError) as error:
        raise ImportFormatError(f"{record['task_id']}: unusable inputs: {error}") from error


def read_evalplus(path: Path, dataset: Literal["humaneval", "mbpp"]) -> list[ProblemRecord]:
    """evalplus release problems (HumanEvalPlus, HumanEvalPlus-Mini, MbppPlus): prompt,
    entry point, canonical solution, and the inputs and ``atol`` differential testing
    needs. ``test_code`` keeps the file's own tests for reference (HumanEval's ``test``,
    MBPP's ``assertion``); the label comes from the outputs."""
    problems = []
    for position, record in enumerate(read_jsonl(path)):
        missing = [f for f in _EVALPLUS_FIELDS if not isinstance(record.get(f), str)]
        if missing:
            raise ImportFormatError(f"{path} record {position}: missing string fields {missing}")
        problems.append(
            ProblemRecord(
                task_id=record["task_id"],
                position=position,
                prompt=record["prompt"],
                entry_point=record["entry_point"],
                canonical_solution=record["canonical_solution"],
                test_code=str(record.get("test") or record.get("assertion") or ""),
                test_prompt=None,
                ground_truth=GroundTruthKind.OUTPUTS.value,
                oracle=_oracle(record, dataset).model_dump(mode="json"),
            )
        )
    return problems


# ------------------------------------------------------------------ CodeRM prompts


def read_coderm_prompts(directory: Path, prompt_set: str) -> dict[str, tuple[Messages, Messages]]:
    """CodeRM's chat prompts of one set, ``task_id -> (solution messages, test messages)``;
    only task ids present in both files."""
    found: list[dict[str, Messages]] = []
    for role in ("sol", "ut"):
        path = directory / f"input_{prompt_set}_{role}.jsonl.gz"
        if not path.exists():
            raise ImportFormatError(f"{path} does not exist")
        messages: dict[str, Messages] = {}
        for number, record in enumerate(read_jsonl(path), start=1):
            task_id, chat = record.get("task_id"), record.get("messages")
            if not isinstance(chat, list) or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in chat
            ):
                raise ImportFormatError(f"{path}:{number}: expected {{task_id, messages[]}}")
            messages[str(task_id)] = chat
        found.append(messages)
    solutions, tests = found
    return {t: (solutions[t], tests[t]) for t in solutions if t in tests}


def with_prompts(
    problems: Sequence[ProblemRecord], prompts: Mapping[str, tuple[Messages, Messages]]
) -> tuple[list[ProblemRecord], int]:
    """The problems with their CodeRM messages attached; and how many task ids matched."""
    out = []
    matched = 0
    for problem in problems:
        pair = prompts.get(problem.task_id)
        if pair is not None:
            matched += 1
            problem = replace(problem, solution_messages=pair[0], test_messages=pair[1])
        out.append(problem)
    return out, matched


# ------------------------------------------------------------------ LiveCodeBench

_QUESTION = re.compile(r"### Question:\n(.*?)\n+### Format:", re.S)
_STARTER = re.compile(r"```python\n(.*?)```", re.S)
_METHOD = re.compile(r"^\s+def (\w+)\(self", re.M)


def livecodebench_problem(task_id: str, position: int, solution_prompt: str) -> ProblemRecord:
    """A LiveCodeBench problem from CodeRM's solution prompt: the question and the
    starter code (``class Solution`` with one method, whose name is the entry point).
    No hidden tests ship with the prompts, so the problem has no ground truth."""
    question = _QUESTION.search(solution_prompt)
    starter = _STARTER.search(solution_prompt[question.end() :] if question else "")
    method = _METHOD.search(starter.group(1)) if starter else None
    if question is None or starter is None or method is None:
        raise ImportFormatError(f"livecodebench {task_id}: no question or starter method")
    return ProblemRecord(
        task_id=task_id,
        position=position,
        prompt=f"{question.group(1).rstrip()}\n\n{starter.group(1).rstrip()}\n",
        entry_point=method.group(1),
        canonical_solution="",
        test_code="",
        test_prompt=None,
        ground_truth=GroundTruthKind.NONE.value,
    )


def read_livecodebench(directory: Path) -> list[ProblemRecord]:
    """LiveCodeBench's functional-format problems of CodeRM's prompt files."""
    prompts = read_coderm_prompts(directory, PROMPT_SETS["livecodebench"])
    problems = [
        livecodebench_problem(task_id, position, str(solution[-1]["content"]))
        for position, (task_id, (solution, _)) in enumerate(prompts.items())
    ]
    return with_prompts(problems, prompts)[0]


# ------------------------------------------------------------------ dispatch


@dataclass(frozen=True)
class LoadedBenchmark:
    """A benchmark file's problems, and how many matched a CodeRM prompt (or None)."""

    problems: list[ProblemRecord]
    prompts_matched: int | None


def load_benchmark(
    fmt: str, file: Path | None, test_prompts: Path | None, coderm_prompts: Path | None
) -> LoadedBenchmark:
    """Read a benchmark of format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown benchmark format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "livecodebench":
        if coderm_prompts is None:
            raise ImportFormatError("livecodebench is read from --coderm-prompts DIR")
        problems = read_livecodebench(coderm_prompts)
        return LoadedBenchmark(problems, len(problems))
    if file is None:
        raise ImportFormatError(f"{fmt} needs --file")
    if fmt == "humaneval":
        problems = read_humaneval(file, test_prompts)
    else:
        problems = read_evalplus(file, "humaneval" if fmt == "humaneval+" else "mbpp")
        if test_prompts is not None:
            extra = read_humaneval_test_prompts(test_prompts)
            problems = [replace(p, test_prompt=extra.get(p.task_id)) for p in problems]
    if coderm_prompts is None:
        return LoadedBenchmark(problems, None)
    problems, matched = with_prompts(
        problems, read_coderm_prompts(coderm_prompts, PROMPT_SETS[fmt])
    )
    return LoadedBenchmark(problems, matched)


def read_humaneval_test_prompts(path: Path) -> dict[str, str]:
    """Test-generation prompts ``{task_id, prompt}`` (CodeT's), by task id."""
    out = {}
    for number, record in enumerate(read_jsonl(path), start=1):
        if not isinstance(record.get("task_id"), str) or not isinstance(record.get("prompt"), str):
            raise ImportFormatError(f"{path}:{number}: expected {{task_id, prompt}}")
        out[record["task_id"]] = record["prompt"]
    return out

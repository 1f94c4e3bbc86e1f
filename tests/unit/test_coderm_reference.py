"""CodeRM's ``calculate_result.py`` figure: our implementation against a literal
transcription of the procedure over the reference's own data shapes.

The transcription below works on what CodeRM's files give (labels keyed
``"{task_id}-{sol_id}"`` from ``sol_*_anno.jsonl``, results keyed
``"{task_id}-{sol_id}-{ut_id}"`` from the result lines) and uses the module-level
``random`` after ``random.seed(s)``; ``calc_best_of_n`` gets ``random.Random(s)``.
Both must agree to the last bit, on hand-made matrices and on a small real one
(``tests/data/coderm-reference``, made by ``bench/make_ref_matrix.py``).
"""

from __future__ import annotations

import json
import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

from shared.core.analysis_types import ProblemMatrix
from shared.core.coderm_reference import (
    ReferenceParams,
    calc_best_of_n,
    exact_vote,
    reference_candidates,
    reference_figure,
    reference_slots,
    ut_index,
)
from shared.core.strategies import Candidate, coderm_majority_vote

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "coderm-reference"

Labels = dict[str, str]
Results = dict[str, str]


# ------------------------------------------------------------------ the transcription


def transcription(
    task_ids: Sequence[str],
    labels: Labels,
    results: Results,
    sol_num: int,
    ut_num: int,
    sample_num: int,
) -> tuple[float, list[float]]:
    """The procedure step by step, on the reference's dicts and module-level random."""
    sol_ids = list(range(100))
    ut_ids = list(range(100))
    repetitions = []
    for _ in range(sample_num):
        accuracy: float = 0
        for task_id in task_ids:
            random.shuffle(ut_ids)
            passed: dict[int, set[int]] = {}
            for i in range(sol_num):
                sol_id = sol_ids[i]
                passed[sol_id] = set()
                for j in range(ut_num):
                    if results.get(f"{task_id}-{sol_id}-{ut_ids[j]}") == "pass":
                        passed[sol_id].add(ut_ids[j])
            ranked = sorted(passed.items(), key=lambda item: len(item[1]), reverse=True)
            top = len(ranked[0][1])
            leaders = [item for item in ranked if len(item[1]) == top]
            consistency = {
                sol_id: sum(1 for _, other in leaders if other == mine) for sol_id, mine in leaders
            }
            most = max(consistency.values())
            selected = [sol_id for sol_id, _ in leaders if consistency[sol_id] == most]
            good = sum(1 for sol_id in selected if labels.get(f"{task_id}-{sol_id}") == "pass")
            accuracy += good / len(selected)
        repetitions.append(round(accuracy / len(task_ids), 4))
    return statistics.mean(repetitions), repetitions


def reference_files(problems: Sequence[ProblemMatrix]) -> tuple[list[str], Labels, Results]:
    """What CodeRM's extraction and executor would write for these matrices: only
    samples with code get a ``sol_id`` (in sample order); the distinct tests, sorted by
    id, get ``ut_id`` 0..U-1; every (solution, test) pair has a result line."""
    labels: Labels = {}
    results: Results = {}
    for p in problems:
        tests = sorted(p.test_weights)
        with_code = [x for x in p.candidates if x.solution_id is not None]
        for sol_id, cand in enumerate(with_code):
            labels[f"{p.task_id}-{sol_id}"] = "pass" if cand.correct else "fail"
            for ut_id, test in enumerate(tests):
                verdict = "pass" if test in cand.passed else "fail"
                results[f"{p.task_id}-{sol_id}-{ut_id}"] = verdict
    return [p.task_id for p in problems], labels, results


def assert_same(
    problems: Sequence[ProblemMatrix],
    files: tuple[list[str], Labels, Results],
    sol_num: int,
    ut_num: int,
    sample_num: int,
    seed: int,
) -> None:
    random.seed(seed)
    expected, repetitions = transcription(*files, sol_num, ut_num, sample_num)
    after = random.getstate()
    rng = random.Random(seed)
    got = calc_best_of_n(problems, sol_num, ut_num, sample_num, rng)
    assert got.figure == expected  # to the last bit
    assert list(got.repetitions) == repetitions
    assert rng.getstate() == after  # the random stream is consumed the same way
    assert (got.sol_num, got.ut_num, got.sample_num) == (sol_num, ut_num, sample_num)


# ------------------------------------------------------------------ hand-made matrices


def c(sid: int | None, passed: Sequence[int] = (), correct: bool = False) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


def problem(pid: int, cands: Sequence[Candidate], tests: Sequence[int]) -> ProblemMatrix:
    return ProblemMatrix(pid, f"T/{pid}", tuple(cands), dict.fromkeys(tests, 1), len(tests))


HAND = [
    # duplicates of a correct code agree; a wrong one passes as many; a no-code sample
    problem(
        0,
        [c(1, (11, 12), True), c(None), c(2, (11, 13)), c(1, (11, 12), True), c(3, (11,), True)],
        [11, 12, 13],
    ),
    # no tests at all: every solution (and every padded sol_id) is selected
    problem(1, [c(1, (), True), c(2), c(None), c(3)], []),
    # only no-code samples: 0 whatever the draw
    problem(2, [c(None), c(None)], [5]),
    # 105 tests: code 2 passes only tests at ut_id >= 100, which are never drawn
    problem(3, [c(1, (1000,), False), c(2, tuple(range(1100, 1105)), True)], range(1000, 1105)),
    # a tie on the count broken by consistency, wrong codes in the majority
    problem(4, [c(1, (7,), True), c(2, (8,)), c(2, (8,)), c(3, (9,), True)], [7, 8, 9]),
]


def test_reference_candidates_drop_no_code_samples_and_keep_order() -> None:
    cands = HAND[0].candidates
    assert reference_candidates(cands) == (cands[0], cands[2], cands[3], cands[4])
    slots = reference_slots(cands, 6)
    assert slots[:4] == reference_candidates(cands) and slots[4:] == (c(None), c(None))
    assert reference_slots(cands, 2) == (cands[0], cands[2])
    assert ut_index(HAND[3])[1000] == 0 and ut_index(HAND[3])[1104] == 104


@pytest.mark.parametrize(
    ("sol_num", "ut_num", "sample_num", "seed"),
    [
        (100, 100, 3, 0),
        (100, 1, 20, 0),
        (100, 2, 20, 1),
        (3, 3, 30, 7),
        (1, 50, 10, 123),
        (4, 99, 5, 2024),
    ],
)
def test_equals_the_transcription_on_hand_made_matrices(
    sol_num: int, ut_num: int, sample_num: int, seed: int
) -> None:
    assert_same(HAND, reference_files(HAND), sol_num, ut_num, sample_num, seed)


def random_problem(rng: random.Random, pid: int) -> ProblemMatrix:
    """Few tests and codes, so that ties, duplicates and empty sets are frequent."""
    tests = sorted(rng.sample(range(1, 300), rng.randint(0, 6)))
    codes = [
        (frozenset(t for t in tests if rng.random() < 0.4), rng.random() < 0.4) for _ in range(4)
    ]
    cands = []
    for _ in range(rng.randint(1, 12)):
        if rng.random() < 0.15:
            cands.append(c(None))
        else:
            sid = rng.randrange(len(codes))
            cands.append(Candidate(sid, *codes[sid]))
    return problem(pid, cands, tests)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_transcription_on_random_matrices(seed: int) -> None:
    maker = random.Random(100 + seed)
    problems = [random_problem(maker, pid) for pid in range(8)]
    files = reference_files(problems)
    for sol_num, ut_num in ((100, 3), (5, 1), (8, 100)):
        assert_same(problems, files, sol_num, ut_num, 10, seed)


def test_the_global_random_is_left_alone() -> None:
    random.seed(5)
    before = random.getstate()
    calc_best_of_n(HAND, 100, 10, 5, random.Random(0))
    assert random.getstate() == before


def test_hand_computed_figure() -> None:
    """ut_num = 100 draws every test. T/0: top 2 passed, {11,12} twice -> 1.0. T/1: 3
    codes + 97 padded sol_ids all selected, 1 correct -> 0.01. T/2: 0. T/3: code 1 alone
    passes a drawable test -> 0. T/4: consistency 2 for {8} -> 0. Mean 1.01 / 5."""
    result = calc_best_of_n(HAND, 100, 100, 4, random.Random(0))
    assert result.repetitions == (0.202,) * 4 and result.figure == 0.202
    # with sol_num = 3 (the first three code samples): T/0 {11,12} twice against
    # {11,13} -> 1.0; T/1 1/3 (no padding); T/2 three padded sol_ids -> 0; T/3 code 1
    # alone on top -> 0; T/4 {8} twice -> 0
    assert calc_best_of_n(HAND, 3, 100, 1, random.Random(0)).figure == 0.2667


@pytest.mark.parametrize("sol_num", [1, 3, 100])
def test_at_ut_num_100_the_figure_is_the_exact_vote_on_reference_candidates(
    sol_num: int,
) -> None:
    problems = [p for p in HAND if len(p.test_weights) <= 100]
    figure = calc_best_of_n(problems, sol_num, 100, 7, random.Random(3)).figure
    assert figure == round(exact_vote(problems, sol_num), 4)
    # where a solution passes a test, the padding never counts: the plain vote over
    # the reference candidates (the first sol_num) gives the same score
    for p in problems:
        code = reference_candidates(p.candidates)[:sol_num]
        if code and any(x.passed for x in code):
            padded = reference_slots(p.candidates, sol_num)
            assert coderm_majority_vote(code).score == coderm_majority_vote(padded).score


@pytest.mark.parametrize(
    ("sol_num", "ut_num", "sample_num", "problems"),
    [
        (0, 1, 1, HAND),
        (101, 1, 1, HAND),
        (1, 0, 1, HAND),
        (1, 101, 1, HAND),
        (1, 1, 0, HAND),
        (1, 1, 1, []),
    ],
)
def test_bad_parameters_are_rejected(
    sol_num: int, ut_num: int, sample_num: int, problems: list[ProblemMatrix]
) -> None:
    with pytest.raises(ValueError):
        calc_best_of_n(problems, sol_num, ut_num, sample_num, random.Random(0))


def test_reference_figure_for_reports() -> None:
    figure = reference_figure(HAND, ReferenceParams(sample_num=3, seed=4))
    assert figure.figure == pytest.approx(20.2) and figure.repetitions == [pytest.approx(20.2)] * 3
    # the exact vote sees every test, T/3's beyond ut_id 100 too: code 2 wins there
    assert figure.exact_vote == pytest.approx(100 * 2.01 / 5)
    assert not figure.full_permutation  # T/3 has 105 tests
    assert (figure.over_100_tests, figure.short_of_sol_num, figure.dropped_no_code) == (1, 5, 4)
    small = reference_figure(HAND[:3], ReferenceParams(ut_num=2, sample_num=3))
    assert not small.full_permutation
    assert reference_figure(HAND[:3], ReferenceParams()).full_permutation


# ------------------------------------------------------------------ the real matrix


def _lines(name: str) -> list[dict[str, object]]:
    text = (FIXTURE / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def real_files() -> tuple[list[str], Labels, Results]:
    """The fixture read as CodeRM reads its files."""
    anno = _lines("sol_anno.jsonl")
    labels: Labels = {}
    for record in anno:
        solutions = record["solutions"]
        assert isinstance(solutions, list)
        for sol_id, solution in enumerate(solutions):
            labels[f"{record['task_id']}-{sol_id}"] = str(solution["plus_status"])
    results = {
        f"{r['task_id']}-{r['sol_id']}-{r['ut_id']}": str(r["result"])
        for r in _lines("ut_result.jsonl")
    }
    return [str(record["task_id"]) for record in anno], labels, results


def real_matrices() -> list[ProblemMatrix]:
    """The fixture as coderm's matrices: test id = ut_id, solution id = sol_id."""
    tests: dict[str, set[int]] = defaultdict(set)
    passed: dict[tuple[str, int], set[int]] = defaultdict(set)
    for r in _lines("ut_result.jsonl"):
        task, sol_id, ut_id = str(r["task_id"]), int(str(r["sol_id"])), int(str(r["ut_id"]))
        tests[task].add(ut_id)
        if r["result"] == "pass":
            passed[task, sol_id].add(ut_id)
    out = []
    for pid, record in enumerate(_lines("sol_anno.jsonl")):
        task, solutions = str(record["task_id"]), record["solutions"]
        assert isinstance(solutions, list)
        cands = tuple(
            Candidate(sol_id, frozenset(passed[task, sol_id]), s["plus_status"] == "pass")
            for sol_id, s in enumerate(solutions)
        )
        out.append(ProblemMatrix(pid, task, cands, dict.fromkeys(tests[task], 1), len(tests[task])))
    return out


def test_the_real_fixture_is_what_its_readme_says() -> None:
    problems = real_matrices()
    assert [p.task_id for p in problems] == [f"HumanEval/{i}" for i in range(5)]
    assert [len(p.candidates) for p in problems] == [10] * 5
    assert sum(len(p.test_weights) * len(p.candidates) for p in problems) == 400
    # the real matrices read back give the same reference files
    assert reference_files(problems) == real_files()


@pytest.mark.parametrize(
    ("sol_num", "ut_num", "sample_num", "seed"),
    [
        (100, 100, 5, 0),
        (100, 1, 50, 0),
        (100, 5, 50, 3),
        (10, 3, 50, 11),
        (10, 10, 40, 42),
        (7, 2, 40, 9),
    ],
)
def test_equals_the_transcription_on_the_real_matrix(
    sol_num: int, ut_num: int, sample_num: int, seed: int
) -> None:
    assert_same(real_matrices(), real_files(), sol_num, ut_num, sample_num, seed)


@pytest.mark.parametrize("sol_num", [10, 100])
def test_real_matrix_at_ut_num_100_is_the_exact_vote(sol_num: int) -> None:
    problems = real_matrices()
    figure = calc_best_of_n(problems, sol_num, 100, 3, random.Random(1)).figure
    assert figure == round(exact_vote(problems, sol_num), 4)
    if sol_num == 10:  # every problem has 10 code samples: no padding at all
        votes = [coderm_majority_vote(reference_candidates(p.candidates)).score for p in problems]
        assert figure == round(sum(votes) / len(votes), 4)

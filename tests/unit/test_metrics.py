"""Unit-test quality of a run (per run, per problem, per test) on hand-computed tables."""

from __future__ import annotations

from dataclasses import astuple

import pytest

from shared.core.analysis_types import ProblemMatrix
from shared.core.metrics import Confusion, Quality, quality_of, unit_test_quality
from shared.core.strategies import Candidate


def c(sid: int | None, passed: tuple[int, ...] = (), correct: bool = False) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


def problem(
    pid: int, cands: list[Candidate], weights: dict[int, int], test_samples: int
) -> ProblemMatrix:
    return ProblemMatrix(pid, f"T/{pid}", tuple(cands), weights, test_samples)


# P1: test 1 accepts s1 (correct) and s2 (wrong); test 2 accepts s1; s3 (correct) fails
# both; the no-code sample fails both. Majority: s1 alone passes 2 tests.
P1 = problem(1, [c(1, (1, 2), True), c(2, (1,)), c(3, (), True), c(None)], {1: 2, 2: 1}, 3)
# P2: no correct solution; a duplicated wrong solution passes test 3.
P2 = problem(2, [c(5, (3,)), c(5, (3,)), c(6)], {3: 1}, 1)
# P3: no tests (3 completions yielded none): individual has no pairs, majority accepts all.
P3 = problem(3, [c(7, (), True), c(8)], {}, 3)

T1 = Confusion(tp=1, tn=1, fp=1, fn=1)
T2 = Confusion(tp=1, tn=2, fp=0, fn=1)
T3 = Confusion(tp=0, tn=1, fp=2, fn=0)


def approx(values: tuple[float | None, ...]) -> tuple[object, ...]:
    return tuple(None if v is None else pytest.approx(v) for v in values)


def test_per_problem_and_per_test_counts() -> None:
    report = unit_test_quality([P1, P2, P3])
    assert [(t.problem_id, t.test_id, t.weight, t.confusion) for t in report.per_test] == [
        (1, 1, 2, T1),
        (1, 2, 1, T2),
        (2, 3, 1, T3),
    ]
    assert [
        (q.problem_id, q.tests, q.samples, q.correct, q.individual, q.majority)
        for q in report.per_problem
    ] == [
        (1, 2, 4, 2, Confusion(tp=2, tn=3, fp=1, fn=2), Confusion(tp=1, tn=2, fp=0, fn=1)),
        (2, 1, 3, 0, T3, Confusion(tp=0, tn=1, fp=2, fn=0)),
        (3, 0, 2, 1, Confusion(), Confusion(tp=1, tn=0, fp=1, fn=0)),
    ]


# fields: accuracy, precision, recall, f1, far, frr, far_paper, frr_paper
@pytest.mark.parametrize(
    ("field", "expected"),
    [
        # pooled pairs: tp 2, tn 4, fp 3, fn 2
        (
            "individual_micro",
            (6 / 11, 2 / 5, 1 / 2, 4 / 9, 3 / 7, 1 / 2, 3 / 5, 2 / 6),
        ),
        # P1 (2, 3, 1, 2) and P2 (0, 1, 2, 0); P3 has no pairs, every ratio undefined;
        # P2's recall, F1 and FRR are undefined (no correct solution) and skipped
        (
            "individual_macro_problem",
            (
                (5 / 8 + 1 / 3) / 2,
                (2 / 3 + 0) / 2,
                1 / 2,
                4 / 7,
                (1 / 4 + 2 / 3) / 2,
                1 / 2,
                (1 / 3 + 1) / 2,
                (2 / 5 + 0) / 2,
            ),
        ),
        # tests T1, T2, T3; T3's recall, F1 and FRR undefined
        (
            "individual_macro_test",
            (
                (1 / 2 + 3 / 4 + 1 / 3) / 3,
                (1 / 2 + 1 + 0) / 3,
                1 / 2,
                (1 / 2 + 2 / 3) / 2,
                (1 / 2 + 0 + 2 / 3) / 3,
                1 / 2,
                (1 / 2 + 0 + 1) / 3,
                (1 / 2 + 1 / 3 + 0) / 3,
            ),
        ),
        # pooled samples: tp 2, tn 3, fp 3, fn 1
        ("majority_micro", (5 / 9, 2 / 5, 2 / 3, 1 / 2, 1 / 2, 1 / 3, 3 / 5, 1 / 4)),
        # P1 (1, 2, 0, 1), P2 (0, 1, 2, 0), P3 (1, 0, 1, 0)
        (
            "majority_macro",
            (
                (3 / 4 + 1 / 3 + 1 / 2) / 3,
                (1 + 0 + 1 / 2) / 3,
                (1 / 2 + 1) / 2,
                2 / 3,
                (0 + 2 / 3 + 1) / 3,
                (1 / 2 + 0) / 2,
                (0 + 1 + 1 / 2) / 3,
                (1 / 3 + 0) / 2,
            ),
        ),
    ],
)
def test_run_quality(field: str, expected: tuple[float, ...]) -> None:
    quality = getattr(unit_test_quality([P1, P2, P3]), field)
    assert astuple(quality) == approx(expected)


def test_quality_without_problems_or_tests() -> None:
    undefined = Quality(*(None,) * 8)
    empty = unit_test_quality([])
    assert empty.per_problem == ()
    assert empty.per_test == ()
    assert empty.individual_micro == empty.majority_macro == undefined
    only_p3 = unit_test_quality([P3])
    assert only_p3.individual_micro == only_p3.individual_macro_test == undefined
    assert astuple(only_p3.majority_micro) == approx((0.5, 0.5, 1.0, 2 / 3, 1.0, 0.0, 0.5, None))


def test_duplicate_solutions_count_per_sample() -> None:
    once = unit_test_quality([problem(1, [c(1, (1,), True), c(2, (1,))], {1: 1}, 1)])
    twice = unit_test_quality(
        [problem(1, [c(1, (1,), True), c(1, (1,), True), c(2, (1,))], {1: 1}, 1)]
    )
    assert once.individual_micro.precision == pytest.approx(1 / 2)
    assert twice.individual_micro.precision == pytest.approx(2 / 3)


def test_quality_of_matches_the_confusion() -> None:
    conf = Confusion(tp=3, tn=4, fp=1, fn=2)
    assert astuple(quality_of(conf)) == approx((0.7, 0.75, 0.6, 0.9 / 1.35, 0.2, 0.4, 0.25, 2 / 6))


@pytest.mark.parametrize(
    ("cands", "weights", "test_samples"),
    [([], {}, 0), ([c(1)], {1: 0}, 1), ([c(1)], {}, -1)],
)
def test_problem_matrix_rejects_bad_input(
    cands: list[Candidate], weights: dict[int, int], test_samples: int
) -> None:
    with pytest.raises(ValueError):
        problem(1, cands, weights, test_samples)

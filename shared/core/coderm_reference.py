"""CodeRM's majority-voting figure, computed the way CodeRM's released evaluation
computes it (pure, no I/O).

CodeRM's ``evaluation/calculate_result.py`` (``get_result_on_sol_and_ut``,
``calc_best_of_n``; repository RUCKBReasoning/CodeRM) works on these data, here read
off a run's matrices:

* the problems in dataset order;
* per problem its solutions, indexed ``sol_id = 0, 1, ...`` in the order of the
  solution file. CodeRM's ``preprocess/extract_solution.py`` keeps a response only
  when it holds exactly one code block, so ``sol_id`` k is the k-th *code-bearing*
  sample (:func:`reference_candidates`); a label per ``(task, sol_id)``, ``'pass'``
  iff the solution is correct;
* per ``(task, sol_id, ut_id)`` a result ``'pass'`` or ``'fail'``. CodeRM's
  ``preprocess/extract_unit_test.py`` keeps each distinct test once, in a list, so
  ``ut_id`` is a test's position in the problem's list of distinct tests: here the
  unique tests sorted by id get ``ut_id`` 0..U-1 (:func:`ut_index`). A missing result
  counts as not passed.

The procedure, re-implemented from those facts:

* once per call, ``sol_ids = [0..99]`` and ``ut_ids = [0..99]``: always 100 slots,
  whatever a problem's number of tests (a ``ut_id`` at or beyond U has no result,
  i.e. every solution fails it; with U > 100 the tests at ``ut_id`` >= 100 can never
  be drawn);
* ``sample_num`` repetitions; each loops over the problems in order and, per
  problem, first shuffles ``ut_ids`` in place with the module-level ``random``
  (the same list object throughout: its permutation carries over from problem to
  problem and from repetition to repetition), then for ``i < sol_num`` takes
  ``sol_id = sol_ids[i]`` (never shuffled: the first ``sol_num`` solutions) and
  ``P[sol_id] = {ut_ids[j] : j < ut_num, result(task, sol_id, ut_ids[j]) == 'pass'}``;
* rank: the items with the largest ``|P|``; among them the consistency of one is
  the number of those items with an equal set; the selection is the items of maximal
  consistency; ``problem score = selected with label 'pass' / selected``;
* ``repetition accuracy = round((s_1 + s_2 + ... + s_T) / T, 4)`` over the T problems
  (a left-to-right float sum, as the reference's ``+=`` loop), and
  ``figure = statistics.mean(repetition accuracies)``, a fraction.

A ``sol_id`` below ``sol_num`` with no solution (a problem with fewer code-bearing
samples than ``sol_num``) has no result and no ``'pass'`` label: it takes part with
P = {} and counts as incorrect (:func:`reference_slots`). CodeRM looks a selected
solution's label up by plain indexing, which would stop with ``KeyError`` there (its
annotation files label 200 solutions a task); counting it as not passed is this
module's rule. It matters only when no solution passes a drawn test (every item is
then selected).

The selection depends only on the multiset of the sets P, so it is computed here
over classes of equal passed sets (bitmasks), with the same integer counts and the
same float divisions as the reference; the random stream is consumed exactly as the
reference consumes it (one ``shuffle`` of the 100-long list a problem and
repetition), so given a ``random.Random`` in the state of the reference's module-level
``random`` the figure is equal to the last bit.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from shared.core.analysis_types import ProblemMatrix
from shared.core.strategies import Candidate, coderm_majority_vote

ID_SLOTS = 100
"""Length of the reference's ``sol_ids`` and ``ut_ids`` lists."""


def reference_candidates(candidates: Sequence[Candidate]) -> tuple[Candidate, ...]:
    """CodeRM's solutions of a problem: the samples with code, in sample order
    (``sol_id`` k is the k-th of them; samples whose completion yielded no code are
    dropped, as ``extract_solution.py`` drops responses without exactly one code
    block)."""
    return tuple(c for c in candidates if c.solution_id is not None)


def reference_slots(candidates: Sequence[Candidate], sol_num: int) -> tuple[Candidate, ...]:
    """What the reference sees at ``sol_id`` 0..sol_num-1: ``reference_candidates[k]``
    for k below their number, else ``Candidate(None)`` (no result, no ``'pass'``
    label: passes nothing, incorrect). Always ``sol_num`` items."""
    code = reference_candidates(candidates)[:sol_num]
    return code + (Candidate(None),) * (sol_num - len(code))


def ut_index(problem: ProblemMatrix) -> dict[int, int]:
    """Unique test id -> ``ut_id``: its position among the problem's unique tests
    sorted by id (``extract_unit_test.py``'s list of distinct tests)."""
    return {test: ut_id for ut_id, test in enumerate(problem.tests)}


@dataclass(frozen=True)
class BestOfN:
    """The reference's output for one run: ``repetitions`` are the per-repetition
    accuracies (each rounded to 4 decimals, fractions), ``figure`` their
    ``statistics.mean`` (the number the reference prints as ``y_mean``)."""

    sol_num: int
    ut_num: int
    sample_num: int
    repetitions: tuple[float, ...]
    figure: float


@dataclass(frozen=True)
class _Problem:
    """A problem reduced to its classes: passed ``ut_id`` bitmask -> [samples, correct]
    over the ``sol_num`` slots, and the mask of the ``ut_id`` that hold a test."""

    classes: tuple[tuple[int, int, int], ...]
    tests_mask: int


def _prepare(problem: ProblemMatrix, sol_num: int) -> _Problem:
    index = ut_index(problem)
    classes: dict[int, list[int]] = {}
    for cand in reference_slots(problem.candidates, sol_num):
        mask = sum(1 << index[t] for t in cand.passed if index.get(t, ID_SLOTS) < ID_SLOTS)
        entry = classes.setdefault(mask, [0, 0])
        entry[0] += 1
        entry[1] += int(cand.correct)
    held = min(len(index), ID_SLOTS)
    return _Problem(tuple((m, n, c) for m, (n, c) in classes.items()), (1 << held) - 1)


def _select(problem: _Problem, drawn: int) -> float:
    """One problem's score with the drawn ``ut_id`` mask: classes merged by drawn set,
    those with the most drawn tests passed kept, the kept classes with the most
    members (= consistency) selected; ``correct selected / selected``."""
    merged: dict[int, list[int]] = {}
    for mask, samples, correct in problem.classes:
        entry = merged.setdefault(mask & drawn, [0, 0])
        entry[0] += samples
        entry[1] += correct
    top = max(p.bit_count() for p in merged)
    leaders = [e for p, e in merged.items() if p.bit_count() == top]
    consistency = max(e[0] for e in leaders)
    selected = [e for e in leaders if e[0] == consistency]
    return sum(e[1] for e in selected) / sum(e[0] for e in selected)


def calc_best_of_n(
    problems: Sequence[ProblemMatrix],
    sol_num: int,
    ut_num: int,
    sample_num: int,
    rng: random.Random,
) -> BestOfN:
    """CodeRM's majority-voting figure of a run, as ``get_result_on_sol_and_ut``
    computes it (the procedure in the module docstring), with ``rng`` standing in
    for the reference's module-level ``random`` (``rng.shuffle`` is called exactly
    where the reference calls ``random.shuffle``, so ``rng`` ends in the state the
    reference's ``random`` would).

    ``figure = statistics.mean(r_1..r_sample_num)``,
    ``r = round(sum over problems in order of score / #problems, 4)``,
    ``score = correct selected / selected`` (module docstring). ``ValueError`` unless
    ``1 <= sol_num <= 100`` and ``1 <= ut_num <= 100`` (the reference indexes its
    100-long lists with them), ``sample_num >= 1`` and ``problems`` non-empty.
    """
    if not 1 <= sol_num <= ID_SLOTS or not 1 <= ut_num <= ID_SLOTS:
        raise ValueError(f"sol_num and ut_num must be in 1..{ID_SLOTS}")
    if sample_num < 1 or not problems:
        raise ValueError("need at least one repetition and one problem")
    prepared = [_prepare(p, sol_num) for p in problems]
    caches: list[dict[int, float]] = [{} for _ in prepared]
    ut_ids = list(range(ID_SLOTS))
    repetitions = []
    for _ in range(sample_num):
        total = 0.0
        for problem, cache in zip(prepared, caches, strict=True):
            rng.shuffle(ut_ids)
            drawn = 0
            for ut_id in ut_ids[:ut_num]:
                drawn |= 1 << ut_id
            key = drawn & problem.tests_mask
            score = cache.get(key)
            if score is None:
                score = cache[key] = _select(problem, key)
            total += score
        repetitions.append(round(total / len(prepared), 4))
    return BestOfN(sol_num, ut_num, sample_num, tuple(repetitions), statistics.mean(repetitions))


def exact_vote(problems: Sequence[ProblemMatrix], sol_num: int = ID_SLOTS) -> float:
    """Mean over problems (in order, left-to-right sum) of
    :func:`~shared.core.strategies.coderm_majority_vote` on
    :func:`reference_slots` (the first ``sol_num`` code-bearing samples, padded): the
    vote over every test, unrounded. When every problem has at most 100 unique tests,
    ``calc_best_of_n`` with ``ut_num = 100`` draws every test in every repetition and
    its figure is ``round(exact_vote, 4)``."""
    total = 0.0
    for problem in problems:
        total += coderm_majority_vote(reference_slots(problem.candidates, sol_num)).score
    return total / len(problems)


@dataclass(frozen=True)
class ReferenceParams:
    """The parameters of ``calculate_result.py`` and the seed of its ``random``."""

    sol_num: int = ID_SLOTS
    ut_num: int = ID_SLOTS
    sample_num: int = 100
    seed: int = 0


@dataclass(frozen=True)
class ReferenceFigure:
    """The figure for a report, in percent, with what explains its distance from the
    exact vote.

    ``figure``: ``100 * calc_best_of_n(...).figure`` with ``random.Random(seed)``;
    ``repetitions`` the per-repetition accuracies in percent; ``exact_vote``
    ``100 * exact_vote(problems, sol_num)``; ``full_permutation``: every repetition
    draws every test of every problem (``ut_num = 100`` and no problem above 100 unique
    tests), so ``figure == 100 * round(exact_vote / 100, 4)``; ``over_100_tests``
    problems whose tests at ``ut_id`` >= 100 are never drawn; ``short_of_sol_num``
    problems with fewer code-bearing samples than ``sol_num`` (padded);
    ``dropped_no_code`` samples without code left out over the run.
    """

    sol_num: int
    ut_num: int
    sample_num: int
    seed: int
    problems: int
    figure: float
    repetitions: list[float]
    exact_vote: float
    full_permutation: bool
    over_100_tests: int
    short_of_sol_num: int
    dropped_no_code: int


def reference_figure(problems: Sequence[ProblemMatrix], params: ReferenceParams) -> ReferenceFigure:
    """:func:`calc_best_of_n` with ``random.Random(params.seed)`` (as if the reference
    ran after ``random.seed(seed)``), and the facts a report prints beside it."""
    result = calc_best_of_n(
        problems, params.sol_num, params.ut_num, params.sample_num, random.Random(params.seed)
    )
    over = sum(1 for p in problems if len(p.test_weights) > ID_SLOTS)
    return ReferenceFigure(
        sol_num=params.sol_num,
        ut_num=params.ut_num,
        sample_num=params.sample_num,
        seed=params.seed,
        problems=len(problems),
        figure=100.0 * result.figure,
        repetitions=[100.0 * r for r in result.repetitions],
        exact_vote=100.0 * exact_vote(problems, params.sol_num),
        full_permutation=params.ut_num >= ID_SLOTS and over == 0,
        over_100_tests=over,
        short_of_sol_num=sum(
            1 for p in problems if len(reference_candidates(p.candidates)) < params.sol_num
        ),
        dropped_no_code=sum(1 for p in problems for c in p.candidates if c.solution_id is None),
    )

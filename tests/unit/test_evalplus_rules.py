"""evalplus's output comparison, our value encoding, and the ground-truth jobs and rows."""

from __future__ import annotations

import collections
import math
from typing import Any

import pytest

from sandbox.client.framing import decode_batch, encode_batch
from sandbox.client.results import JobResult
from sandbox.coderm_runner import evalplus_check as rules
from sandbox.coderm_runner.evalplus_expected import _shipped
from sandbox.coderm_runner.evalplus_jobs import as_asserts
from services.executor.expected_outputs import CanonicalRun, parse_results
from services.executor.ground_truth import label_rows, outputs_label
from shared.core.oracle import Expected, check_budget, input_limits, outputs_profile
from shared.core.profiles import SANDBOX_VERSION
from shared.core.pyliteral import LiteralError, decode, encode
from shared.enums import Outcome
from tests.samples import doubling_oracle

INF, NAN = math.inf, math.nan


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    "value",
    [
        [1, -2, 10**5000, 0.1, -0.0, INF, -INF, 1e-300, 2.5e300],
        [(1,), (), [[], {}], {"a": (1, 2), 3: None, (4, 5): [True, False]}],
        [set(), {1, 2}, frozenset(), frozenset({"x"}), {frozenset({1})}],
        ["", "quote ' \" \\ \n \x00 é 𝄞", b"\x00\xff", 1 + 2j, -1.5 - 0.5j, 3j],
    ],
)
def test_repr_text_round_trips_plain_values(value: list[Any]) -> None:
    text = encode(value)
    assert decode(text) == value
    assert rules.decode(text) == value  # the sandbox's reader agrees
    assert [type(v) for v in decode(text)] == [type(v) for v in value]


def test_nan_round_trips_as_nan() -> None:
    [value] = decode(encode([NAN]))
    assert math.isnan(value)


@pytest.mark.parametrize(
    "text", ["__import__('os')", "open('x')", "[x for x in ()]", "a.b", "{**{}}", "f(1)"]
)
def test_decoder_accepts_nothing_but_literals(text: str) -> None:
    with pytest.raises(LiteralError):
        decode(text)


def test_encode_refuses_objects_that_do_not_round_trip() -> None:
    with pytest.raises(LiteralError):
        encode([collections.OrderedDict(a=1)])
    with pytest.raises(LiteralError):
        encode(range(3))


# ------------------------------------------------------------------ comparison


def match(
    out: Any,
    exp: Any,
    atol: float = 0.0,
    entry: str = "f",
    dataset: str = "humaneval",
    inp: list[Any] | None = None,
) -> bool:
    return rules.outputs_match(out, exp, inp or [], atol, entry, dataset)[0]


@pytest.mark.parametrize(
    ("out", "exp", "atol", "expected"),
    [
        (3, 3, 0.0, True),
        (True, 1, 0.0, True),  # == decides, as in evalplus
        (2, 2.0, 0.0, True),
        ("abc", "abd", 0.0, False),
        ([1, 2], (1, 2), 0.0, False),  # a list never equals a tuple
        ((1.0, 2.0), [1.0, 2.0], 0.0, False),  # nor in the float branch (types differ)
        (0.1 + 0.2, 0.3, 0.0, True),  # float expected: atol becomes 1e-6
        (0.3 + 2e-6, 0.3, 0.0, False),  # |d| = 2e-6 > 1e-6 + 1e-7 * 0.3
        (0.3 + 1e-6, 0.3, 0.0, True),  # 1e-6 <= 1e-6 + 3e-8
        ([1.0, 2.0000005], [1.0, 2.0], 0.0, True),
        ([1.0, 2.1], [1.0, 2.0], 0.0, False),
        ([1.0], [1.0, 2.0], 0.0, False),  # lengths differ
        (2, 2.5, 0.0, False),  # int for a non-integral float: types differ
        (1e9 + 50, 1e9, 0.0, True),  # 50 <= 1e-6 + 1e-7 * 1e9: rtol lets large floats drift
        (NAN, NAN, 0.0, False),  # NaN is never close
        ([INF, 1.0], [INF, 1.0], 0.0, True),
        (-INF, INF, 0.0, False),
        (10.00005, 10.0, 1e-4, True),  # the task's atol (MBPP+ volume_sphere)
        (10.0002, 10.0, 1e-4, False),  # 2e-4 > 1e-4 + 1e-6
        ("10.0", 10.0, 1e-4, False),
        ([[1.0, 2.0]], [[1.0, 2.0000001]], 1e-4, True),  # nested, same shape
        ([[1.0], [2.0, 3.0]], [[1.0], [2.0, 3.0]], 1e-4, True),  # equal: exact decides
        ([[1.0], [2.0, 3.5]], [[1.0], [2.0, 3.0]], 1e-4, False),  # ragged: numpy raises
        ([None], [1.0], 0.0, False),
        (2**70, 2**70 + 1, 1e-4, False),  # beyond 64 bits numpy makes objects and raises
    ],
)
def test_outputs_match_follows_evalplus(out: Any, exp: Any, atol: float, expected: bool) -> None:
    assert match(out, exp, atol) is expected


def test_default_atol_persists_for_later_inputs_of_a_check() -> None:
    ok, atol = rules.outputs_match(0.5, 0.5, [], 0.0, "f", "humaneval")
    assert ok and atol == 1e-6
    # an int expected after a float one goes through allclose with the kept atol
    assert rules.outputs_match(10**8 + 1, 10**8, [], atol, "f", "humaneval")[0]
    assert not rules.outputs_match(10**8 + 1, 10**8, [], 0.0, "f", "humaneval")[0]


def test_find_zero_passes_any_root_within_atol() -> None:
    xs = [-6, 11, -6, 1]  # (x - 1)(x - 2)(x - 3)
    assert match(2.0 + 1e-6, 1.0, 1e-4, "find_zero", "humaneval", [xs])
    assert not match(2.5, 1.0, 1e-4, "find_zero", "humaneval", [xs])
    assert not match(2.0, 1.0, 1e-4, "find_zero", "mbpp", [xs])  # special only for HumanEval


def test_mbpp_special_oracles() -> None:
    assert match((5, 4), (4, 5), 0.0, "similar_elements", "mbpp")  # set comparison
    assert not match((5, 4), (4, 5), 0.0, "other", "mbpp")
    assert match("a match object", True, 0.0, "text_match_three", "mbpp")  # not None
    assert not match(None, True, 0.0, "text_match_three", "mbpp")
    assert match(False, False, 0.0, "text_match_three", "mbpp")  # a bool is compared
    assert match(0, 7, 0.0, "sum_div", "mbpp")
    assert match(17, 99, 0.0, "surface_Area", "mbpp", [2, 3])  # round(4 + 2*2*sqrt(10))
    assert not match(16, 99, 0.0, "surface_Area", "mbpp", [2, 3])
    assert match(5, 99, 0.0, "digit_distance_nums", "mbpp", [123, 1])  # 123 vs 001: 1+2+2
    assert match("anything", False, 0.0, "are_equivalent", "mbpp")


def test_an_object_that_equals_everything_fails() -> None:
    class AlwaysEqual:
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    assert not match(AlwaysEqual(), 3)
    assert not match([AlwaysEqual()], [3])
    assert not match({"k": AlwaysEqual()}, {"k": 3})
    Point = collections.namedtuple("Point", "x y")
    assert match(Point(1, 2), (1, 2))  # a tuple subclass compares as a tuple
    assert match(collections.Counter(a=1), {"a": 1})


# ------------------------------------------------------------------ digests


def test_digests_are_shared_by_equal_values_only() -> None:
    d = rules.digest
    assert d([1, 2.0, True]) == d([1.0, 2, 1]) is not None
    assert d([1, 2]) != d((1, 2))
    assert d({"a": 1, "b": [2]}) == d({"b": [2.0], "a": 1})
    assert d({1, 2}) == d(frozenset({2, 1}))
    assert d([0.0, -0.0]) == d([0, 0])
    assert d(["ab", "c"]) != d(["a", "bc"])
    assert d([2**53 + 1]) != d([float(2**53)])
    assert d(10**400) != d(10**400 + 1)
    assert d([1.5, NAN]) is None and d(object()) is None
    assert d(1 + 0j) == d(1) and d(1 + 2j) != d(1 - 2j)


def test_large_outputs_are_digested_only_where_equality_alone_decides() -> None:
    big = list(range(2000))
    problem = {"atol": 0.0, "entry_point": "f", "dataset": "humaneval"}
    literal, digests = _shipped(problem, [1, big])
    assert literal == [1, None] and digests == {"1": rules.digest(big)}
    assert _shipped({**problem, "atol": 1e-4}, [big]) == ([big], {})
    assert _shipped(problem, [0.5, big]) == ([0.5, big], {})  # atol is 1e-6 from then on
    assert _shipped({**problem, "entry_point": "find_zero"}, [big]) == ([big], {})


# ------------------------------------------------------------------ one check, in process


def _spec(label: str, inputs: list[Any], expected: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "entry_point": "f",
        "dataset": "humaneval",
        "atol": 0.0,
        "inputs": encode(inputs),
        "expected": encode(expected),
        "limits": [1.0] * len(inputs),
        "budget_s": 5.0,
        **extra,
    }


def _scope() -> dict[str, Any]:
    return {"__name__": "__coderm_pair__"}


def test_check_runs_the_solution_afresh_and_reports_the_first_failure() -> None:
    scope = _scope()
    rules.check(scope, "def f(x):\n    return x * 2\n", _spec("base", [[1], [2]], [2, 4]))
    assert scope[rules.BASE_FLAG] is True
    plus = _spec("plus", [[3], [4]], [6, 9])
    with pytest.raises(AssertionError, match="plus input 1: wrong output"):
        rules.check(scope, "def f(x):\n    return x * 2\n", plus)
    with pytest.raises(RuntimeError, match="base input 0: ZeroDivisionError"):
        rules.check(_scope(), "def f(x):\n    return 1 / 0\n", _spec("base", [[1]], [2]))
    with pytest.raises(AssertionError, match="no function 'f'"):
        rules.check(_scope(), "g = 1\n", _spec("base", [[1]], [2]))


def test_plus_check_runs_when_base_failed() -> None:
    """evalplus's plus_status (CodeRM's label) is the plus inputs' verdict alone."""
    scope = _scope()
    with pytest.raises(AssertionError, match="base input 0: wrong output"):
        rules.check(scope, "def f(x):\n    return x\n", _spec("base", [[1]], [2]))
    rules.check(scope, "def f(x):\n    return x\n", _spec("plus", [[1]], [1]))
    assert rules.BASE_FLAG not in scope


def test_an_input_that_overruns_its_limit_times_out() -> None:
    spec = _spec("base", [[1]], [1], limits=[0.05])
    with pytest.raises(TimeoutError, match=r"base input 0 exceeded 0\.05 s"):
        rules.check(_scope(), "def f(x):\n    while True:\n        pass\n", spec)


def test_check_compares_digested_outputs() -> None:
    big = [str(i) for i in range(3000)]
    spec = _spec("base", [[3000]], [None], digests={"0": rules.digest(big)})
    rules.check(_scope(), "def f(n):\n    return [str(i) for i in range(n)]\n", spec)
    with pytest.raises(AssertionError):
        rules.check(_scope(), "def f(n):\n    return [str(i) for i in range(n - 1)]\n", spec)


# ------------------------------------------------------------------ jobs and rows


def test_time_limits_follow_evalplus_defaults() -> None:
    assert input_limits([100.0, 400.0, 3000.0]) == [1.0, 1.6, 12.0]
    assert check_budget([1.0, 1.6]) == pytest.approx(4.6)  # sum + 2 s
    assert check_budget([30.0, 40.0]) == 62.0  # capped at 60 s + 2 s
    assert (
        outputs_profile("humaneval+")
        == f"sbx{SANDBOX_VERSION}/gt-humaneval+/evalplus1-x4-min1000ms"
    )


def test_outputs_job_has_a_base_and_a_plus_check() -> None:
    label = outputs_label("f", doubling_oracle(base_ms=[100.0, 400.0], plus_ms=[10.0]))
    assert label.time_limit_s == pytest.approx(4.6 + 1.0)
    job = label.job(7, "def f(x):\n    return 2 * x\n", 3.0)
    assert [c.key for c in job.checks] == ["gb:7", "g:7"]
    wire = decode_batch(encode_batch([job]))
    asserts = as_asserts(wire["jobs"][0], wire["texts"])  # what the runner makes of it
    assert [c["key"] for c in asserts["checks"]] == ["gb:7", "g:7"]
    scope: dict[str, Any] = {"__name__": "__coderm_pair__", "__builtins__": __builtins__}
    exec(compile(asserts["setup"], "<setup>", "exec"), scope)
    for check in asserts["checks"]:
        exec(compile(check["code"], "<check>", "exec"), scope)  # both pass
    assert scope[rules.BASE_FLAG] is True
    with pytest.raises(ValueError, match="never computed"):
        outputs_label("f", doubling_oracle())


def _result(key: str, outcome: Outcome, ms: float = 1.0, detail: str | None = None) -> JobResult:
    return JobResult(key, outcome, None, None, ms, detail)


def test_label_rows_keep_base_plus_and_headline_verdicts() -> None:
    results = {
        "gb:1": _result("gb:1", Outcome.PASS),
        "g:1": _result("g:1", Outcome.PASS, 2.0),
        "gb:2": _result("gb:2", Outcome.PASS),
        "g:2": _result("g:2", Outcome.FAIL, 2.0, "AssertionError: plus input 4: wrong output"),
        "gb:3": _result("gb:3", Outcome.ERROR, 5.0, "TimeoutError: base input 0 exceeded 1 s"),
        "g:3": _result("g:3", Outcome.PASS, 0.1),
        "g:4": _result("g:4", Outcome.FAIL, 3.0, "AssertionError"),  # HumanEval style
    }
    rows = {r["solution_id"]: r for r in label_rows(results, "P")}
    assert (rows[1]["passed"], rows[1]["base_passed"], rows[1]["duration_ms"]) == (True, True, 3.0)
    assert (rows[2]["passed"], rows[2]["base_passed"], rows[2]["outcome"]) == (False, True, "fail")
    assert rows[2]["detail"] == "AssertionError: plus input 4: wrong output"
    assert (rows[3]["passed"], rows[3]["base_passed"], rows[3]["outcome"]) == (
        False,
        False,
        "timeout",
    )
    assert (rows[4]["passed"], rows[4]["base_passed"], rows[4]["profile"]) == (False, None, "P")
    assert [rows[i]["plus_passed"] for i in (1, 2, 3, 4)] == [True, False, True, None]


# ------------------------------------------------------------------ sandbox output


def _run(task_id: str = "T/1") -> CanonicalRun:
    return CanonicalRun(task_id, "def f(x):\n    return 2 * x\n", "f", doubling_oracle())


def _value(**fields: Any) -> JobResult:
    return JobResult("T/1", Outcome.PASS, None, None, None, None, {"task_id": "T/1", **fields})


def test_parse_results_validates_counts_and_keeps_reasons() -> None:
    good = _value(base="[2, 4]", plus="[6]", base_ms=[1, 2], plus_ms=[1])
    results = parse_results({"T/1": good}, [_run()])
    assert isinstance(results["T/1"], Expected)
    short = _value(base="[2]", plus="[6]", base_ms=[1, 2], plus_ms=[1])
    assert "counts" in str(parse_results({"T/1": short}, [_run()])["T/1"])
    failed = JobResult(
        "T/1", Outcome.ERROR, None, None, None, "MemoryError:", {"error": "MemoryError: "}
    )
    assert parse_results({"T/1": failed}, [_run()]) == {"T/1": "MemoryError: "}
    assert parse_results({}, [_run()]) == {"T/1": "no result from the sandbox"}
    broken = JobResult("T/1", Outcome.SANDBOX_ERROR, None, None, None, "runner: OSError")
    assert parse_results({"T/1": broken}, [_run()]) == {"T/1": "runner: OSError"}
    unreadable = _value(base="[2, 4", plus="[6]", base_ms=[1, 2], plus_ms=[1])
    assert "unreadable" in str(parse_results({"T/1": unreadable}, [_run()])["T/1"])

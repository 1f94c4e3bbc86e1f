"""Rewards from verdicts (shared/core/rewards.py), response extraction, and the
gateway's pure helpers (request keys, OpenRLHF items, labels)."""

from __future__ import annotations

import pytest

from services.gateway.app import openrlhf_items, request_key
from services.gateway.schemas import (
    INLINE_BENCHMARK,
    InlineProblem,
    OpenRLHFRequest,
    ProblemRef,
    problem_from_label,
)
from shared.core.extraction import extract_response
from shared.core.rewards import Reward, Verdicts, group_rewards
from shared.core.tokens import new_token, token_hash
from shared.enums import ExtractionStatus

BANK = [1, 2, 3, 4]
WEIGHTS = {1: 1, 2: 2, 3: 1, 4: 1}


def v(*passed: int) -> Verdicts:
    return Verdicts(True, frozenset(passed))


def test_pass_fraction_and_all_pass() -> None:
    (full, half, none, no_code) = group_rewards(
        [v(1, 2, 3, 4), v(1, 2), v(), Verdicts(False)], BANK, WEIGHTS
    )
    assert (full.tests_run, full.tests_passed, full.pass_fraction, full.all_pass) == (4, 4, 1, 1)
    assert (half.pass_fraction, half.all_pass) == (0.5, 0.0)
    assert (none.pass_fraction, none.majority, none.codet) == (0.0, 0.0, 0.0)
    assert no_code == Reward(0, 0, 0.0, 0.0, 0.0, 0.0)


def test_majority_keeps_the_most_tests_then_the_most_common_set() -> None:
    """CodeRM's vote: the most tests passed, then the commonest passed set."""
    rewards = group_rewards([v(1, 2), v(1, 2), v(3, 4), v(1)], BANK, WEIGHTS)
    assert [r.majority for r in rewards] == [1.0, 1.0, 0.0, 0.0]
    tied = group_rewards([v(1, 2), v(3, 4)], BANK, WEIGHTS)
    assert [r.majority for r in tied] == [1.0, 1.0]
    assert [r.majority for r in group_rewards([v(), v()], BANK, WEIGHTS)] == [0.0, 0.0]


def test_codet_scores_consensus_sets_against_the_groups_top() -> None:
    """Summed weights of the set's tests x sqrt(its size), over the group's top."""
    rewards = group_rewards([v(2), v(2), v(1, 3), v()], BANK, WEIGHTS)
    top = 2 * 2**0.5  # {2}: weight 2, two responses
    assert [r.codet for r in rewards] == pytest.approx([1.0, 1.0, 2 / top, 0.0])


def test_a_passed_test_outside_the_bank_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the bank"):
        group_rewards([v(9)], BANK, WEIGHTS)


def test_response_extraction_takes_a_fence_or_bare_code() -> None:
    assert extract_response("here:\n```python\nx = 1\n```").code == ("x = 1",)
    assert extract_response("def f():\n    return 1\n").code == ("def f():\n    return 1\n",)
    assert extract_response("I cannot.").status is ExtractionStatus.NO_CODE_BLOCK
    assert extract_response("").status is ExtractionStatus.EMPTY
    two = "```python\na = 1\n```\n```python\nb = 2\n```"
    assert extract_response(two).status is ExtractionStatus.MULTIPLE_CODE_BLOCKS


def test_openrlhf_queries_become_items_grouped_by_prompt() -> None:
    body = OpenRLHFRequest(
        query=["P1answer a", "P1answer b", "other"],
        prompts=["P1", "P1", "P2"],
        labels=[
            "humaneval:HumanEval/0",
            "humaneval:HumanEval/0",
            '{"benchmark": "b", "task_id": "t"}',
        ],
    )
    items = openrlhf_items(body)
    assert [response for _, response, _ in items] == ["answer a", "answer b", "other"]
    assert [group for _, _, group in items] == ["P1", "P1", "P2"]
    assert items[0][0] == ProblemRef(benchmark="humaneval", task_id="HumanEval/0")
    assert items[2][0] == ProblemRef(benchmark="b", task_id="t")
    with pytest.raises(ValueError, match="labels must name"):
        openrlhf_items(OpenRLHFRequest(query=["q"], prompts=["p"]))
    with pytest.raises(ValueError, match="BENCHMARK:TASK_ID"):
        openrlhf_items(OpenRLHFRequest(query=["q"], labels=["nocolon"]))


def test_request_keys_and_tokens() -> None:
    """A request id keys a request whatever its body; without one, the body does;
    tokens differ and only their hash is kept."""
    assert request_key("rewards", 1, "r1", b"a") == request_key("rewards", 1, "r1", b"b")
    assert request_key("rewards", 1, None, b"a") != request_key("rewards", 1, None, b"b")
    assert request_key("rewards", 1, "r1", b"a") != request_key("rewards", 2, "r1", b"a")
    one, two = new_token(), new_token()
    assert one != two and one.startswith("crm_")
    assert token_hash(one) == token_hash(one) != token_hash(two) and len(token_hash(one)) == 64


def test_inline_problems_are_named_by_their_content() -> None:
    """The same text is the same problem; any change of prompt, entry point or test
    prompt is another; a label may give a problem inline; bad names are refused."""
    one = InlineProblem(prompt="def f(x):\n", entry_point="f")
    assert one.ref() == InlineProblem(prompt="def f(x):\n", entry_point="f").ref()
    assert one.ref().benchmark == INLINE_BENCHMARK
    assert one.ref().task_id.startswith("sha256:") and len(one.ref().task_id) == 71
    others = [
        InlineProblem(prompt="def f(y):\n", entry_point="f"),
        InlineProblem(prompt="def f(x):\n", entry_point="g"),
        InlineProblem(prompt="def f(x):\n", entry_point="f", test_prompt="assert "),
    ]
    assert len({one.ref(), *(o.ref() for o in others)}) == 4
    assert problem_from_label('{"prompt": "def f(x):\\n", "entry_point": "f"}') == one
    assert problem_from_label("humaneval:HumanEval/0") == ProblemRef(
        benchmark="humaneval", task_id="HumanEval/0"
    )
    with pytest.raises(ValueError):
        InlineProblem(prompt="def f(x):\n", entry_point="not a name")

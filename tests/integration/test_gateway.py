"""The reward gateway on the real stack: OpenRLHF's remote reward request as its source
writes it, the native API, tokens, limits, idempotent retries, hostile responses."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.messages import ExecutePairs
from tests.stack import (
    Services,
    Stack,
    cli,
    dead_reason,
    publish,
    query,
    queue_depth,
    submit,
    take_dead,
    wait_for,
    wait_run_finished,
)

pytestmark = pytest.mark.integration

RUN_ARGS = (
    "--benchmark",
    "humaneval",
    "--policy",
    "codegen16b",
    "--test-model",
    "codegen16b",
    "--n",
    "8",
    "--m",
    "10",
    "--problems",
    "5",
    "--assert-time-limit",
    "0.25",  # a profile of its own: the verdicts of this module only
)

HOSTILE = {
    "loop": "def {entry}(*args, **kwargs):\n    while True:\n        pass\n",
    "fork bomb": "import os\ndef {entry}(*args, **kwargs):\n    while True:\n        os.fork()\n",
    "output flood": "def {entry}(*args, **kwargs):\n    print('x' * 50_000_000)\n",
    "network": (
        "import socket\ndef {entry}(*args, **kwargs):\n"
        "    socket.create_connection(('1.1.1.1', 80), timeout=5)\n"
    ),
    "forged result": (
        "import os, sys\nsys.stdout.write('PASS\\n' * 100)\nsys.stdout.flush()\n"
        "os._exit(0)\ndef {entry}(*args, **kwargs):\n    return None\n"
    ),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Gateway:
    """The running gateway: its URL, a token, the run whose tests are the banks."""

    url: str
    token: str
    run_id: str
    problems: list[dict[str, Any]]

    def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}",
            json=body,
            params={"token": self.token, **params},
            timeout=300,
        )


@pytest.fixture(scope="module")
def gateway(stack: Stack, services: Services, imported: None) -> Iterator[Gateway]:
    """Banks from a finished run, a token, and the gateway running."""
    run_id = submit(stack, *RUN_ARGS)
    wait_run_finished(stack, services, run_id, timeout=300)
    made = cli(stack, "bank", "create", "--from-run", run_id)
    assert made.returncode == 0, made.stdout + made.stderr
    added = cli(stack, "token", "add", f"trainer-{run_id[:8]}")
    assert added.returncode == 0, added.stdout + added.stderr
    token = next(w for w in added.stdout.split() if w.startswith("crm_"))
    port = free_port()
    services.extra_env["CODERM_PORT"] = str(port)
    # banks on first use come from the replayed CodeGen test samples, 100 a problem
    services.extra_env["CODERM_BANK_TEST_MODEL"] = "codegen16b"
    services.extra_env["CODERM_BANK_TESTS"] = "100"
    services.extra_env["CODERM_BANK_STALL_S"] = "20"  # a failed bank run is retried after
    services.start("gateway")
    url = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        try:
            return httpx.post(f"{url}/v1/rewards", json={}).status_code == 401
        except httpx.TransportError:
            return False

    wait_for(listening, 60, "the gateway to listen")
    problems = [
        dict(r)
        for r in query(
            stack,
            "SELECT p.id, p.task_id, p.prompt, p.entry_point FROM run_problems rp"
            " JOIN problems p ON p.id = rp.problem_id"
            " JOIN test_banks b ON b.problem_id = p.id AND b.source = 'run:' || rp.run_id"
            " WHERE rp.run_id = $1 ORDER BY p.position",
            uuid.UUID(run_id),
        )
    ]
    assert len(problems) >= 3  # problems whose test samples yielded tests have banks
    try:
        yield Gateway(url, token, run_id, problems)
    finally:
        if "gateway" in services.processes:
            services.terminate("gateway")


def _solutions(stack: Stack, run_id: str, problem_id: int) -> list[tuple[int, str]]:
    rows = query(
        stack,
        "SELECT DISTINCT s.id, s.code FROM v_run_solution_samples v JOIN solutions s"
        " ON s.id = v.solution_id WHERE v.run_id = $1 AND v.problem_id = $2 ORDER BY s.id",
        uuid.UUID(run_id),
        problem_id,
    )
    return [(r["id"], r["code"]) for r in rows]


def _pass_fraction(stack: Stack, run_id: str, problem_id: int, solution_id: int) -> float:
    """From the run's stored matrix: tests of the problem the solution passes / tests."""
    rows = query(
        stack,
        "SELECT count(*) AS tests, count(*) FILTER (WHERE e.passed) AS passed"
        " FROM v_run_tests t JOIN runs r ON r.id = t.run_id"
        " LEFT JOIN executions e ON e.unit_test_id = t.unit_test_id"
        "  AND e.solution_id = $3 AND e.profile = r.exec_profile"
        " WHERE t.run_id = $1 AND t.problem_id = $2",
        uuid.UUID(run_id),
        problem_id,
        solution_id,
    )[0]
    return float(rows["passed"]) / float(rows["tests"])


def _openrlhf_body(prompts: list[str], responses: list[str], labels: list[str]) -> dict[str, Any]:
    """What OpenRLHF's remote_rm_fn posts: ``{"query": queries, "prompts": prompts,
    "labels": labels}``, a query being the prompt followed by the response."""
    queries = [p + r for p, r in zip(prompts, responses, strict=True)]
    return {"query": queries, "prompts": prompts, "labels": labels}


def test_openrlhf_request_gets_the_rewards_of_the_stored_matrix(
    stack: Stack, gateway: Gateway
) -> None:
    """Every solution of the run, sent as OpenRLHF sends rollouts, gets the pass
    fraction the run's stored verdicts give it; nothing new is executed for them."""
    prompts, responses, labels, expected = [], [], [], []
    for problem in gateway.problems:
        for sid, code in _solutions(stack, gateway.run_id, problem["id"]):
            prompts.append(problem["prompt"])
            responses.append(f"Here it is:\n```python\n{code}\n```\n")
            labels.append(f"humaneval:{problem['task_id']}")
            expected.append(_pass_fraction(stack, gateway.run_id, problem["id"], sid))
    before = query(stack, "SELECT count(*) AS n FROM executions")[0]["n"]
    reply = gateway.post("/openrlhf", _openrlhf_body(prompts, responses, labels))
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert "rewards" in data  # what OpenRLHF's request_api_wrapper asserts and reads
    assert data["rewards"] == pytest.approx(expected)
    assert any(0 < r < 1 for r in expected) and any(r == 0 for r in expected)
    assert query(stack, "SELECT count(*) AS n FROM executions")[0]["n"] == before
    all_pass = gateway.post(
        "/openrlhf", _openrlhf_body(prompts, responses, labels), reward="all_pass"
    ).json()["rewards"]
    assert all_pass == [1.0 if r == 1.0 else 0.0 for r in expected]


def test_hostile_responses_get_zero_and_their_neighbours_their_due(
    stack: Stack, gateway: Gateway
) -> None:
    """Loops, fork bombs, floods, network and forged results are contained by the
    sandbox and rewarded 0; a correct solution in the same request keeps its reward."""
    problem = gateway.problems[0]
    canonical = query(
        stack, "SELECT canonical_solution FROM problems WHERE id = $1", problem["id"]
    )[0]["canonical_solution"]
    good = problem["prompt"] + canonical
    items = [
        {
            "problem": {"benchmark": "humaneval", "task_id": problem["task_id"]},
            "response": f"```python\n{code.format(entry=problem['entry_point'])}```",
        }
        for code in HOSTILE.values()
    ]
    items.append(
        {
            "problem": {"benchmark": "humaneval", "task_id": problem["task_id"]},
            "response": good,
        }
    )
    reply = gateway.post("/v1/rewards", {"items": items, "meta": {"step": 7}})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    for name, result in zip([*HOSTILE, "good"], results, strict=True):
        if name == "good":
            assert result["extraction"] == "ok" and result["tests_run"] > 0
            assert result["rewards"]["pass_fraction"] > 0, result
        else:
            assert result["rewards"] == {
                "pass_fraction": 0.0,
                "all_pass": 0.0,
                "majority": 0.0,
                "codet": 0.0,
            }, (name, result)
    no_code = gateway.post(
        "/v1/rewards",
        {"items": [{"problem": items[0]["problem"], "response": "I cannot solve this."}]},
    ).json()["results"][0]
    assert no_code["extraction"] == "no_code_block" and no_code["tests_run"] == 0


def test_a_retried_request_returns_the_same_rewards_without_executing(
    stack: Stack, gateway: Gateway
) -> None:
    """The same request id twice: one execution, the same answer, one stored request."""
    problem = gateway.problems[1]
    fresh = f"```python\n{problem['prompt']}    return None  # {uuid.uuid4().hex}\n```"
    body = {
        "items": [
            {
                "problem": {"benchmark": "humaneval", "task_id": problem["task_id"]},
                "response": fresh,
                "group": "g",
            }
        ],
        "request_id": f"retry-{uuid.uuid4().hex}",
    }
    first = gateway.post("/v1/rewards", body)
    assert first.status_code == 200, first.text
    executions = query(stack, "SELECT count(*) AS n FROM executions")[0]["n"]
    second = gateway.post("/v1/rewards", body)
    assert second.json() == first.json()
    assert query(stack, "SELECT count(*) AS n FROM executions")[0]["n"] == executions
    stored = query(
        stack,
        "SELECT count(*) AS n FROM reward_requests WHERE meta ->> 'request_id' = $1",
        body["request_id"],
    )[0]["n"]
    assert stored == 1


def test_killing_the_gateway_mid_request_loses_nothing(
    stack: Stack, services: Services, gateway: Gateway
) -> None:
    """A request in flight when the gateway is killed: the retry with the same id (to
    the restarted gateway) gets its rewards, and no pair is executed twice."""
    body = _slow_request(gateway.problems[2], count=40, sleep_s=0.01, tag="killed")
    codes = body["items"]
    logged_before = _pairs_logged(stack)
    threading.Thread(target=lambda: _quiet_post(gateway, body), daemon=True).start()
    wait_for(
        lambda: bool(
            query(
                stack,
                "SELECT 1 FROM reward_requests WHERE meta ->> 'request_id' = $1",
                body["request_id"],
            )
        ),
        60,
        "the request to be received",
        every=0.05,
    )
    services.kill("gateway")
    services.start("gateway")
    wait_for(lambda: _listening(gateway), 60, "the restarted gateway")
    reply = gateway.post("/v1/rewards", body)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert len(results) == len(codes) and all(r["extraction"] == "ok" for r in results)
    stored = _stored_pairs(stack, body["request_id"])
    assert stored > 0
    assert _pairs_logged(stack) - logged_before == stored  # each pair executed once


def test_killing_an_executor_mid_request_loses_nothing(
    stack: Stack, services: Services, gateway: Gateway
) -> None:
    """An executor killed while it runs a request's pairs: the request is redelivered to
    the restarted executor, the trainer gets its rewards, and every pair the executors
    report running is stored once (a run killed before it stored anything is run
    again, whole)."""
    body = _slow_request(gateway.problems[1], count=60, sleep_s=0.05, tag="executor-killed")
    codes = body["items"]
    logged_before = _pairs_logged(stack)
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(gateway.post("/v1/rewards", body)))
    sender.start()
    wait_for(lambda: _sandbox_running(), 60, "the request's sandbox", every=0.05)
    services.kill("executor")
    services.start("executor")
    sender.join(timeout=300)
    assert answers and answers[0].status_code == 200, answers
    results = answers[0].json()["results"]
    assert len(results) == len(codes) and all(r["tests_run"] > 0 for r in results)
    stored = _stored_pairs(stack, body["request_id"])
    assert _pairs_logged(stack) - logged_before == stored > 0


def _sandbox_running() -> bool:
    """Whether a sandbox container of ours is running now."""
    listed = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=coderm.sandbox=1"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(listed.stdout.strip())


def _slow_request(problem: dict[str, Any], count: int, sleep_s: float, tag: str) -> Any:
    """A request of ``count`` distinct responses to ``problem`` that each sleep a little
    (so an execution is still running when a test kills something), with a fresh id."""
    codes = [
        f"{problem['prompt']}    import time\n    time.sleep({sleep_s})\n    return {i}\n"
        for i in range(count)
    ]
    return {
        "items": [
            {"problem": {"benchmark": "humaneval", "task_id": problem["task_id"]}, "response": c}
            for c in codes
        ],
        "request_id": f"{tag}-{uuid.uuid4().hex}",
    }


def _stored_pairs(stack: Stack, request_id: str) -> int:
    """Verdicts stored under their banks' profile for the solutions of a request."""
    return int(
        query(
            stack,
            "SELECT count(*) AS n FROM executions e"
            " JOIN reward_items i ON i.solution_id = e.solution_id"
            " JOIN reward_requests r ON r.request_key = i.request_key"
            " JOIN test_banks b ON b.id = i.bank_id AND e.profile = b.exec_profile"
            " WHERE r.meta ->> 'request_id' = $1",
            request_id,
        )[0]["n"]
    )


def _quiet_post(gateway: Gateway, body: Any) -> None:
    with contextlib.suppress(httpx.TransportError):
        gateway.post("/v1/rewards", body)


def _listening(gateway: Gateway) -> bool:
    try:
        return httpx.post(f"{gateway.url}/v1/rewards", json={}).status_code == 401
    except httpx.TransportError:
        return False


def _pairs_logged(stack: Stack) -> int:
    total = 0
    for log in stack.log_dir.glob("executor*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"pairs.executed"' in line:
                total += int(json.loads(line)["pairs"])
    return total


def test_select_picks_by_agreement(stack: Stack, gateway: Gateway) -> None:
    """Best-of-N: the response CodeT's agreement puts first."""
    problem = gateway.problems[0]
    canonical = query(
        stack, "SELECT canonical_solution FROM problems WHERE id = $1", problem["id"]
    )[0]["canonical_solution"]
    responses = [
        "no code here",
        f"```python\n{problem['prompt']}    return None\n```",
        f"```python\n{problem['prompt']}{canonical}```",
    ]
    reply = gateway.post(
        "/v1/select",
        {
            "problem": {"benchmark": "humaneval", "task_id": problem["task_id"]},
            "responses": responses,
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["best"] == 2 and reply.json()["scores"][2] == 1.0


def test_tokens_limits_and_backpressure(stack: Stack, services: Services, gateway: Gateway) -> None:
    """401 without a token or with a revoked one; 413 past the body limit; 422 for an
    unknown problem or a bad label; 429 with Retry-After while reward work queues up
    (a request answered before still gets its stored answer)."""
    item = {"problem": {"benchmark": "humaneval", "task_id": gateway.problems[0]["task_id"]}}
    body = {"items": [{**item, "response": "x = 1"}]}
    assert httpx.post(f"{gateway.url}/v1/rewards", json=body).status_code == 401
    assert (
        httpx.post(f"{gateway.url}/v1/rewards", json=body, params={"token": "crm_nope"}).status_code
        == 401
    )
    added = cli(stack, "token", "add", "short-lived")
    short = next(w for w in added.stdout.split() if w.startswith("crm_"))
    headers = {"Authorization": f"Bearer {short}"}
    assert httpx.post(f"{gateway.url}/v1/rewards", json=body, headers=headers).status_code == 200
    assert cli(stack, "token", "revoke", "short-lived").returncode == 0
    assert httpx.post(f"{gateway.url}/v1/rewards", json=body, headers=headers).status_code == 401

    huge = {"items": [{**item, "response": "x" * (9 << 20)}]}
    assert gateway.post("/v1/rewards", huge).status_code == 413
    unknown = {
        "items": [{"problem": {"benchmark": "humaneval", "task_id": "nope"}, "response": "x"}]
    }
    refused = gateway.post("/v1/rewards", unknown)
    assert refused.status_code == 422 and "humaneval has no problem nope" in refused.text
    bad = gateway.post("/openrlhf", {"query": ["q"], "prompts": ["p"], "labels": ["no-colon"]})
    assert bad.status_code == 422 and "BENCHMARK:TASK_ID" in bad.text

    assert gateway.post("/v1/rewards", body).status_code == 200
    services.terminate("executor")
    bank = query(stack, "SELECT id, problem_id FROM test_banks ORDER BY id LIMIT 1")[0]
    sid = query(stack, "SELECT id FROM solutions WHERE problem_id = $1 LIMIT 1", bank["problem_id"])
    waiting = [
        ExecutePairs(
            bank_id=bank["id"],
            solution_ids=[sid[0]["id"]],
            reply_to="nobody",
            correlation_id=str(n),
        )
        for n in range(70)
    ]
    asyncio.run(publish(stack, *waiting))
    assert queue_depth(stack, "pairs") == len(waiting)
    try:
        busy = gateway.post("/v1/rewards", {"items": [{**item, "response": "x = 2"}]})
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "2"
        assert gateway.post("/v1/rewards", body).status_code == 200  # answered before
    finally:
        services.start("executor")
    wait_for(lambda: queue_depth(stack, "pairs") == 0, 120, "the executor to drain the queue")


def test_the_verl_client_scores_through_the_gateway(
    stack: Stack, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """services/gateway/client.py as verl calls it: per sample and per batch, with the
    ground truth naming the problem; the same rewards as the native API."""
    from services.gateway import client

    monkeypatch.setenv("CODERM_REWARD_URL", gateway.url)
    monkeypatch.setenv("CODERM_REWARD_TOKEN", gateway.token)
    problem = gateway.problems[0]
    (sid, code), *_ = _solutions(stack, gateway.run_id, problem["id"])
    label = f"humaneval:{problem['task_id']}"
    response = f"```python\n{code}\n```"
    expected = _pass_fraction(stack, gateway.run_id, problem["id"], sid)
    assert client.compute_score("humaneval", response, label) == pytest.approx(expected)
    batch = client.compute_score_batch(["humaneval"] * 2, [response, "no code"], [label] * 2)
    assert batch == pytest.approx([expected, 0.0])
    monkeypatch.setenv("CODERM_REWARD_NAME", "all_pass")
    assert client.compute_score("humaneval", response, label) == (1.0 if expected == 1 else 0.0)


def _bank_runs(stack: Stack) -> list[asyncpg.Record]:
    return query(
        stack,
        "SELECT r.id, r.state, array_agg(p.task_id ORDER BY p.task_id) AS tasks FROM runs r"
        " JOIN run_problems rp ON rp.run_id = r.id JOIN problems p ON p.id = rp.problem_id"
        " WHERE r.config ->> 'purpose' = 'bank' GROUP BY r.id, r.state ORDER BY r.created_at",
    )


def _stored_passes(stack: Stack, bank_id: int, tag: str) -> int:
    """Tests of the bank the stored solution tagged ``tag`` passes, by the stored verdicts."""
    return int(
        query(
            stack,
            "SELECT count(*) FILTER (WHERE e.passed) AS n FROM solutions s"
            " JOIN test_banks b ON b.problem_id = s.problem_id AND b.id = $1"
            " JOIN test_bank_tests t ON t.bank_id = b.id"
            " JOIN executions e ON e.solution_id = s.id AND e.unit_test_id = t.unit_test_id"
            "  AND e.profile = b.exec_profile"
            " WHERE s.code LIKE '%# ' || $2 || '%'",
            bank_id,
            tag,
        )[0]["n"]
    )


def test_a_problem_without_a_bank_gets_one_on_first_use(stack: Stack, gateway: Gateway) -> None:
    """Two requests at once for problems that have no bank: one bank run of the test
    model is made for them, both requests wait for it and get the rewards the new
    bank's stored verdicts give; the same request again runs nothing, and new
    responses reuse the banks."""
    tasks = ["HumanEval/16", "HumanEval/19"]
    problems = {
        r["task_id"]: r
        for r in query(
            stack,
            "SELECT p.id, p.task_id, p.prompt, p.canonical_solution FROM problems p"
            " JOIN benchmarks b ON b.id = p.benchmark_id"
            " WHERE b.name = 'humaneval' AND p.task_id = ANY($1::text[])",
            tasks,
        )
    }
    assert not query(
        stack,
        "SELECT 1 FROM test_banks WHERE problem_id = ANY($1::int[])",
        [p["id"] for p in problems.values()],
    )
    before = len(_bank_runs(stack))
    tag = uuid.uuid4().hex[:8]

    def items(n: int) -> list[dict[str, Any]]:
        out = []
        for task in tasks:
            prompt = problems[task]["prompt"]
            for kind, code in (
                ("right", prompt + problems[task]["canonical_solution"]),
                ("wrong", prompt + "    return None\n"),
            ):
                out.append(
                    {
                        "problem": {"benchmark": "humaneval", "task_id": task},
                        "response": f"```python\n{code}# {tag}-{n}-{task}-{kind}\n```",
                        "group": task,
                    }
                )
        return out

    replies: dict[int, httpx.Response] = {}

    def send(n: int) -> None:
        replies[n] = gateway.post("/v1/rewards", {"items": items(n)})

    threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = _bank_runs(stack)
    assert len(runs) == before + 1, runs
    assert runs[-1]["state"] == "finished" and sorted(runs[-1]["tasks"]) == tasks
    banks = {
        b["task_id"]: b
        for b in query(
            stack,
            "SELECT b.id, p.task_id, count(t.unit_test_id) AS tests FROM test_banks b"
            " JOIN problems p ON p.id = b.problem_id JOIN test_bank_tests t ON t.bank_id = b.id"
            " WHERE b.source = $1 GROUP BY b.id, p.task_id",
            f"run:{runs[-1]['id']}",
        )
    }
    assert set(banks) == set(tasks)
    for n, reply in replies.items():
        assert reply.status_code == 200, reply.text
        results = reply.json()["results"]
        for item, result in zip(items(n), results, strict=True):
            task = item["problem"]["task_id"]
            bank = banks[task]
            kind = "right" if "-right" in item["response"] else "wrong"
            assert result["extraction"] == "ok"
            assert result["tests_run"] == bank["tests"]
            passed = _stored_passes(stack, bank["id"], f"{tag}-{n}-{task}-{kind}")
            assert result["tests_passed"] == passed
            assert result["rewards"]["pass_fraction"] == pytest.approx(passed / bank["tests"])
        right = [r["tests_passed"] for r in results[::2]]
        wrong = [r["tests_passed"] for r in results[1::2]]
        assert sum(right) > sum(wrong), results
    executions = query(stack, "SELECT count(*) AS n FROM executions")[0]["n"]
    again = gateway.post("/v1/rewards", {"items": items(0)})
    assert again.status_code == 200, again.text
    assert again.json() == replies[0].json()
    assert query(stack, "SELECT count(*) AS n FROM executions")[0]["n"] == executions
    fresh = gateway.post("/v1/rewards", {"items": items(2)})  # new code, the same banks
    assert fresh.status_code == 200, fresh.text
    assert len(_bank_runs(stack)) == before + 1


def test_an_inline_problem_gets_a_bank_once_its_test_model_answers(
    stack: Stack, gateway: Gateway, tmp_path: Path
) -> None:
    """A problem given by its text is stored once under its content hash, and its bank
    comes from a run of the test model. The replayed test model has no samples for a
    problem it never saw: its bank run fails, and asking again within the stall time
    gets that failure without a second run. Once samples for it are imported (CodeT's
    own file format, joined by prompt), the next request past the stall time makes a
    new bank run and gets the rewards its tests give."""
    name = f"triple_{uuid.uuid4().hex[:8]}"
    problem = {
        "prompt": f'def {name}(x):\n    """Three times x."""\n',
        "entry_point": name,
        "test_prompt": f'def {name}(x):\n    """Three times x."""\n    pass\n\n'
        f"# check the correctness of {name}\nassert ",
    }
    right = f"```python\ndef {name}(x):\n    return 3 * x\n```"
    wrong = f"```python\ndef {name}(x):\n    return x + 3\n```"
    body = {
        "items": [
            {"problem": problem, "response": response, "group": "g"} for response in (right, wrong)
        ]
    }
    before = len(_bank_runs(stack))
    for _ in range(2):
        reply = gateway.post("/v1/rewards", body)
        assert reply.status_code == 422, reply.text
        assert "test-bank run" in reply.text and "failed" in reply.text
    stored = query(
        stack,
        "SELECT p.task_id, p.ground_truth FROM problems p JOIN benchmarks b"
        " ON b.id = p.benchmark_id WHERE b.name = 'inline' AND p.entry_point = $1",
        name,
    )
    assert len(stored) == 1 and stored[0]["ground_truth"] == "none"
    assert stored[0]["task_id"].startswith("sha256:")
    runs = _bank_runs(stack)
    assert len(runs) == before + 1 and runs[-1]["tasks"] == [stored[0]["task_id"]]
    # the failed run's score request is dead-lettered with its reason (and taken out,
    # so the tests after this one find no dead letter of theirs)
    (dead,) = asyncio.run(take_dead(stack, "score", 1))
    assert "needs at least one candidate sample" in dead_reason(dead)

    samples = {
        "solution": (problem["prompt"], ["    return 3 * x\n"]),
        "test": (
            problem["test_prompt"],
            [f" {name}(1) == 3\nassert {name}(2) == 6\n", f" {name}(0) == 0\n"],
        ),
    }
    for role, (prompt, texts) in samples.items():
        path = tmp_path / f"{role}.jsonl.gz"
        with gzip.open(path, "wt") as out:
            out.write(json.dumps({"prompt": prompt, "samples": texts}) + "\n")
        args = ("--benchmark", "inline", "--model", "codegen16b", "--role", role)
        imported = cli(stack, "import-completions", str(path), *args)
        assert imported.returncode == 0, imported.stdout + imported.stderr

    answers: list[httpx.Response] = []

    def answered() -> bool:
        answers.append(gateway.post("/v1/rewards", body))
        return answers[-1].status_code == 200

    wait_for(answered, 180, "a bank for the inline problem", every=2)
    results = answers[-1].json()["results"]
    assert [r["tests_passed"] for r in results] == [3, 0]
    assert [r["rewards"]["pass_fraction"] for r in results] == [1.0, 0.0]
    runs = _bank_runs(stack)
    assert len(runs) == before + 2 and runs[-1]["state"] == "finished"
    bad = gateway.post(
        "/v1/rewards",
        {"items": [{"problem": {**problem, "entry_point": "not a name"}, "response": "x"}]},
    )
    assert bad.status_code == 422

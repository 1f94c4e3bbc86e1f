"""The reward gateway under a GRPO-shaped load, beside ``coderm exec-pairs`` on the same
pairs (the throughput ceiling).

In a database and queues of its own, with services it starts itself (the
infrastructure must be up: ``deploy/local/up.sh --infra-only``): imports the CodeT
HumanEval set with its test samples as CodeRM-style unittest classes, scores the first
``--prompts`` problems with ``--bank-tests`` test samples each (one solution sample)
and makes test banks from that run, then sends the gateway GRPO steps: every prompt's
``--group`` responses (CodeGen-16B's solution samples 1, 2, ... as bare code, each with
a comment naming the step, so no verdict is cached) in one request a prompt.

It prints, side by side:

- one response at a time against its bank (sequential requests): latency p50 / p95;
- steps at rising concurrency (requests in flight): latency p50 / p95 / p99 and
  rewards/s (responses scored a second) and pairs/s;
- ``coderm exec-pairs --profile strict`` on the same (solution, test) pairs of one
  step: pairs/s, and the gateway's best pairs/s as a share of it.

    .venv/bin/python -m bench.rewards_load [--prompts 64] [--group 8] [--bank-tests 10]
        [--concurrency 1,4,16] [--reward-slots 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.pipeline_unittest import DATA, import_set
from tests.stack import (
    Services,
    Stack,
    cli,
    consumer_count,
    create_stack,
    drop_stack,
    query,
    run_services,
    submit,
    wait_for,
    wait_run_finished,
)


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def prepare(stack: Stack, services: Services, prompts: int, bank_tests: int) -> str:
    """Import, score the bank run, make banks and a token; the token."""
    import_set(stack, DATA)
    run_id = submit(
        stack,
        *("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b-ut"),
        *("--n", "1", "--m", str(bank_tests), "--problems", str(prompts)),
    )
    wait_run_finished(stack, services, run_id, timeout=3600)
    made = cli(stack, "bank", "create", "--from-run", run_id)
    assert made.returncode == 0, made.stdout + made.stderr
    added = cli(stack, "token", "add", "bench")
    return next(w for w in added.stdout.split() if w.startswith("crm_"))


def responses(stack: Stack, prompts: int, group: int) -> dict[str, list[str]]:
    """Per task with a bank: the prompt + solution bodies of samples 1..group."""
    rows = query(
        stack,
        "SELECT p.task_id, p.prompt, c.sample_index, c.text FROM completions c"
        " JOIN problems p ON p.id = c.problem_id JOIN models m ON m.id = c.model_id"
        " JOIN test_banks b ON b.problem_id = p.id"
        " WHERE m.name = 'codegen16b' AND c.role = 'solution'"
        " AND c.sample_index BETWEEN 1 AND $1 ORDER BY p.position, c.sample_index",
        group,
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["task_id"], []).append(r["prompt"] + r["text"])
    return dict(list(out.items())[:prompts])


def step_body(task: str, codes: list[str], tag: str) -> dict[str, Any]:
    """One prompt's request: its responses as one group, made unique by ``tag``."""
    return {
        "items": [
            {
                "problem": {"benchmark": "humaneval", "task_id": task},
                "response": f"{code}\n# {tag}\n",
                "group": task,
            }
            for code in codes
        ]
    }


async def send_all(
    url: str, token: str, bodies: list[dict[str, Any]], concurrency: int, pause: float = 0.0
) -> tuple[list[float], float]:
    """Post every body with ``concurrency`` in flight (each worker waiting ``pause``
    seconds after each answer); latencies and wall seconds."""
    latencies: list[float] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            reply = await client.post(f"{url}/v1/rewards", json=body, headers=headers)
            reply.raise_for_status()
            latencies.append(time.perf_counter() - started)
            if pause:
                await asyncio.sleep(pause)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def exec_pairs_rate(stack: Stack, tag: str) -> tuple[int, float]:
    """``coderm exec-pairs --profile strict`` on the pairs of the step tagged ``tag``
    (their solutions and bank tests, as stored); (pairs, seconds)."""
    rows = query(
        stack,
        "SELECT p.task_id, s.id AS sol, t.id AS ut, s.code || E'\\n\\n' || t.code AS code"
        " FROM reward_items i JOIN solutions s ON s.id = i.solution_id"
        " JOIN problems p ON p.id = i.problem_id"
        " JOIN test_bank_tests bt ON bt.bank_id = i.bank_id"
        " JOIN unit_tests t ON t.id = bt.unit_test_id"
        " WHERE s.code LIKE $1",
        f"%# {tag}%",
    )
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.jsonl"
        pairs.write_text(
            "".join(
                json.dumps(
                    {
                        "task_id": r["task_id"],
                        "sol_id": r["sol"],
                        "ut_id": r["ut"],
                        "code": r["code"],
                    }
                )
                + "\n"
                for r in rows
            )
        )
        started = time.perf_counter()
        done = cli(
            stack,
            "exec-pairs",
            *("--input", str(pairs), "--output", str(Path(tmp) / "out.jsonl")),
            *("--profile", "strict"),
            timeout=3600,
        )
        seconds = time.perf_counter() - started
        assert done.returncode == 0, done.stdout + done.stderr
    return len(rows), seconds


def main() -> None:
    """Prepare the slice, run the loads, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--bank-tests", type=int, default=10)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--reward-slots", type=int, default=2)
    parser.add_argument("--singles", type=int, default=30)
    parser.add_argument(
        "--warm",
        default="0,2",
        help="warm sandboxes of the executor for the single-response runs, in turn;"
        " the last value stays for the steps",
    )
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between single requests")
    args = parser.parse_args()
    stack = create_stack(Path(tempfile.mkdtemp(prefix="coderm-rewards-")))
    print(f"database {stack.database}, logs in {stack.log_dir}", flush=True)
    try:
        started = contextmanager(run_services)(stack, CODERM_REWARD_SLOTS=str(args.reward_slots))
        with started as services:
            token = prepare(stack, services, args.prompts, args.bank_tests)
            port = free_port()
            services.extra_env["CODERM_PORT"] = str(port)
            services.start("gateway")
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _up(url), 60, "the gateway")
            groups = responses(stack, args.prompts, args.group)
            tests = query(
                stack,
                "SELECT avg(n)::float AS n FROM (SELECT count(*) AS n"
                " FROM test_bank_tests GROUP BY bank_id) x",
            )[0]["n"]
            print(f"{len(groups)} prompts x {args.group} responses, {tests:.1f} tests a bank")
            for warm in (int(x) for x in args.warm.split(",")):
                restart_executor(stack, services, warm)
                singles = [
                    step_body(task, codes[:1], f"single-{n}-{uuid.uuid4().hex[:6]}")
                    for n, (task, codes) in enumerate(list(groups.items())[: args.singles])
                ]
                lat, _ = asyncio.run(send_all(url, token, singles, 1, pause=args.pause))
                print(
                    f"one response a request, {warm} warm sandboxes:"
                    f" p50 {1000 * statistics.median(lat):.0f} ms,"
                    f" p95 {1000 * percentile(lat, 0.95):.0f} ms ({len(lat)} requests)",
                    flush=True,
                )
            print("| in flight | requests | p50 ms | p95 ms | p99 ms | rewards/s | pairs/s |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            best = 0.0
            last_tag = ""
            for c in (int(x) for x in args.concurrency.split(",")):
                last_tag = f"step-c{c}-{uuid.uuid4().hex[:6]}"
                bodies = [step_body(t, codes, last_tag) for t, codes in groups.items()]
                lat, wall = asyncio.run(send_all(url, token, bodies, c))
                n = sum(len(b["items"]) for b in bodies)
                rate = n * tests / wall
                best = max(best, rate)
                print(
                    f"| {c} | {len(bodies)} | {1000 * statistics.median(lat):.0f}"
                    f" | {1000 * percentile(lat, 0.95):.0f} | {1000 * percentile(lat, 0.99):.0f}"
                    f" | {n / wall:.1f} | {rate:.0f} |",
                    flush=True,
                )
            pairs, seconds = exec_pairs_rate(stack, last_tag)
            print(
                f"coderm exec-pairs on the last step's {pairs} pairs: {pairs / seconds:.0f} pairs/s"
                f" ({seconds:.1f} s); the gateway's best: {best / (pairs / seconds):.2f} of it"
            )
    finally:
        drop_stack(stack)


def restart_executor(stack: Stack, services: Services, warm: int) -> None:
    """Restart the executor with ``warm`` warm sandboxes and wait until they wait."""
    log = stack.log_dir / "executor.log"
    offset = log.stat().st_size
    services.terminate("executor")
    services.extra_env["CODERM_WARM_SANDBOXES"] = str(warm)
    services.start("executor")
    wait_for(lambda: consumer_count(stack, "pairs") >= 1, 60, "the executor")

    def filled() -> bool:
        with log.open("rb") as lines:
            lines.seek(offset)
            return b'"sandbox.warm_ready"' in lines.read()

    if warm:
        wait_for(filled, 120, "the warm sandboxes")


def _up(url: str) -> bool:
    try:
        return httpx.post(f"{url}/v1/rewards", json={}).status_code == 401
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()

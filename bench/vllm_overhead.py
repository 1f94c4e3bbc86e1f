"""What the service path costs over vLLM's offline ``LLM.generate``, in generated tokens/s.

On the tiny random Llama of the tests (tests/tiny_model.py), the same prompts (the
CodeRM solution prompts of the first K demo problems, through the model's chat
template), the same seeds and sampling, N samples a problem:

- **service**: the engine in the generator process (``vllm`` backend), requests over
  RabbitMQ, completions stored in PostgreSQL. A first pass loads the engine (``coderm
  run``); each timed pass deletes the stored samples and publishes the run's K
  generate requests again, from the first publish to the K-th ``extract`` message the
  generator sends once a problem's samples are committed (no other service runs, so
  those messages wait in their queue for this script).
- **offline**: ``vllm.LLM(...).generate`` on all K prompts at once in this process,
  with the same engine arguments. Its passes alternate with the service's (the other
  engine idles meanwhile), so both see the same load on a shared machine.

Prints tokens/s of each pass, the medians, their ratio, and how many samples came out
the same on both paths (same prompt and seed; long samples can part when the two
paths batch differently, as float sums then round differently). Needs the
infrastructure (``deploy/local/up.sh --infra-only``).

    .venv/bin/python -m bench.vllm_overhead [--problems 8] [--n 8] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from pydantic import SecretStr
from sqlalchemy import select

from services.generator.engine import PromptRequest, Sampling
from services.generator.generating import problem_text, request_seed
from services.generator.vllm_engine import (
    VllmOptions,
    engine_arguments,
    process_environment,
    prompt_token_ids,
)
from shared.broker import Topology
from shared.core.prompts import build_prompt
from shared.db.models import Problem
from shared.db.session import make_engine, make_sessionmaker
from shared.enums import CompletionFormat, Role
from shared.messages import ExtractRequest, GenerateRequest
from shared.settings import DatabaseSettings
from tests.stack import (
    BROKER_URL,
    ROOT,
    Services,
    Stack,
    cli,
    consumer_count,
    create_stack,
    drop_stack,
    query,
    submit,
    wait_for,
)

MODEL = "tiny"
MAX_MODEL_LEN = 2048
ENGINE_ARGS: dict[str, Any] = {"kv_cache_memory_bytes": 256 * 2**20}


@dataclass(frozen=True)
class Pass:
    """One timed generation of every prompt."""

    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        """Generated tokens per second."""
        return self.tokens / self.seconds

    def __str__(self) -> str:
        return f"{self.tokens} tokens in {self.seconds:.2f} s = {self.rate:.0f} tok/s"


def build_model(directory: Path) -> None:
    """The tests' tiny random Llama, built in a child process."""
    subprocess.run([sys.executable, "-m", "tests.tiny_model", str(directory)], cwd=ROOT, check=True)


def engine_args(args: argparse.Namespace) -> dict[str, Any]:
    """The engine arguments of both paths: the defaults here, then ``--engine-arg``s."""
    extra = dict(item.split("=", 1) for item in args.engine_arg)
    return ENGINE_ARGS | {key: json.loads(value) for key, value in extra.items()}


def prepare(stack: Stack, model_dir: Path, args: argparse.Namespace) -> None:
    """Import the demo problems and register the tiny model (vllm backend, chat)."""
    demo = ROOT / "data" / "demo" / "humaneval.jsonl.gz"
    steps = [
        ("import-benchmark", "humaneval", "--file", str(demo)),
        (
            *("model", "add", MODEL, "--backend", "vllm", "--format", "chat"),
            *("--checkpoint", str(model_dir), "--dtype", "float32"),
            *("--max-model-len", str(MAX_MODEL_LEN), "--max-tokens", str(args.max_tokens)),
            *(f"--engine-arg={k}={json.dumps(v)}" for k, v in engine_args(args).items()),
        ),
    ]
    for step in steps:
        result = cli(stack, *step)
        if result.returncode != 0:
            raise SystemExit(f"coderm {step[0]} failed:\n{result.stdout}{result.stderr}")


async def await_extracts(stack: Stack, problems: int) -> float:
    """Take ``extract`` messages until ``problems`` solution ones came; when the last did."""
    queue_name = Topology(stack.queue_prefix).queue("extract")
    seen = 0
    connection = await aio_pika.connect_robust(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                request = ExtractRequest.model_validate_json(message.body)
                if request.role is Role.SOLUTION:
                    seen += 1
                if seen == problems:
                    return time.perf_counter()
    raise AssertionError("unreachable")


async def publish(stack: Stack, requests: list[GenerateRequest]) -> float:
    """Publish the generate requests; return when the first went out."""
    connection = await aio_pika.connect_robust(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Topology(stack.queue_prefix).exchange)
        started = time.perf_counter()
        for request in requests:
            await exchange.publish(
                aio_pika.Message(request.to_body(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="generate",
            )
        return started


def stored(stack: Stack, run_id: uuid.UUID) -> tuple[int, list[str]]:
    """Generated tokens and texts of the run's solution samples, in problem/sample order."""
    rows = query(
        stack,
        """SELECT c.completion_tokens, c.text FROM run_completions rc
           JOIN completions c ON c.id = rc.completion_id
           WHERE rc.run_id = $1 AND rc.role = 'solution'
           ORDER BY c.problem_id, c.sample_index""",
        run_id,
    )
    return sum(int(r["completion_tokens"]) for r in rows), [str(r["text"]) for r in rows]


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def generator_ready(stack: Stack) -> bool:
    """Whether the generator consumes its queue (which it declares when it connects)."""
    try:
        return consumer_count(stack, "generate") > 0
    except aio_pika.exceptions.ChannelClosed:
        return False


@dataclass
class ServicePath:
    """The generator service with the tiny model loaded, and a run to replay."""

    stack: Stack
    run_id: uuid.UUID
    requests: list[GenerateRequest]
    first_texts: list[str]

    @classmethod
    def start(cls, stack: Stack, services: Services, args: argparse.Namespace) -> ServicePath:
        """Start the generator and submit the run whose first pass loads the engine."""
        services.start("generator")
        wait_for(lambda: generator_ready(stack), 120, "the generator")
        run_id = uuid.UUID(
            submit(
                stack,
                *("--benchmark", "humaneval", "--policy", MODEL, "--test-model", MODEL),
                *("--n", str(args.n), "--m", "0", "--problems", str(args.problems)),
            )
        )
        asyncio.run(asyncio.wait_for(await_extracts(stack, args.problems), 1800))
        problems = [
            int(r["problem_id"])
            for r in query(stack, "SELECT problem_id FROM run_problems WHERE run_id = $1", run_id)
        ]
        requests = [
            GenerateRequest(run_id=run_id, problem_id=p, role=Role.SOLUTION, count=args.n)
            for p in problems
        ]
        return cls(stack, run_id, requests, stored(stack, run_id)[1])

    def timed_pass(self) -> Pass:
        """Delete the run's samples and have the generator draw them again."""
        query(self.stack, "DELETE FROM run_completions WHERE run_id = $1", self.run_id)
        query(self.stack, "DELETE FROM completions WHERE role = 'solution'")

        async def timed() -> float:
            waiter = asyncio.create_task(
                asyncio.wait_for(await_extracts(self.stack, len(self.requests)), 1800)
            )
            started = await publish(self.stack, self.requests)
            return await waiter - started

        seconds = asyncio.run(timed())
        tokens, texts = stored(self.stack, self.run_id)
        if texts != self.first_texts:
            print("  note: this pass drew other texts than the first run")
        return Pass(tokens, seconds)


async def offline_prompts(
    stack: Stack, problem_ids: list[int], tokenizer: Any
) -> tuple[list[list[int]], list[int]]:
    """The problems' prompts as the generator builds them, and the seeds it draws them with."""
    engine = make_engine(DatabaseSettings(url=SecretStr(stack.database_url)))
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(Problem).where(Problem.id.in_(problem_ids)).order_by(Problem.id)
            )
            problems = list(rows)
    finally:
        await engine.dispose()
    prompts, seeds = [], []
    for problem in problems:
        prompt = build_prompt(problem_text(problem), Role.SOLUTION, CompletionFormat.CHAT)
        request = PromptRequest(format=prompt.format, sampling=Sampling(), messages=prompt.messages)
        prompts.append(prompt_token_ids(tokenizer, request))
        seeds.append(request_seed(0, problem.task_id, Role.SOLUTION, 0))
    return prompts, seeds


@dataclass
class OfflinePath:
    """``vllm.LLM`` in this process on the same checkpoint, prompts and seeds."""

    llm: Any
    inputs: list[Any]
    params: list[Any]
    texts: list[str]

    @classmethod
    def start(cls, service: ServicePath, model_dir: Path, args: argparse.Namespace) -> OfflinePath:
        """Load the model with the generator's engine arguments; build its inputs."""
        for name, value in process_environment(Path(args.cache_dir).resolve()).items():
            os.environ.setdefault(name, value)
        from vllm import LLM, SamplingParams, TokensPrompt
        from vllm.platforms import current_platform

        options = VllmOptions(str(model_dir), "float32", MAX_MODEL_LEN, engine_args(args))
        llm = LLM(**engine_arguments(options, on_cpu=current_platform.is_cpu()))
        problem_ids = [r.problem_id for r in service.requests]
        prompts, seeds = asyncio.run(
            offline_prompts(service.stack, problem_ids, llm.get_tokenizer())
        )
        params = [
            SamplingParams(
                n=args.n, seed=s, temperature=0.8, top_p=0.95, max_tokens=args.max_tokens
            )
            for s in seeds
        ]
        return cls(llm, [TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, [])

    def timed_pass(self) -> Pass:
        """One ``LLM.generate`` call on every prompt."""
        started = time.perf_counter()
        outputs = self.llm.generate(self.inputs, self.params, use_tqdm=False)
        seconds = time.perf_counter() - started
        samples = [o for out in outputs for o in sorted(out.outputs, key=lambda o: o.index)]
        self.texts = [o.text for o in samples]
        return Pass(sum(len(o.token_ids) for o in samples), seconds)

    def close(self) -> None:
        """Stop the engine core (a live child would keep this process from exiting)."""
        self.llm.llm_engine.engine_core.shutdown()


def main() -> None:
    """Measure both paths on a fresh slice of the stack and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=8, help="demo problems (prompts)")
    parser.add_argument("--n", type=int, default=8, help="samples a prompt")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens a sample")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes of each path")
    parser.add_argument("--cache-dir", default="var/cache", help="vLLM and torch caches")
    parser.add_argument(
        "--engine-arg", action="append", default=[], help="KEY=JSON for both engines (repeat)"
    )
    args = parser.parse_args()

    work = Path(f"/tmp/coderm-bench-{uuid.uuid4().hex[:8]}")
    stack = create_stack(work / "logs")
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    print(f"database {stack.database}, service logs in {stack.log_dir}")
    services = Services(stack)
    offline: OfflinePath | None = None
    service_passes, offline_passes = [], []
    try:
        build_model(work / "tiny-llama")
        prepare(stack, work / "tiny-llama", args)
        print(f"{args.problems} prompts x {args.n} samples x up to {args.max_tokens} tokens")
        service = ServicePath.start(stack, services, args)
        offline = OfflinePath.start(service, work / "tiny-llama", args)
        for _ in range(args.repeat):  # alternating, so both see the same machine load
            service_passes.append(service.timed_pass())
            print(f"  service pass: {service_passes[-1]}")
            offline_passes.append(offline.timed_pass())
            print(f"  offline pass: {offline_passes[-1]}")
        pairs = list(zip(service.first_texts, offline.texts, strict=True))
    finally:
        if offline is not None:
            offline.close()
        services.stop_all()
        drop_stack(stack)
    service_rate = statistics.median(p.rate for p in service_passes)
    offline_rate = statistics.median(p.rate for p in offline_passes)
    print(f"service (median of {args.repeat}): {service_rate:.0f} generated tokens/s")
    print(f"offline LLM.generate (median of {args.repeat}): {offline_rate:.0f} generated tokens/s")
    print(f"service / offline: {service_rate / offline_rate:.2f}")
    parted = [common_prefix(a, b) / max(len(a), 1) for a, b in pairs if a != b]
    print(f"samples with the same text on both paths: {len(pairs) - len(parted)} of {len(pairs)}")
    if parted:
        print(f"  the others part after {statistics.median(parted):.0%} of their text (median)")


if __name__ == "__main__":
    main()

"""vLLM's real engine on a tiny random Llama: the engine itself, then a run through all
four services with the ``vllm`` backend.

Random weights make random text, so these tests check the plumbing: n samples, seeds,
token counts, finish reasons, the chat template, concurrent requests, cancellation,
errors and a dead engine core; and that a run over such text finishes with nothing
extracted and vanilla pass@1 0.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from services.generator.engine import (
    EngineError,
    Generated,
    PromptRequest,
    Sampling,
)
from services.generator.vllm_engine import VllmEngine, VllmOptions
from shared.core.prompts import ChatMessage
from shared.enums import CompletionFormat
from tests.stack import (
    Services,
    Stack,
    cli,
    consumers_ready,
    metrics,
    query,
    submit,
    wait_for,
    wait_run_finished,
)

pytestmark = [
    pytest.mark.vllm,
    # torch and vLLM warn about their own internals while vLLM is imported and started.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # A dead engine core leaves vLLM's client a ZMQ context it never closes.
    pytest.mark.filterwarnings("ignore:Unclosed context:ResourceWarning"),
]

MAX_MODEL_LEN = 512
#: CodeRM's unit-test prompts take about 650 tokens of the tiny model's 1,024-token BPE.
SERVICE_MAX_MODEL_LEN = 2048
ENGINE_ARGS = {"enforce_eager": True, "kv_cache_memory_bytes": 64 * 2**20}
QUESTION = "Write a function add(a, b) that returns the sum of a and b."


def chat(
    content: str = QUESTION,
    *,
    n: int = 1,
    max_tokens: int = 16,
    seed: int | None = None,
    top_p: float = 0.95,
) -> PromptRequest:
    """A one-message chat request."""
    return PromptRequest(
        format=CompletionFormat.CHAT,
        sampling=Sampling(n=n, max_tokens=max_tokens, seed=seed, top_p=top_p),
        messages=(ChatMessage("user", content),),
    )


def texts(samples: list[Generated]) -> list[str]:
    """The texts of generated samples."""
    return [s.text for s in samples]


def engine_cores(pid: int) -> list[int]:
    """Pids of the vLLM engine core processes whose parent is ``pid``."""
    cores = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"EngineCore" in command:
            cores.append(int(entry.name))
    return cores


def pid_gone(pid: int) -> bool:
    """Whether no live (non-zombie) process has this pid."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.usefixtures("imported")
def test_evaluation_through_the_vllm_backend(
    stack: Stack, services: Services, tiny_model_dir: Path
) -> None:
    """The engine in the generator service: N samples a problem stored with token counts,
    finish reasons and latency; random text has no code; vanilla 0; one engine loaded;
    SIGTERM stops the generator and its engine core. The generator is restarted first:
    earlier tests of the session may have left it holding engines of other models."""
    assert services.terminate("generator") == 0
    services.start("generator")
    wait_for(lambda: consumers_ready(stack), 60, "the restarted generator")
    log_path = stack.log_dir / "generator.log"
    offset = len(log_path.read_text(errors="replace"))
    added = cli(
        stack,
        "model",
        "add",
        "tiny-vllm",
        "--backend",
        "vllm",
        "--checkpoint",
        str(tiny_model_dir),
        "--dtype",
        "float32",
        "--max-model-len",
        str(SERVICE_MAX_MODEL_LEN),
        "--max-tokens",
        "24",
        *(f"--engine-arg={key}={json.dumps(value)}" for key, value in ENGINE_ARGS.items()),
    )
    assert added.returncode == 0, added.stdout + added.stderr
    run_id = submit(
        stack,
        *("--benchmark", "humaneval", "--policy", "tiny-vllm", "--test-model", "tiny-vllm"),
        *("--n", "4", "--m", "3", "--problems", "3"),
    )
    wait_run_finished(stack, services, run_id, timeout=600)

    rows = query(
        stack,
        """SELECT c.role, c.format, c.prompt_tokens, c.completion_tokens, c.finish_reason,
                  c.latency_ms, c.extraction_status, m.name AS model
           FROM run_completions rc
           JOIN completions c ON c.id = rc.completion_id
           JOIN models m ON m.id = c.model_id
           WHERE rc.run_id = $1""",
        uuid.UUID(run_id),
    )
    assert sorted(Counter(r["role"] for r in rows).items()) == [("solution", 12), ("test", 9)]
    for row in rows:
        assert (row["model"], row["format"]) == ("tiny-vllm", "chat")
        assert row["prompt_tokens"] > 0
        assert 0 < row["completion_tokens"] <= 24
        assert row["finish_reason"] in ("length", "stop")
        assert row["latency_ms"] > 0
    assert {r["extraction_status"] for r in rows if r["role"] == "solution"} == {"no_code_block"}
    assert "ok" not in {r["extraction_status"] for r in rows if r["role"] == "test"}
    assert metrics(stack, run_id)["vanilla.pass@1"] == 0.0

    log = log_path.read_text(errors="replace")[offset:]
    assert log.count('"vllm.started"') == 1
    generator = services.processes["generator"].pid
    cores = engine_cores(generator)
    assert len(cores) == 1
    assert services.terminate("generator") == 0
    wait_for(lambda: all(pid_gone(core) for core in cores), 60, "the engine core to exit")
    services.start("generator")
    wait_for(lambda: consumers_ready(stack), 60, "the restarted generator")


async def eventually(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def engine(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[VllmEngine]:
    """One engine on the tiny model for the whole module."""
    options = VllmOptions(
        str(tiny_model_dir), dtype="float32", max_model_len=MAX_MODEL_LEN, engine_args=ENGINE_ARGS
    )
    started = await VllmEngine.start(options, cache_dir=tmp_path_factory.mktemp("vllm-cache"))
    try:
        yield started
    finally:
        await started.aclose()


async def test_n_samples_with_token_counts_and_length_finish(
    engine: VllmEngine, tiny_model_dir: Path
) -> None:
    samples = await engine.generate(chat(n=3, max_tokens=8, seed=11))
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    rendered = f"<|bos|><|user|>\n{QUESTION}<|end|>\n<|assistant|>\n"
    assert len(samples) == 3
    for sample in samples:
        assert sample.prompt_tokens == len(tokenizer.encode(rendered, add_special_tokens=False).ids)
        assert sample.completion_tokens == 8
        assert sample.finish_reason == "length"
        assert sample.latency_ms > 0
        assert sample.text
    assert len(set(texts(samples))) == 3


async def test_chat_template_frames_the_prompt(engine: VllmEngine, tiny_model_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    plain = PromptRequest(
        format=CompletionFormat.COMPLETION, sampling=Sampling(max_tokens=2, seed=1), text=QUESTION
    )
    (as_text,) = await engine.generate(plain)
    (as_chat,) = await engine.generate(chat(max_tokens=2, seed=1))
    framing = tokenizer.encode("<|bos|><|user|>\n<|end|>\n<|assistant|>\n").ids
    assert as_text.prompt_tokens == len(tokenizer.encode(QUESTION).ids)
    assert as_chat.prompt_tokens is not None and as_text.prompt_tokens is not None
    assert as_chat.prompt_tokens - as_text.prompt_tokens == len(framing)


async def test_same_seed_same_samples_even_among_other_requests(engine: VllmEngine) -> None:
    request = chat(n=3, max_tokens=24, seed=1234)
    alone = texts(await engine.generate(request))
    crowd = [chat(f"{QUESTION} ({i})", n=2, max_tokens=24, seed=i) for i in range(6)]
    together, *_ = await asyncio.gather(
        engine.generate(request), *(engine.generate(r) for r in crowd)
    )
    assert texts(together) == alone
    other = texts(
        await engine.generate(replace(request, sampling=replace(request.sampling, seed=1237)))
    )
    assert not set(other) & set(alone)


async def test_sample_i_uses_seed_plus_i(engine: VllmEngine) -> None:
    """vLLM's rule, which the generating backend must respect: seeds n apart share nothing."""
    three = texts(await engine.generate(chat(n=3, max_tokens=12, seed=500)))
    two = texts(await engine.generate(chat(n=2, max_tokens=12, seed=501)))
    assert two == three[1:]


async def test_concurrent_requests_all_complete(engine: VllmEngine) -> None:
    requests = [chat(f"problem {i}: {QUESTION}", n=4, max_tokens=16, seed=i) for i in range(12)]
    results = await asyncio.gather(*(engine.generate(r) for r in requests))
    assert [len(r) for r in results] == [4] * 12
    assert all(s.completion_tokens and s.completion_tokens <= 16 for r in results for s in r)
    assert engine.unfinished_requests() == 0


async def test_seeded_long_prompts_in_flight_together(engine: VllmEngine) -> None:
    """More prompt tokens at once than one engine step takes (2,048): without chunked
    prefill on CPU, seeded requests survive it (with it, vLLM's CPU core dies)."""
    long_prompt = " ".join(f"value_{i} = compute({i})" for i in range(28))
    requests = [chat(f"{i} {long_prompt}", n=2, max_tokens=8, seed=i) for i in range(8)]
    results = await asyncio.gather(*(engine.generate(r) for r in requests))
    assert all(
        s.prompt_tokens and 300 < s.prompt_tokens < MAX_MODEL_LEN - 8 for r in results for s in r
    )
    assert [len(r) for r in results] == [2] * 8
    assert not engine.dead


async def test_cancelled_request_is_aborted_in_the_engine(engine: VllmEngine) -> None:
    task = asyncio.create_task(engine.generate(chat(n=4, max_tokens=480, seed=3)))
    await eventually(lambda: engine.unfinished_requests() > 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: engine.unfinished_requests() == 0)
    (after,) = await engine.generate(chat(max_tokens=4, seed=3))
    assert after.completion_tokens == 4


@pytest.mark.parametrize(
    "request_",
    [
        chat(top_p=2.0),
        chat(n=0),
        chat("word " * 2000, max_tokens=4),
        chat(max_tokens=MAX_MODEL_LEN + 1),
        PromptRequest(format=CompletionFormat.CHAT, sampling=Sampling()),
    ],
    ids=[
        "top-p-out-of-range",
        "no-samples",
        "prompt-longer-than-model",
        "max-tokens-beyond-model",
        "no-messages",
    ],
)
async def test_a_request_the_engine_rejects_is_an_engine_error(
    engine: VllmEngine, request_: PromptRequest
) -> None:
    with pytest.raises(EngineError):
        await engine.generate(request_)
    assert engine.unfinished_requests() == 0


async def test_a_dead_engine_core_is_restarted(engine: VllmEngine) -> None:
    cores = [p for p in multiprocessing.active_children() if "EngineCore" in p.name]
    assert cores, [p.name for p in multiprocessing.active_children()]
    for core in cores:
        assert core.pid is not None
        os.kill(core.pid, signal.SIGKILL)
    await eventually(lambda: engine.dead)
    samples = await engine.generate(chat(n=2, max_tokens=4, seed=9))
    assert [s.completion_tokens for s in samples] == [4, 4]
    assert not engine.dead

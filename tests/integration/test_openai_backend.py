"""The ``openai`` backend end to end: a real vLLM OpenAI-compatible server on the tiny
random model, and small evaluations through all four services, including a server that
is down when the run starts, one killed mid-run, and requests it refuses (HTTP 400)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.stack import (
    Services,
    Stack,
    cli,
    dead_letters,
    dead_reason,
    metrics,
    query,
    run_state,
    submit,
    take_dead,
    wait_for,
    wait_run_finished,
)

pytestmark = [pytest.mark.integration, pytest.mark.vllm]
SERVED = "tiny"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class VllmServer:
    """``vllm.entrypoints.openai.api_server`` on a checkpoint, in its own process group."""

    model_dir: Path
    work_dir: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL models are registered with."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, max_model_len: int = 2048) -> None:
        """Start the server and wait until it answers ``/v1/models``."""
        assert self.process is None
        env = {
            **os.environ,
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_CACHE_ROOT": str(self.work_dir / "vllm-cache"),
            "TORCHINDUCTOR_CACHE_DIR": str(self.work_dir / "inductor-cache"),
        }
        command = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--served-model-name",
            SERVED,
            "--dtype",
            "float32",
            "--max-model-len",
            str(max_model_len),
            "--enforce-eager",
            "--kv-cache-memory-bytes",
            str(64 * 2**20),
            # vLLM 0.32 on CPU: a seeded request whose prompt is prefilled in chunks
            # kills the engine core ("CPU Generator does not use offset"); whole
            # prefills avoid it.
            "--no-enable-chunked-prefill",
            "--max-num-batched-tokens",
            str(max_model_len),
        ]
        with (self.work_dir / "vllm-server.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self._ready, 300, f"the vLLM server (log in {self.work_dir})", every=1.0)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the vLLM server exited (log in {self.work_dir})")
        try:
            return httpx.get(f"{self.url}/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal the server's whole process group and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """A vLLM server for this module, not yet started (the first test starts it late)."""
    handle = VllmServer(tiny_model_dir, tmp_path_factory.mktemp("vllm-server"))
    try:
        yield handle
    finally:
        handle.stop()


def add_model(stack: Stack, server: VllmServer, name: str, *options: str) -> None:
    """Register an ``openai`` model on the test server (token ids per sample asked for)."""
    result = cli(
        stack,
        "model",
        "add",
        name,
        "--backend",
        "openai",
        "--endpoint",
        server.url,
        "--served-name",
        SERVED,
        "--extra-body",
        json.dumps({"return_token_ids": True}),
        *options,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run_args(policy: str, test_model: str, *more: str) -> tuple[str, ...]:
    return ("--benchmark", "humaneval", "--policy", policy, "--test-model", test_model, *more)


def run_completions(stack: Stack, run_id: str) -> list[dict[str, object]]:
    """The completions a run links, with their role and model name."""
    rows = query(
        stack,
        """SELECT c.id, c.role, c.format, c.text, c.sample_index, c.prompt_tokens,
                  c.completion_tokens, c.finish_reason, c.latency_ms, c.extraction_status,
                  c.generation, m.name AS model
           FROM run_completions rc
           JOIN completions c ON c.id = rc.completion_id
           JOIN models m ON m.id = c.model_id
           WHERE rc.run_id = $1
           ORDER BY c.problem_id, c.role, c.sample_index""",
        uuid.UUID(run_id),
    )
    return [dict(row) for row in rows]


def model_completions(stack: Stack, model: str) -> int:
    rows = query(
        stack,
        "SELECT count(*) AS n FROM completions c JOIN models m ON m.id = c.model_id "
        "WHERE m.name = $1",
        model,
    )
    return int(rows[0]["n"])


def retries(stack: Stack) -> int:
    """How many times the generator has retried a request to an endpoint so far."""
    log = stack.log_dir / "generator.log"
    return sum('"openai.retry"' in line for line in log.read_text(errors="replace").splitlines())


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("imported")
def test_server_down_at_start_is_retried_until_it_comes_up(
    stack: Stack, services: Services, server: VllmServer
) -> None:
    """A run submitted while the endpoint is down waits (the generator retries with
    back-off) and finishes once the server is started, with nothing dead-lettered."""
    add_model(stack, server, "tiny-down", "--max-tokens", "16")
    run_id = submit(
        stack, *run_args("tiny-down", "tiny-down", "--n", "2", "--m", "2", "--problems", "2")
    )
    wait_for(lambda: retries(stack) >= 2, 120, "the generator to retry the endpoint")
    assert run_state(stack, run_id) == "running"
    assert model_completions(stack, "tiny-down") == 0
    server.start()
    wait_run_finished(stack, services, run_id, timeout=600)
    completions = run_completions(stack, run_id)
    assert len(completions) == 2 * (2 + 2)
    assert dead_letters(stack) == {}


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("imported")
def test_evaluation_through_the_openai_backend(
    stack: Stack, services: Services, server: VllmServer
) -> None:
    """CodeRM chat prompts for solutions and CodeT completion prompts for tests, through
    /v1/chat/completions and /v1/completions: N samples per problem stored with token
    counts, finish reasons and latency; random text yields no code; vanilla is 0. The
    same run again reuses the samples; another seed draws new ones."""
    if server.process is None:
        server.start()
    add_model(stack, server, "tiny-chat", "--role", "policy", "--max-tokens", "24")
    add_model(
        stack,
        server,
        "tiny-codet",
        "--role",
        "unit_test",
        "--format",
        "completion",
        "--max-tokens",
        "24",
    )
    args = run_args("tiny-chat", "tiny-codet", "--n", "4", "--m", "3", "--problems", "3")
    first = submit(stack, *args)
    wait_run_finished(stack, services, first, timeout=600)

    completions = run_completions(stack, first)
    assert len(completions) == 3 * (4 + 3)
    solutions = [c for c in completions if c["role"] == "solution"]
    tests = [c for c in completions if c["role"] == "test"]
    assert {(c["model"], c["format"]) for c in solutions} == {("tiny-chat", "chat")}
    assert {(c["model"], c["format"]) for c in tests} == {("tiny-codet", "completion")}
    for c in completions:
        assert isinstance(c["prompt_tokens"], int) and c["prompt_tokens"] > 0
        assert isinstance(c["completion_tokens"], int) and 0 < c["completion_tokens"] <= 24
        assert c["finish_reason"] in ("length", "stop")
        assert isinstance(c["latency_ms"], float) and c["latency_ms"] > 0
    assert {c["extraction_status"] for c in solutions} == {"no_code_block"}
    assert "ok" not in {c["extraction_status"] for c in tests}
    assert metrics(stack, first)["vanilla.pass@1"] == 0.0

    again = submit(stack, *args)
    wait_run_finished(stack, services, again, timeout=600)
    assert [c["id"] for c in run_completions(stack, again)] == [c["id"] for c in completions]

    reseeded = submit(stack, *args, "--seed", "1")
    wait_run_finished(stack, services, reseeded, timeout=600)
    other = run_completions(stack, reseeded)
    assert len(other) == len(completions)
    assert not {c["id"] for c in other} & {c["id"] for c in completions}
    assert [c["text"] for c in other] != [c["text"] for c in completions]


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("imported")
def test_server_killed_mid_run_is_retried_until_it_returns(
    stack: Stack, services: Services, server: VllmServer
) -> None:
    """SIGKILL the server while a run is generating: the requests in flight fail, are
    retried, and the run finishes with every sample once the server is back."""
    if server.process is None:
        server.start()
    add_model(stack, server, "tiny-kill", "--max-tokens", "64")
    run_id = submit(
        stack, *run_args("tiny-kill", "tiny-kill", "--n", "8", "--m", "8", "--problems", "8")
    )
    wanted = 8 * (8 + 8)
    wait_for(lambda: model_completions(stack, "tiny-kill") > 0, 300, "the first samples")
    before = retries(stack)
    server.stop(signal.SIGKILL)
    assert model_completions(stack, "tiny-kill") < wanted, "the run ended before the kill"
    wait_for(lambda: retries(stack) > before, 120, "the generator to retry the dead server")
    server.start()
    wait_run_finished(stack, services, run_id, timeout=600)
    completions = run_completions(stack, run_id)
    assert len(completions) == wanted
    assert model_completions(stack, "tiny-kill") == wanted
    assert dead_letters(stack) == {}


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("imported")
def test_refused_request_is_a_clear_error_on_the_run_and_nothing_is_lost(
    stack: Stack, services: Services, server: VllmServer
) -> None:
    """``max_tokens`` beyond the server's context: HTTP 400 once per request, no retry,
    the request dead-lettered with the server's words, the run's error says it; after
    the server is given a longer context, ``coderm resume`` finishes the run."""
    server.stop()
    server.start(max_model_len=512)
    add_model(stack, server, "tiny-long", "--format", "completion", "--max-tokens", "600")
    add_model(stack, server, "tiny-short", "--format", "completion", "--max-tokens", "16")
    run_id = submit(
        stack, *run_args("tiny-long", "tiny-short", "--n", "2", "--m", "2", "--problems", "2")
    )
    wait_for(lambda: dead_letters(stack).get("generate") == 2, 300, "2 dead-lettered requests")
    error = query(stack, "SELECT error FROM runs WHERE id = $1", uuid.UUID(run_id))[0]["error"]
    assert "GenerationRefusedError" in error and "tiny-long" in error
    assert "max_tokens=600 cannot be greater than max_model_len=512" in error
    reasons = [dead_reason(m) for m in asyncio.run(take_dead(stack, "generate"))]
    assert len(reasons) == 2
    assert all("max_tokens=600 cannot be greater than max_model_len=512" in r for r in reasons)
    wait_for(lambda: model_completions(stack, "tiny-short") == 2 * 2, 300, "the test samples")
    assert model_completions(stack, "tiny-long") == 0
    assert run_state(stack, run_id) == "failed"

    server.stop()
    server.start()
    resumed = cli(stack, "resume", run_id, "--detach")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    wait_run_finished(stack, services, run_id, timeout=600)
    assert model_completions(stack, "tiny-long") == 2 * 2
    assert model_completions(stack, "tiny-short") == 2 * 2
    error = query(stack, "SELECT error FROM runs WHERE id = $1", uuid.UUID(run_id))[0]["error"]
    assert error is None

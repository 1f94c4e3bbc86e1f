"""An :class:`Engine` on vLLM's asyncio engine (``AsyncLLM``), in the generator process.

One ``VllmEngine`` is one loaded checkpoint. Its requests all go to the same
``AsyncLLM``, whose scheduler batches whatever is in flight: the generator handles
several generate requests at once (its prefetch), so many problems are decoded
together. vLLM runs its engine core in a child process (on CPU it always spawns one);
this process tokenizes, renders chat prompts and collects outputs.

- Chat prompts go through the checkpoint's own chat template (rendered as text, then
  tokenized without extra special tokens, as vLLM's OpenAI server does); completion
  prompts are tokenized as they are.
- ``n`` samples per request with the request's seed: vLLM draws sample ``i`` with
  ``seed + i``, so the same request gives the same samples (a long sample can part
  from its twin when the batch around it differs: float sums then round differently).
- A cancelled request is aborted in the engine (vLLM's ``generate`` does it when the
  awaiting task is cancelled); a request the engine rejects (bad sampling parameters,
  a prompt longer than the model, ``max_tokens`` beyond the model's context, as vLLM's
  server refuses it) raises :class:`EngineError`; a prompt that fits but leaves less
  room than ``max_tokens`` is cut at the context (finish reason ``length``), as on the
  server. If the engine core dies, the next request starts a new one.

vllm is imported lazily (importing it takes seconds), and its start-up runs in a
thread, so the event loop keeps serving while a model loads.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from services.generator.engine import EngineError, Generated, PromptRequest, Sampling

if TYPE_CHECKING:
    from vllm.outputs import RequestOutput
    from vllm.tokenizers import TokenizerLike
    from vllm.v1.engine.async_llm import AsyncLLM

log = structlog.get_logger(__name__)

#: Engine arguments used on a CPU-only machine unless the model's entry sets them: no
#: graph capture or compilation (start in seconds); a KV cache given in bytes (vLLM's
#: CPU default is a share of the machine's memory); and no chunked prefill: a seeded
#: request whose prompt is prefilled in chunks kills vLLM 0.32's CPU engine core
#: ("CPU Generator does not use offset"), and every request of a run is seeded.
CPU_DEFAULTS: Mapping[str, Any] = {
    "enforce_eager": True,
    "kv_cache_memory_bytes": 256 * 2**20,
    "enable_chunked_prefill": False,
}
DEFAULT_CACHE_DIR = Path("var") / "cache"


@dataclass(frozen=True)
class VllmOptions:
    """What to load: a checkpoint directory and the engine arguments of its registry entry.

    ``engine_args`` are extra ``vllm.AsyncEngineArgs`` fields (``enforce_eager``,
    ``kv_cache_memory_bytes``, ``gpu_memory_utilization``, ``tensor_parallel_size``...);
    they win over ``dtype``/``max_model_len`` and the CPU defaults.
    """

    checkpoint: str
    dtype: str = "auto"
    max_model_len: int | None = None
    engine_args: Mapping[str, Any] = field(default_factory=dict)


def engine_arguments(options: VllmOptions, on_cpu: bool) -> dict[str, Any]:
    """The keyword arguments of ``vllm.AsyncEngineArgs`` for ``options``."""
    arguments: dict[str, Any] = {
        "model": options.checkpoint,
        "tokenizer": options.checkpoint,
        "dtype": options.dtype,
        "disable_log_stats": True,
    }
    if options.max_model_len is not None:
        arguments["max_model_len"] = options.max_model_len
    if on_cpu:
        arguments.update(CPU_DEFAULTS)
    arguments.update(options.engine_args)
    return arguments


def sampling_arguments(sampling: Sampling) -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams`` for one request."""
    return {
        "n": sampling.n,
        "seed": sampling.seed,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "stop": list(sampling.stop) or None,
    }


def process_environment(cache_dir: Path) -> dict[str, str]:
    """Environment defaults for vLLM in this process (and its engine core child).

    Offline (a checkpoint is a local directory), no usage reports, caches under
    ``cache_dir`` instead of the home directory and ``/tmp``, and vLLM's own log lines
    at WARNING so the service log stays JSON lines. Variables already set win.
    """
    return {
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
        "VLLM_CACHE_ROOT": str(cache_dir / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache_dir / "torchinductor"),
    }


def prompt_token_ids(tokenizer: TokenizerLike, request: PromptRequest) -> list[int]:
    """The request's prompt as token ids: chat through the chat template, text as is."""
    if request.format.is_chat:
        if not request.messages:
            raise EngineError("a chat request needs at least one message")
        text = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in request.messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        if not isinstance(text, str):
            raise EngineError("the chat template did not render to text")
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(request.text)


def to_generated(output: RequestOutput, latency_ms: float) -> list[Generated]:
    """The samples of a finished request, in sample order."""
    prompt_tokens = len(output.prompt_token_ids) if output.prompt_token_ids is not None else None
    return [
        Generated(
            text=sample.text,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(sample.token_ids),
            finish_reason=sample.finish_reason,
            latency_ms=latency_ms,
        )
        for sample in sorted(output.outputs, key=lambda s: s.index)
    ]


def _build(options: VllmOptions, into: list[AsyncLLM]) -> None:
    """Import vllm and start an engine (blocking: run it in a thread)."""
    from vllm import AsyncEngineArgs
    from vllm.platforms import current_platform
    from vllm.v1.engine.async_llm import AsyncLLM

    arguments = engine_arguments(options, on_cpu=current_platform.is_cpu())
    into.append(AsyncLLM.from_engine_args(AsyncEngineArgs(**arguments)))


async def _start(options: VllmOptions) -> AsyncLLM:
    """Start an engine in a worker thread, keeping the loop free meanwhile.

    The engine comes back in a list that is emptied at once, so the thread pool's
    finished futures keep no reference to it (an engine collected only at interpreter
    exit fails in its ``__del__``).
    """
    box: list[AsyncLLM] = []
    await asyncio.to_thread(_build, options, box)
    return box.pop()


async def _shut_down(llm: AsyncLLM) -> None:
    """Shut an engine down (joins its core process) without blocking the loop."""
    await asyncio.to_thread(llm.shutdown)


class VllmEngine:
    """A checkpoint loaded in vLLM's asyncio engine; serves concurrent requests."""

    def __init__(self, options: VllmOptions, llm: AsyncLLM) -> None:
        self.options = options
        self._llm: AsyncLLM | None = llm
        self._tokenizer = llm.get_tokenizer()
        self._restart = asyncio.Lock()

    @classmethod
    async def start(cls, options: VllmOptions, cache_dir: Path | None = None) -> VllmEngine:
        """Load ``options.checkpoint`` (a directory) and return the running engine."""
        cache = (cache_dir or DEFAULT_CACHE_DIR).resolve()
        for name, value in process_environment(cache).items():
            os.environ.setdefault(name, value)
        started = time.monotonic()
        llm = await _start(options)
        log.info(
            "vllm.started",
            checkpoint=options.checkpoint,
            seconds=round(time.monotonic() - started, 1),
            max_model_len=llm.model_config.max_model_len,
        )
        return cls(options, llm)

    @property
    def max_model_len(self) -> int:
        """The longest prompt plus completion the engine accepts, in tokens."""
        return int(self._running().model_config.max_model_len)

    @property
    def dead(self) -> bool:
        """Whether the engine core has died (the next request starts a new one)."""
        return self._llm is not None and self._llm.errored

    def unfinished_requests(self) -> int:
        """Requests (counting each sample) the engine is still working on."""
        return self._running().get_num_unfinished_requests()

    async def generate(self, request: PromptRequest) -> list[Generated]:
        """Sample ``request.sampling.n`` completions of the request's prompt."""
        from vllm import SamplingParams, TokensPrompt
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        llm = await self._alive()
        limit = llm.model_config.max_model_len
        if request.sampling.max_tokens > limit:
            raise EngineError(
                f"max_tokens={request.sampling.max_tokens} cannot be greater than "
                f"max_model_len={limit}"
            )
        try:
            params = SamplingParams(
                **sampling_arguments(request.sampling), output_kind=RequestOutputKind.FINAL_ONLY
            )
            prompt = TokensPrompt(prompt_token_ids=prompt_token_ids(self._tokenizer, request))
        except (VLLMClientError, ValueError) as error:
            raise EngineError(str(error)) from error
        request_id = request.request_id or uuid.uuid4().hex
        started = time.monotonic()
        final: RequestOutput | None = None
        try:
            async for output in llm.generate(prompt, params, request_id):
                final = output
        except VLLMClientError as error:
            raise EngineError(str(error)) from error
        if final is None or not final.finished:
            raise RuntimeError(f"vLLM request {request_id} ended without a final output")
        return to_generated(final, (time.monotonic() - started) * 1000.0)

    async def aclose(self) -> None:
        """Stop the engine core and release the model."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        await _shut_down(llm)
        del llm
        gc.collect()
        log.info("vllm.stopped", checkpoint=self.options.checkpoint)

    def _running(self) -> AsyncLLM:
        if self._llm is None:
            raise RuntimeError("the vLLM engine is closed")
        return self._llm

    async def _alive(self) -> AsyncLLM:
        """The engine, restarted first if its core died."""
        llm = self._running()
        if not llm.errored:
            return llm
        async with self._restart:
            llm = self._running()
            if llm.errored:
                log.error("vllm.engine_dead", checkpoint=self.options.checkpoint)
                await _shut_down(llm)
                self._llm = llm = await _start(self.options)
                self._tokenizer = llm.get_tokenizer()
                gc.collect()
                log.info("vllm.restarted", checkpoint=self.options.checkpoint)
            return llm

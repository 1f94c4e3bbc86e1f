"""The difficulty probe's feature, read through vLLM: the policy model's final hidden
state at the last token of a problem's solution prompt.

CodeRM's difficulty probe (section 3.2 of the paper) predicts a problem's pass rate
from how the policy model represents the problem before answering it. The
representation taken here is the last layer's hidden state (after the model's final
norm, the vector its language-model head would read) at the prompt's last token: in a
causal model that position has attended to the whole prompt, and it is where the first
answer token is decided.

The prompt is exactly the one the generator sends for solution samples: the problem's
prompt for the policy's format (:func:`shared.core.prompts.build_prompt`), rendered and
tokenized by the same function as the generator's vLLM engine
(:func:`services.generator.vllm_engine.prompt_token_ids`), chat template and all.

How vLLM 0.32 gives that vector: the generative checkpoint is loaded with the pooling
runner, converted to an embedding model, with LAST pooling and no activation (no
normalisation)::

    LLM(model=DIR, runner="pooling", convert="embed",
        pooler_config=PoolerConfig(pooling_type="LAST", use_activation=False), ...)
    llm.embed([TokensPrompt(prompt_token_ids=ids), ...])  # .outputs.embedding

The converted model runs the same decoder without the language-model head, so the
pooled vector is the final-norm hidden state of the last token, the same numbers as
``hidden_states[-1][0, -1]`` of the checkpoint under ``transformers`` (checked on a
tiny Llama). Pooling has no sampling: a prompt gives the same vector whatever else is
in the batch.

The engine is loaded from the policy's registry entry (checkpoint, dtype, context
length, engine arguments, with the generator's CPU defaults), in the calling process:
the probe commands read features themselves and never go through a running generator.
Only ``vllm`` models have a checkpoint to load; an ``openai`` or ``replay`` policy is
refused with :class:`PolicyFeatureError`. vllm is imported lazily.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
from numpy.typing import NDArray

from services.generator.engine import EngineError, PromptRequest, Sampling
from services.generator.generating import problem_text
from services.generator.vllm_engine import (
    DEFAULT_CACHE_DIR,
    VllmOptions,
    engine_arguments,
    process_environment,
    prompt_token_ids,
)
from shared.core.model_spec import ModelSpec
from shared.core.prompts import build_prompt
from shared.db.models import Model, Problem
from shared.enums import BackendName, CompletionFormat, Role
from shared.errors import RequestError

if TYPE_CHECKING:
    from vllm import LLM
    from vllm.tokenizers import TokenizerLike

__all__ = [
    "FEATURE_KIND",
    "PolicyFeatureError",
    "PromptFeatureReader",
    "VllmOptions",
    "feature_options",
    "feature_reader",
    "pooling_arguments",
    "solution_prompt_features",
    "solution_requests",
]

log = structlog.get_logger(__name__)

#: The name of this feature in a probe's metadata; a probe trained on another feature
#: (or another version of this one) is not applied to it.
FEATURE_KIND = "vllm-last-token-final-hidden-state/solution-prompt/v1"


class PolicyFeatureError(RequestError):
    """The policy's features cannot be read as asked: a model without a local
    checkpoint (another backend, or a folder not on this machine), or a prompt longer
    than the model's context. Its message says what to do."""


def feature_options(model: Model, engine_args: Mapping[str, Any] | None = None) -> VllmOptions:
    """The engine options to read ``model``'s features with: its registry entry, with
    ``engine_args`` (e.g. a smaller ``gpu_memory_utilization``) over its own.

    :class:`PolicyFeatureError` unless it is a ``vllm`` model whose checkpoint folder is
    on this machine.
    """
    if model.backend != BackendName.VLLM.value:
        raise PolicyFeatureError(
            f"model {model.name!r} uses the {model.backend} backend: the difficulty probe "
            "reads hidden states of the policy's own checkpoint through vLLM, so it needs a "
            "vllm-backed policy (coderm model add NAME --backend vllm --checkpoint DIR)"
        )
    if not model.checkpoint or not Path(model.checkpoint).is_dir():
        raise PolicyFeatureError(
            f"model {model.name!r}: checkpoint folder {model.checkpoint!r} is not on this "
            "machine; the difficulty probe loads the policy itself, so run it where the "
            "checkpoint is"
        )
    return VllmOptions(
        checkpoint=model.checkpoint,
        dtype=model.dtype,
        max_model_len=model.max_model_len,
        engine_args={**ModelSpec.of_row(model).config.engine_args, **(engine_args or {})},
    )


def solution_requests(problems: Sequence[Problem], fmt: CompletionFormat) -> list[PromptRequest]:
    """The solution prompts the generator sends for ``problems`` to a model of format
    ``fmt``, as engine requests (sampling settings play no part in the feature)."""
    requests = []
    for problem in problems:
        prompt = build_prompt(problem_text(problem), Role.SOLUTION, fmt)
        requests.append(
            PromptRequest(
                format=prompt.format,
                sampling=Sampling(),
                messages=prompt.messages,
                text=prompt.text,
            )
        )
    return requests


def pooling_arguments(options: VllmOptions, on_cpu: bool) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments but the pooler's: the generator's engine arguments
    for ``options`` with the pooling runner over the generative checkpoint, converted to
    an embedding model. :meth:`PromptFeatureReader.open` adds the pooler configuration
    (LAST pooling, no activation), a vLLM object."""
    return {**engine_arguments(options, on_cpu), "runner": "pooling", "convert": "embed"}


class PromptFeatureReader:
    """A policy checkpoint loaded in vLLM as a LAST-token pooling model."""

    def __init__(self, options: VllmOptions, llm: LLM) -> None:
        self.options = options
        self._llm: LLM | None = llm
        self._tokenizer: TokenizerLike = llm.get_tokenizer()
        config = llm.llm_engine.model_config
        self.hidden_size = int(config.get_hidden_size())
        self.max_model_len = int(config.max_model_len)

    @classmethod
    def open(cls, options: VllmOptions, cache_dir: Path | None = None) -> PromptFeatureReader:
        """Load ``options.checkpoint`` (blocking; seconds for a small model, minutes for
        a large one). vLLM's caches go under ``cache_dir`` (default ``var/cache``)."""
        for name, value in process_environment((cache_dir or DEFAULT_CACHE_DIR).resolve()).items():
            os.environ.setdefault(name, value)
        from vllm import LLM
        from vllm.config import PoolerConfig
        from vllm.platforms import current_platform

        arguments = pooling_arguments(options, on_cpu=current_platform.is_cpu())
        llm = LLM(
            **arguments, pooler_config=PoolerConfig(pooling_type="LAST", use_activation=False)
        )
        log.info("prompt_features.started", checkpoint=options.checkpoint)
        return cls(options, llm)

    def token_ids(self, requests: Sequence[PromptRequest]) -> list[list[int]]:
        """The prompts' token ids, as the generator's engine makes them."""
        return [prompt_token_ids(self._tokenizer, request) for request in requests]

    def features(
        self, requests: Sequence[PromptRequest], names: Sequence[str] | None = None
    ) -> NDArray[np.float64]:
        """One row a request: the final hidden state at its prompt's last token.

        :class:`PolicyFeatureError` if a prompt is longer than the model's context (the
        generator could not sample it either), naming the prompts by ``names``.
        """
        from vllm import TokensPrompt

        labels = list(names) if names is not None else [str(i) for i in range(len(requests))]
        try:
            ids = self.token_ids(requests)
        except EngineError as error:
            raise PolicyFeatureError(str(error)) from error
        too_long = [
            f"{label} ({len(tokens)} tokens)"
            for label, tokens in zip(labels, ids, strict=True)
            if len(tokens) > self.max_model_len
        ]
        if too_long:
            raise PolicyFeatureError(
                f"prompts longer than the model's context of {self.max_model_len} tokens: "
                f"{', '.join(too_long)}"
            )
        if not ids:
            return np.zeros((0, self.hidden_size))
        outputs = self._running().embed(
            [TokensPrompt(prompt_token_ids=tokens) for tokens in ids], use_tqdm=False
        )
        rows = np.asarray([output.outputs.embedding for output in outputs], dtype=np.float64)
        if rows.shape != (len(ids), self.hidden_size):
            raise RuntimeError(
                f"vLLM returned features of shape {rows.shape}, expected "
                f"{(len(ids), self.hidden_size)}"
            )
        return rows

    def close(self) -> None:
        """Stop the engine (and its engine core process) and release the model."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm

    def _running(self) -> LLM:
        if self._llm is None:
            raise RuntimeError("the feature reader is closed")
        return self._llm


@contextlib.contextmanager
def feature_reader(
    options: VllmOptions, cache_dir: Path | None = None
) -> Iterator[PromptFeatureReader]:
    """A :class:`PromptFeatureReader` closed on exit."""
    reader = PromptFeatureReader.open(options, cache_dir)
    try:
        yield reader
    finally:
        reader.close()


def solution_prompt_features(
    options: VllmOptions,
    fmt: CompletionFormat,
    problems: Sequence[Problem],
    cache_dir: Path | None = None,
) -> NDArray[np.float64]:
    """Load the policy, read the feature of each problem's solution prompt (one row a
    problem, in order), and unload it."""
    with feature_reader(options, cache_dir) as reader:
        return reader.features(
            solution_requests(problems, fmt), names=[problem.task_id for problem in problems]
        )

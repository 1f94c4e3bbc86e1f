"""The generator's pure parts: generation keys, seeds, the engine pool's load/swap rule,
and checkpoint folders (fingerprints, prompt format, order)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from services.cli import checkpoints
from services.generator.backends import Work
from services.generator.engine import Generated, PromptRequest
from services.generator.generating import (
    completion_rows,
    first_missing,
    generation_key,
    request_seed,
)
from services.generator.pool import EnginePool, engine_key
from shared.core.prompts import Prompt
from shared.core.sampling import RunGeneration, SamplingSettings
from shared.db.models import Model, Problem
from shared.enums import CompletionFormat, Role

PROMPT = Prompt(CompletionFormat.COMPLETION, text="def f():\n")


def test_generation_key_names_seed_sampling_and_prompt() -> None:
    key = generation_key(0, SamplingSettings(), PROMPT)
    assert key == f"seed0-t0.8-p0.95-m2048-{PROMPT.digest()[:16]}"
    others = {
        generation_key(1, SamplingSettings(), PROMPT),
        generation_key(0, SamplingSettings(temperature=0.2), PROMPT),
        generation_key(0, SamplingSettings(top_p=0.9), PROMPT),
        generation_key(0, SamplingSettings(max_tokens=300), PROMPT),
        generation_key(0, SamplingSettings(), Prompt(CompletionFormat.COMPLETION, text="x")),
    }
    assert len(others) == 5 and key not in others
    assert len(key) <= 200


def test_request_seed_is_stable_and_distinct() -> None:
    seed = request_seed(0, "HumanEval/0", Role.SOLUTION, 0)
    assert seed == request_seed(0, "HumanEval/0", Role.SOLUTION, 0)
    assert 0 <= seed < 2**31
    variants = {
        request_seed(1, "HumanEval/0", Role.SOLUTION, 0),
        request_seed(0, "HumanEval/1", Role.SOLUTION, 0),
        request_seed(0, "HumanEval/0", Role.TEST, 0),
        request_seed(0, "HumanEval/0", Role.SOLUTION, 10),
    }
    assert len(variants) == 4 and seed not in variants


@pytest.mark.parametrize(
    ("have", "count", "start"),
    [
        (set(), 4, 0),
        ({0, 1}, 4, 2),
        ({0, 1, 2, 3}, 4, 4),
        ({0, 2}, 4, 1),
        ({0, 1, 5}, 3, 2),
        (set(), 0, 0),
    ],
)
def test_first_missing(have: set[int], count: int, start: int) -> None:
    assert first_missing(have, count) == start


@pytest.mark.parametrize(
    ("have", "start", "end", "first"),
    [
        ({0, 1}, 2, 5, 2),  # a later round: samples 2..4, none stored
        ({0, 1, 2, 3}, 2, 5, 4),
        ({0, 1, 2, 3, 4}, 2, 5, 5),  # all stored: nothing to generate
        ({3}, 2, 5, 2),
    ],
)
def test_first_missing_from_a_later_start(have: set[int], start: int, end: int, first: int) -> None:
    """A round asks for the samples after those it has; earlier ones are never asked again."""
    assert first_missing(have, end, start) == first


class FakeEngine:
    """An in-memory engine that records when it is closed."""

    def __init__(self, name: str, closed: list[str]) -> None:
        self.name = name
        self.closed = closed

    async def generate(self, request: PromptRequest) -> list[Generated]:
        return []

    async def aclose(self) -> None:
        self.closed.append(self.name)


def model(model_id: int, backend: str = "vllm", **config: object) -> Model:
    return Model(
        id=model_id,
        name=f"m{model_id}",
        backend=backend,
        checkpoint=f"/ckpt/{model_id}",
        dtype="auto",
        config=dict(config),
    )


def pool_with(loaded: list[str], closed: list[str], capacity: int = 2) -> EnginePool:
    async def make(m: Model) -> FakeEngine:
        loaded.append(m.name)
        return FakeEngine(m.name, closed)

    return EnginePool({"vllm": make, "openai": make}, frozenset({"vllm"}), capacity)


async def test_pool_loads_once_and_swaps_the_least_recently_used_local_engine() -> None:
    loaded: list[str] = []
    closed: list[str] = []
    pool = pool_with(loaded, closed)
    for m in (model(1), model(2), model(1), model(3, "openai"), model(4, "openai")):
        async with pool.lease(m):
            pass
    assert loaded == ["m1", "m2", "m3", "m4"] and closed == []
    async with pool.lease(model(5)):
        pass
    assert closed == ["m2"]
    async with pool.lease(model(2)):
        pass
    assert closed == ["m2", "m1"]
    assert loaded == ["m1", "m2", "m3", "m4", "m5", "m2"]
    await pool.aclose()
    assert sorted(closed) == ["m1", "m2", "m2", "m3", "m4", "m5"]


async def test_pool_closes_an_engine_only_after_its_requests() -> None:
    loaded: list[str] = []
    closed: list[str] = []
    pool = pool_with(loaded, closed, capacity=1)
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold() -> None:
        async with pool.lease(model(1)):
            holding.set()
            await release.wait()
            assert closed == []

    holder = asyncio.create_task(hold())
    await holding.wait()
    swap = asyncio.create_task(pool.lease(model(2)).__aenter__())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not swap.done() and closed == []
    release.set()
    await holder
    await swap
    assert closed == ["m1"] and loaded == ["m1", "m2"]


def test_engine_key_follows_what_shapes_an_engine() -> None:
    assert engine_key(model(1)) == engine_key(model(1))
    assert engine_key(model(1)) != engine_key(model(1, kv_cache_memory_bytes=1))
    assert engine_key(model(1)) != engine_key(model(2))


def _checkpoint(folder: Path, chat: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    template = {"chat_template": "{{ messages }}"} if chat else {}
    (folder / "tokenizer_config.json").write_text(json.dumps(template))
    return folder


def test_checkpoint_folders(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "checkpoint-1000")
    b = _checkpoint(tmp_path / "checkpoint-500", chat=False)
    (tmp_path / "checkpoint-9").mkdir()
    (tmp_path / "checkpoint-9" / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    assert list(checkpoints.checkpoints_in(tmp_path)) == [b, a]
    assert checkpoints.prompt_format(a) is CompletionFormat.CHAT
    assert checkpoints.prompt_format(b) is CompletionFormat.COMPLETION


def test_fingerprint_follows_content_not_place(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a")
    b = _checkpoint(tmp_path / "b")
    assert checkpoints.fingerprint(a) == checkpoints.fingerprint(b)
    (b / "model.safetensors").write_bytes(b"weightz")
    assert checkpoints.fingerprint(a) != checkpoints.fingerprint(b)
    (b / "model.safetensors").write_bytes(b"weights")
    (b / "extra.json").write_text("{}")
    assert checkpoints.fingerprint(a) != checkpoints.fingerprint(b)


def test_fingerprint_of_a_large_file_samples_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "WHOLE_FILE_BYTES", 64)
    monkeypatch.setattr(checkpoints, "SAMPLE_BYTES", 8)
    a = _checkpoint(tmp_path / "a")
    (a / "model.safetensors").write_bytes(bytes(range(200)))
    before = checkpoints.fingerprint(a)
    changed = bytearray(range(200))
    changed[100] ^= 1
    (a / "model.safetensors").write_bytes(bytes(changed))
    assert checkpoints.fingerprint(a) != before


def test_natural_key() -> None:
    names = ["checkpoint-1000", "checkpoint-50", "checkpoint-500", "final"]
    assert sorted(names, key=checkpoints.natural_key) == [
        "checkpoint-50",
        "checkpoint-500",
        "checkpoint-1000",
        "final",
    ]


def test_completion_rows_number_samples_and_replace_nul() -> None:
    work = Work(
        run_id=uuid.uuid4(),
        model=model(3),
        problem=Problem(id=9, task_id="T/9"),
        role=Role.TEST,
        count=5,
        generation=RunGeneration(),
    )
    work.model.format = "completion"
    rows = completion_rows(
        work, "g", 3, [Generated("a\x00b", 4, 2, "stop", 1.5), Generated("c", 4, None, None, 2.0)]
    )
    assert rows == [
        {
            "model_id": 3,
            "problem_id": 9,
            "role": "test",
            "generation": "g",
            "sample_index": 3,
            "format": "completion",
            "text": "a\ufffdb",
            "prompt_tokens": 4,
            "completion_tokens": 2,
            "finish_reason": "stop",
            "latency_ms": 1.5,
        },
        {
            "model_id": 3,
            "problem_id": 9,
            "role": "test",
            "generation": "g",
            "sample_index": 4,
            "format": "completion",
            "text": "c",
            "prompt_tokens": 4,
            "completion_tokens": None,
            "finish_reason": None,
            "latency_ms": 2.0,
        },
    ]

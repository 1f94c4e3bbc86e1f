"""The difficulty probe on a real model: features read through vLLM's real engine from
the tiny random Llama (tests/tiny_model.py), and ``coderm difficulty train`` then
``predict`` on a run made by all four services with that model as the policy.

Random weights answer without code, so every pass rate of such a run is 0: these tests
check the plumbing (the feature is the model's final hidden state of the prompt's last
token, of the model's width, repeatable; the commands read the run's pass rates,
train, write, check and apply a probe; user errors come before a model loads), not
that a probe predicts anything; tests/unit/test_difficulty.py checks the learning.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.generator.prompt_features import (
    FEATURE_KIND,
    PolicyFeatureError,
    PromptFeatureReader,
    VllmOptions,
    feature_reader,
    solution_requests,
)
from shared.db.models import Problem
from shared.enums import CompletionFormat
from tests.stack import Services, Stack, cli, query, submit, wait_run_finished

pytestmark = [
    pytest.mark.long,
    pytest.mark.vllm,
    # torch and vLLM warn about their own internals while vLLM is imported and started.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

HIDDEN_SIZE = 64  # tests/tiny_model.py
MAX_MODEL_LEN = 2048
ENGINE_ARGS = {"enforce_eager": True, "kv_cache_memory_bytes": 64 * 2**20}


def problem(task_id: str, prompt: str) -> Problem:
    """A problem row as the generator reads it (not stored)."""
    return Problem(
        task_id=task_id,
        prompt=prompt,
        entry_point="f",
        test_prompt=None,
        canonical_solution="",
        solution_messages=None,
        test_messages=None,
    )


DOUBLE = problem("T/double", 'def f(x):\n    """Return twice x."""\n')
REVERSE = problem("T/reverse", 'def f(s):\n    """Return s reversed."""\n')


@pytest.fixture(scope="module")
def reader(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PromptFeatureReader]:
    """The tiny model loaded as a pooling model in this process, for the module."""
    options = VllmOptions(
        str(tiny_model_dir), dtype="float32", max_model_len=MAX_MODEL_LEN, engine_args=ENGINE_ARGS
    )
    with feature_reader(options, cache_dir=tmp_path_factory.mktemp("vllm-cache")) as opened:
        yield opened


def test_features_are_the_final_hidden_state_of_the_last_prompt_token(
    reader: PromptFeatureReader, tiny_model_dir: Path
) -> None:
    """One row a prompt, of the model's hidden size; equal to the last layer's output
    (after the final norm) at the last token under ``transformers``."""
    import torch
    from transformers import AutoModelForCausalLM

    requests = solution_requests([DOUBLE, REVERSE], CompletionFormat.CHAT)
    features = reader.features(requests)
    assert reader.hidden_size == HIDDEN_SIZE
    assert features.shape == (2, HIDDEN_SIZE)
    assert features.dtype == np.float64
    assert np.all(np.isfinite(features))

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    with torch.no_grad():
        for row, ids in zip(features, reader.token_ids(requests), strict=True):
            out = model(torch.tensor([ids]), output_hidden_states=True)
            expected = out.hidden_states[-1][0, -1].numpy()
            np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-4)


def test_identical_prompts_give_identical_features(reader: PromptFeatureReader) -> None:
    """The same prompt gives the same vector, in one batch, alone, or in another format
    never (the chat template changes the prompt)."""
    chat = solution_requests([DOUBLE, REVERSE, DOUBLE], CompletionFormat.CHAT)
    together = reader.features(chat)
    alone = reader.features(chat[:1])
    assert np.array_equal(together[0], together[2])
    assert np.array_equal(together[0], alone[0])
    assert not np.array_equal(together[0], together[1])
    plain = reader.features(solution_requests([DOUBLE], CompletionFormat.COMPLETION))
    assert not np.array_equal(plain[0], together[0])


def test_a_prompt_longer_than_the_context_is_refused(reader: PromptFeatureReader) -> None:
    long = problem("T/long", "def f(x):\n" + "    x = x + 1\n" * 2000)
    with pytest.raises(PolicyFeatureError, match=r"T/long \(\d+ tokens\)"):
        reader.features(solution_requests([DOUBLE, long], CompletionFormat.CHAT), ["T/d", "T/long"])


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a successful ``coderm`` command."""
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def user_error(stack: Stack, *args: str) -> str:
    """The ``error:`` line of a ``coderm`` command that must fail as a user error."""
    result = cli(stack, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error:" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    return " ".join(result.stdout.split())


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.usefixtures("imported")
def test_train_then_predict_on_a_real_run(
    stack: Stack, services: Services, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A run of the tiny vllm policy (3 problems, 2 samples each) gives the labels;
    ``train`` writes a probe naming the policy's fingerprint; ``predict`` applies it to
    the first 4 problems; mistakes are refused as user errors."""
    register = (
        *("--backend", "vllm", "--checkpoint", str(tiny_model_dir), "--role", "policy"),
        *("--dtype", "float32", "--max-model-len", str(MAX_MODEL_LEN), "--max-tokens", "8"),
        *(f"--engine-arg={key}={json.dumps(value)}" for key, value in ENGINE_ARGS.items()),
    )
    ok(cli(stack, "model", "add", "tiny-probe", *register))
    ok(cli(stack, "model", "add", "tiny-probe-copy", *register))
    run_id = submit(
        stack,
        *("--benchmark", "humaneval", "--policy", "tiny-probe", "--test-model", "codegen16b"),
        *("--n", "2", "--m", "2", "--problems", "3"),
    )
    wait_run_finished(stack, services, run_id, timeout=600)

    probe_file = tmp_path / "probe.json"
    out = ("--out", str(probe_file))
    assert "needs a vllm-backed policy" in user_error(
        stack, "difficulty", "train", "--policy", "codegen16b", "--benchmark", "humaneval", *out
    )
    assert "no unique run matches" in user_error(
        stack, "difficulty", "train", "--policy", "tiny-probe", "--runs", "ffffffff", *out
    )
    assert "is of policy 'tiny-probe', not 'tiny-probe-copy'" in user_error(
        stack, "difficulty", "train", "--policy", "tiny-probe-copy", "--runs", run_id, *out
    )
    assert "no finished run of policy 'tiny-probe-copy'" in user_error(
        stack,
        "difficulty",
        "train",
        "--policy",
        "tiny-probe-copy",
        "--benchmark",
        "humaneval",
        *out,
    )
    assert not probe_file.exists()

    trained = ok(
        cli(stack, "difficulty", "train", "--policy", "tiny-probe", "--runs", run_id[:8], *out)
    )
    assert "3 labelled problems from 1 run of tiny-probe" in trained
    assert "every observed pass rate is 0" in trained
    assert "held out" in trained and "Pearson r" in trained
    document = json.loads(probe_file.read_text())
    (fingerprint,) = query(stack, "SELECT fingerprint FROM models WHERE name = 'tiny-probe'")
    assert document["metadata"]["policy"] == "tiny-probe"
    assert document["metadata"]["policy_fingerprint"] == fingerprint["fingerprint"]
    assert document["metadata"]["feature_kind"] == FEATURE_KIND
    assert document["metadata"]["feature_dim"] == HIDDEN_SIZE
    assert document["metadata"]["training_runs"] == [str(uuid.UUID(run_id))]
    assert (
        document["report"]["train"]["problems"] + document["report"]["validation"]["problems"] == 3
    )

    predictions_file = tmp_path / "lambdas.json"
    ok(
        cli(
            stack,
            *("difficulty", "predict", "--probe", str(probe_file), "--benchmark", "humaneval"),
            *("--problems", "4", "--out", str(predictions_file)),
        )
    )
    written = json.loads(predictions_file.read_text())
    assert written["policy"] == "tiny-probe"
    predictions = written["predictions"]
    assert list(predictions) == [f"HumanEval/{i}" for i in range(4)]
    # trained on pass rates that are all 0, the probe predicts about 0 everywhere
    assert all(0.0 <= value < 0.1 for value in predictions.values())

    assert "needs a vllm-backed policy" in user_error(
        stack,
        *("difficulty", "predict", "--probe", str(probe_file), "--benchmark", "humaneval"),
        *("--policy", "codegen16b"),
    )
    document["metadata"]["policy_fingerprint"] = "0" * 64
    other = tmp_path / "other-policy.json"
    other.write_text(json.dumps(document))
    assert "only reads the hidden states of the model it was trained on" in user_error(
        stack, "difficulty", "predict", "--probe", str(other), "--benchmark", "humaneval"
    )
    other.write_text("{}")
    assert "not a probe file" in user_error(
        stack, "difficulty", "predict", "--probe", str(other), "--benchmark", "humaneval"
    )

"""The difficulty probe's regressor (shared/core/difficulty.py) and the checks around
it that need no model: what it learns, how it is saved, that it is deterministic, what
it refuses; which policies can give features, and which probes fit a policy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from services.cli.difficulty import Policy, check_probe
from services.cli.errors import UserError
from services.generator.prompt_features import (
    FEATURE_KIND,
    PolicyFeatureError,
    VllmOptions,
    feature_options,
    solution_requests,
)
from shared.core.difficulty import (
    PROBE_VERSION,
    DifficultyProbe,
    ProbeFormatError,
    ProbeMetadata,
    ProbeSettings,
    pearson,
    train_probe,
)
from shared.core.prompts import ProblemText, build_prompt
from shared.db.models import Model, Problem
from shared.enums import CompletionFormat, Role

FINGERPRINT = "ab" * 32


def metadata(dims: int, **changes: object) -> ProbeMetadata:
    values: dict[str, object] = {
        "policy": "policy-a",
        "policy_fingerprint": FINGERPRINT,
        "feature_kind": FEATURE_KIND,
        "feature_dim": dims,
        "training_runs": ("run-1", "run-2"),
        "context": {"policy_format": "chat"},
    }
    values.update(changes)
    return ProbeMetadata(**values)  # type: ignore[arg-type]


def synthetic(problems: int = 240, dims: int = 32, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Features on wildly different scales and offsets (as hidden states are; the same
    for every ``seed``), and pass rates that are a smooth function of a few of them,
    rounded to a 10-sample rate; ``seed`` draws the problems."""
    layout = np.random.default_rng(1234)
    scales = layout.uniform(0.01, 100.0, size=dims)
    offsets = layout.normal(0.0, 50.0, size=dims)
    latent = np.random.default_rng(seed).normal(size=(problems, dims))
    features = latent * scales + offsets
    signal = 2.0 * latent[:, 0] - 1.5 * latent[:, 1] + np.abs(latent[:, 2]) - 0.8
    rates = np.round(10.0 / (1.0 + np.exp(-signal))) / 10.0
    return features, rates


@pytest.fixture(scope="module")
def trained() -> tuple[DifficultyProbe, np.ndarray, np.ndarray]:
    features, rates = synthetic()
    return train_probe(features, rates, metadata(features.shape[1])), features, rates


def test_the_probe_learns_a_synthetic_relation(
    trained: tuple[DifficultyProbe, np.ndarray, np.ndarray],
) -> None:
    probe, features, rates = trained
    held_out = probe.report.validation
    assert held_out.problems == 48 and probe.report.train.problems == 192
    assert held_out.pearson is not None and held_out.pearson > 0.85
    assert held_out.mae < 0.5 * held_out.baseline_mae
    assert 0 < probe.report.best_epoch <= probe.report.epochs
    predicted = probe.predict(features)
    assert predicted.shape == rates.shape
    assert np.all((predicted >= 0.0) & (predicted <= 1.0))
    fresh, fresh_rates = synthetic(problems=200, seed=99)
    correlation = pearson(probe.predict(fresh), fresh_rates)
    assert correlation is not None and correlation > 0.85


def test_save_and_load_round_trip_exactly(
    trained: tuple[DifficultyProbe, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    probe, features, _ = trained
    path = tmp_path / "probe.json"
    path.write_text(probe.to_json(), encoding="utf-8")
    loaded = DifficultyProbe.from_json(path.read_text(encoding="utf-8"))
    assert loaded.metadata == probe.metadata
    assert loaded.settings == probe.settings
    assert loaded.report == probe.report
    assert np.array_equal(loaded.predict(features), probe.predict(features))
    assert loaded.to_json() == probe.to_json()
    document = json.loads(path.read_text())
    assert document["format"] == "coderm-difficulty-probe"
    assert document["version"] == PROBE_VERSION
    assert document["metadata"]["policy_fingerprint"] == FINGERPRINT
    assert document["metadata"]["training_runs"] == ["run-1", "run-2"]


def test_training_is_deterministic_for_a_seed() -> None:
    features, rates = synthetic(problems=60)
    settings = ProbeSettings(max_epochs=300, seed=3)
    first = train_probe(features, rates, metadata(32), settings)
    again = train_probe(features, rates, metadata(32), settings)
    other = train_probe(features, rates, metadata(32), ProbeSettings(max_epochs=300, seed=4))
    assert first.to_json() == again.to_json()
    assert np.array_equal(first.predict(features), again.predict(features))
    assert not np.array_equal(first.predict(features), other.predict(features))


def test_constant_pass_rates_give_that_constant_and_no_correlation() -> None:
    features, _ = synthetic(problems=20)
    probe = train_probe(features, np.zeros(20), metadata(32), ProbeSettings(max_epochs=200))
    assert np.all(probe.predict(features) < 0.01)
    assert probe.report.validation.pearson is None
    assert probe.report.validation.baseline_mae == 0.0


def test_early_stopping_on_noise_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(80, 16))
    rates = rng.uniform(size=80)
    settings = ProbeSettings(max_epochs=5000, patience=25)
    probe = train_probe(features, rates, metadata(16), settings)
    assert probe.report.epochs < settings.max_epochs
    assert probe.report.epochs - probe.report.best_epoch == settings.patience


def test_two_problems_are_enough_and_the_split_always_leaves_one_each_side() -> None:
    assert ProbeSettings().split_sizes(2) == (1, 1)
    assert ProbeSettings().split_sizes(3) == (2, 1)
    assert ProbeSettings(validation_fraction=0.9).split_sizes(5) == (1, 4)
    assert ProbeSettings().split_sizes(100) == (80, 20)
    probe = train_probe([[0.0, 1.0], [1.0, 0.0]], [0.2, 0.6], metadata(2))
    assert probe.report.train.problems == probe.report.validation.problems == 1


def test_pearson() -> None:
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]) == pytest.approx(0.99795, abs=1e-5)
    assert pearson([1.0, 2.0], [2.0, 1.0]) == pytest.approx(-1.0)
    assert pearson([1.0], [1.0]) is None
    assert pearson([1.0, 1.0, 1.0], [0.0, 0.5, 1.0]) is None
    with pytest.raises(ValueError):
        pearson([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("features", "rates", "message"),
    [
        ([[0.0, 1.0]], [0.5], "at least 2 labelled problems"),
        ([[0.0, 1.0], [1.0, math.nan]], [0.5, 0.5], "NaN"),
        ([[0.0, 1.0], [1.0, math.inf]], [0.5, 0.5], "NaN"),
        ([[0.0, 1.0], [1.0, 0.0]], [0.5, 1.5], r"\[0, 1\]"),
        ([[0.0, 1.0], [1.0, 0.0]], [0.5, -0.1], r"\[0, 1\]"),
        ([[0.0, 1.0], [1.0, 0.0]], [0.5, math.nan], r"\[0, 1\]"),
        ([[0.0, 1.0], [1.0, 0.0]], [0.5], "one pass rate a problem"),
        ([0.0, 1.0], [0.5, 0.5], "2-D"),
        (np.zeros((0, 2)), [], "2-D"),
        ([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0]], [0.5, 0.5], "the metadata says 2"),
    ],
)
def test_bad_training_inputs_are_refused(features: object, rates: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train_probe(features, rates, metadata(2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"hidden_units": 0},
        {"learning_rate": 0.0},
        {"learning_rate": math.nan},
        {"weight_decay": -1.0},
        {"max_epochs": 0},
        {"patience": 0},
        {"validation_fraction": 0.0},
        {"validation_fraction": 1.0},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ProbeSettings(**changes)  # type: ignore[arg-type]


def test_predict_refuses_other_feature_lengths_and_non_finite_values(
    trained: tuple[DifficultyProbe, np.ndarray, np.ndarray],
) -> None:
    probe, features, _ = trained
    with pytest.raises(ValueError, match="features of length 32, got 31"):
        probe.predict(features[:, :31])
    broken = features[:3].copy()
    broken[1, 4] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        probe.predict(broken)


def test_malformed_probe_files_are_refused(
    trained: tuple[DifficultyProbe, np.ndarray, np.ndarray],
) -> None:
    probe, _, _ = trained
    good = json.loads(probe.to_json())

    def altered(path: tuple[str, ...], value: object) -> str:
        document = json.loads(json.dumps(good))
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return json.dumps(document)

    cases = {
        "not json {": "not JSON",
        "[1, 2]": "no format",
        altered(("format",), "something-else"): "no format",
        altered(("version",), PROBE_VERSION + 1): "version",
        altered(("parameters", "b1"), [0.0]): "malformed",
        altered(("parameters", "feature_scale"), [0.0] * 32): "malformed",
        altered(("metadata", "feature_dim"), 31): "malformed",
        altered(("settings", "hidden_units"), 63): "malformed",
        altered(("parameters", "w1"), "no"): "malformed",
        altered(("metadata",), {}): "malformed",
    }
    for text, message in cases.items():
        with pytest.raises(ProbeFormatError, match=message):
            DifficultyProbe.from_json(text)


def model_row(**values: object) -> Model:
    fields: dict[str, object] = {
        "name": "m",
        "backend": "vllm",
        "role": "policy",
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 2048,
        "format": "chat",
        "dtype": "float32",
        "max_model_len": 512,
        "config": {"engine_args": {"enforce_eager": True}},
    }
    fields.update(values)
    return Model(**fields)


@pytest.mark.parametrize("backend", ["openai", "replay"])
def test_a_policy_of_another_backend_cannot_give_features(backend: str) -> None:
    with pytest.raises(PolicyFeatureError, match="needs a vllm-backed policy"):
        feature_options(model_row(backend=backend, checkpoint=None))


def test_a_vllm_policy_gives_its_registry_options_with_overrides(tmp_path: Path) -> None:
    options = feature_options(model_row(checkpoint=str(tmp_path)), {"kv_cache_memory_bytes": 2**20})
    assert options == VllmOptions(
        checkpoint=str(tmp_path),
        dtype="float32",
        max_model_len=512,
        engine_args={"enforce_eager": True, "kv_cache_memory_bytes": 2**20},
    )
    with pytest.raises(PolicyFeatureError, match="not on this machine"):
        feature_options(model_row(checkpoint=str(tmp_path / "elsewhere")))


@pytest.mark.parametrize("fmt", [CompletionFormat.CHAT, CompletionFormat.COMPLETION])
def test_feature_prompts_are_the_generators_solution_prompts(fmt: CompletionFormat) -> None:
    problem = Problem(
        task_id="T/0",
        prompt='def f(x):\n    """Double x."""\n',
        entry_point="f",
        test_prompt=None,
        canonical_solution="    return 2 * x\n",
        solution_messages=None,
        test_messages=None,
    )
    (request,) = solution_requests([problem], fmt)
    expected = build_prompt(
        ProblemText("T/0", problem.prompt, "f", canonical_solution=problem.canonical_solution),
        Role.SOLUTION,
        fmt,
    )
    assert (request.format, request.messages, request.text) == (
        expected.format,
        expected.messages,
        expected.text,
    )


def test_a_probe_is_applied_only_to_its_own_policy(
    trained: tuple[DifficultyProbe, np.ndarray, np.ndarray],
) -> None:
    probe, _, _ = trained
    options = VllmOptions(checkpoint="/models/a")
    same = Policy("copy-of-a", CompletionFormat.CHAT, options, FINGERPRINT)
    check_probe(probe, same)
    with pytest.raises(UserError, match="only reads the hidden states of the model"):
        check_probe(probe, Policy("policy-b", CompletionFormat.CHAT, options, "cd" * 32))
    with pytest.raises(UserError, match="trained on chat prompts"):
        check_probe(probe, Policy("policy-a", CompletionFormat.COMPLETION, options, FINGERPRINT))
    other_feature = DifficultyProbe.from_json(
        probe.to_json().replace(FEATURE_KIND, "some-other-feature")
    )
    with pytest.raises(UserError, match="trained on feature 'some-other-feature'"):
        check_probe(other_feature, same)

"""``coderm run`` and ``coderm watch`` take a run's defaults from one place
(``shared.core.run_request``): the commands run through typer's ``CliRunner`` with
the submission and the watch loop replaced, so no stack is needed."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import submission
from services.cli import watch as watch_cmd
from services.cli.app import app
from shared.core.run_profile import RunProfile
from shared.core.run_request import RUN_DEFAULTS, RunSettings

MODELS = ["--benchmark", "humaneval", "--test-model", "tester"]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``run`` submits and what ``watch`` watches, instead of doing it."""
    seen: dict[str, Any] = {}

    async def submit_run(request: Any, checkpoint: Any = None, config: Any = None) -> Any:
        seen["run"] = request
        return submission.Submitted(uuid.uuid4(), request.policy, False)

    async def watch_folder(spec: watch_cmd.Watch, once: bool, show: watch_cmd.Show) -> bool:
        seen["watch"] = spec
        return True

    monkeypatch.setattr(submission, "submit_run", submit_run)
    monkeypatch.setattr(watch_cmd, "watch_folder", watch_folder)
    monkeypatch.setenv("COLUMNS", "300")
    return seen


def _invoke(arguments: list[str]) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output


def test_run_and_watch_submit_the_same_defaults(captured: dict[str, Any], tmp_path: Path) -> None:
    _invoke(["run", *MODELS, "--policy", "policy-model", "--detach"])
    _invoke(["watch", str(tmp_path), *MODELS, "--once"])
    run, spec = captured["run"], captured["watch"]
    assert dataclasses.replace(spec.template, policy="policy-model") == run
    for field in dataclasses.fields(RunSettings):
        assert getattr(run, field.name) == getattr(RUN_DEFAULTS, field.name), field.name
    assert spec.folder == tmp_path.resolve() and spec.template.name == ""


def test_watch_options_reach_its_template(captured: dict[str, Any], tmp_path: Path) -> None:
    options = ["--n", "3", "--m", "4", "--problems", "2", "--seed", "5", "--max-tokens", "64"]
    _invoke(["watch", str(tmp_path), *MODELS, *options, "--settle", "1", "--once"])
    spec = captured["watch"]
    expected = RunSettings(n_solutions=3, n_tests=4, problems=2, seed=5, max_tokens=64)
    assert spec.template == submission.run_request(
        benchmark="humaneval", policy="", test_model="tester", settings=expected
    )
    assert spec.settle_s == 1.0


def test_run_request_carries_every_setting() -> None:
    settings = RunSettings(
        n_solutions=7,
        n_tests=0,
        problems=3,
        assert_time_limit_s=0.5,
        ground_truth_time_limit_s=9.0,
        seed=11,
        max_tokens=128,
        ground_truth="humaneval+",
        adaptive=True,
        profile=RunProfile.CODERM_REF,
    )
    request = submission.run_request(
        benchmark="b", policy="p", test_model="t", name="n", settings=settings
    )
    for field in dataclasses.fields(RunSettings):
        assert getattr(request, field.name) == getattr(settings, field.name), field.name
    assert (request.benchmark, request.policy, request.test_model, request.name) == (
        "b",
        "p",
        "t",
        "n",
    )

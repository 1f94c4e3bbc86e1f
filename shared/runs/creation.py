"""Creating a run: its problems, models, sampling snapshot, limits, execution and
ground-truth profiles, in one transaction (the CLI's ``coderm run`` and ``watch`` call
it; a reward service will too). Publishing its generate requests is the caller's part
(:func:`run_start_requests`, after the transaction commits). A run with a test
budget also records its first round (:mod:`shared.runs.rounds`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.profiles import AdaptiveLimit, ExecLimits
from shared.core.round_plan import Budget
from shared.core.run_profile import check_test_format
from shared.core.run_request import RunSettings
from shared.core.sampling import RunGeneration, SamplingSettings
from shared.db.models import Benchmark, Model, Problem, Run, RunProblem
from shared.enums import CompletionFormat, ModelRole, Role, RunState, TestStyle
from shared.errors import RequestError
from shared.messages import Message
from shared.runs.ground_truth import resolve_ground_truth
from shared.runs.rounds import record_first_round, start_requests


async def benchmark_problems(session: AsyncSession, name: str) -> list[Problem]:
    """The benchmark's problems in their file order; raises if it was never imported."""
    benchmark_id = await session.scalar(select(Benchmark.id).where(Benchmark.name == name))
    if benchmark_id is None:
        raise RequestError(f"benchmark {name!r} is not imported (coderm import-benchmark)")
    rows = await session.scalars(
        select(Problem).where(Problem.benchmark_id == benchmark_id).order_by(Problem.position)
    )
    return list(rows)


@dataclass(frozen=True, kw_only=True)
class RunRequest(RunSettings):
    """What a run is asked for (``coderm run``, ``coderm watch``): what it runs, its name,
    and how it samples, executes and labels (:class:`~shared.core.run_request.RunSettings`,
    whose defaults are the commands' defaults)."""

    benchmark: str
    policy: str
    test_model: str
    name: str = ""
    task_ids: tuple[str, ...] | None = None
    """Only these problems of the benchmark (``None``: the first ``problems``)."""


def _generation(request: RunRequest, policy: Model, test_model: Model) -> RunGeneration:
    """The run's seed and each role's sampling, snapshotted from the registry (the run's
    ``max_tokens``, when given, replaces both models')."""
    sampling = {}
    for model, role in ((policy, Role.SOLUTION), (test_model, Role.TEST)):
        if not ModelRole(model.role).serves(role):
            raise RequestError(f"model {model.name!r} is a {model.role} model, not for {role}s")
        sampling[role.value] = SamplingSettings(
            temperature=model.temperature,
            top_p=model.top_p,
            max_tokens=request.max_tokens or model.max_tokens,
        )
    return RunGeneration(seed=request.seed, **sampling)


async def create_run(session: AsyncSession, request: RunRequest) -> tuple[Run, list[int]]:
    """Insert the run and its problems; return it with the problem ids to request."""
    problems = await benchmark_problems(session, request.benchmark)
    if request.task_ids is not None:
        wanted = set(request.task_ids)
        problems = [p for p in problems if p.task_id in wanted]
        if len(problems) != len(wanted):
            raise RequestError(f"{request.benchmark} lacks some of the problems asked for")
    if request.problems is not None:
        problems = problems[: request.problems]
    models = {
        m.name: m
        for m in await session.scalars(
            select(Model).where(Model.name.in_([request.policy, request.test_model]))
        )
    }
    for needed in (request.policy, request.test_model):
        if needed not in models:
            raise RequestError(f"model {needed!r} is not registered (coderm model add)")
    generation = _generation(request, models[request.policy], models[request.test_model])
    test_format = CompletionFormat(models[request.test_model].format)
    style = test_format.test_style()
    try:
        check_test_format(request.profile, test_format)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    defaults = ExecLimits.default_for(style, request.assert_time_limit_s)
    limits = ExecLimits.model_validate(
        {
            **defaults.model_dump(),
            "ground_truth_time_limit_s": request.ground_truth_time_limit_s,
            "adaptive": AdaptiveLimit() if request.adaptive else None,
            "reference_globals": request.profile.reference_globals and style is TestStyle.UNITTEST,
        }
    )
    if request.adaptive and style is not TestStyle.UNITTEST:
        raise RequestError("--adaptive applies to unittest-style tests only")
    budget = request.budget()
    if budget is None and request.lambdas is not None:
        raise RequestError("--difficulty needs --test-budget (and --allocation paper)")
    if budget is not None:
        try:
            budget.check(len(problems), request.n_tests)
        except ValueError as exc:
            raise RequestError(f"--test-budget: {exc}") from None
        missing = [p.task_id for p in problems if p.task_id not in (budget.lambdas or {})]
        if budget.lambdas is not None and missing:
            raise RequestError(
                f"--difficulty has no predicted pass rate for {len(missing)} problems "
                f"(e.g. {missing[0]}): predict them for this benchmark"
            )
    ground_truth = await resolve_ground_truth(
        session, request.ground_truth or request.benchmark, problems, limits
    )
    run = Run(
        id=uuid.uuid4(),
        name=request.name,
        benchmark_id=problems[0].benchmark_id if problems else 0,
        policy_model_id=models[request.policy].id,
        test_model_id=models[request.test_model].id,
        n_solutions=request.n_solutions,
        n_tests=request.n_tests,
        test_style=style.value,
        exec_profile=limits.exec_profile(),
        ground_truth_profile=ground_truth.profile,
        config={
            "profile": request.profile.value,
            "ground_truth": ground_truth.config,
            "limits": limits.model_dump(mode="json"),
            "problems": len(problems),
            "generation": generation.model_dump(mode="json"),
            **({"budget": budget.as_config()} if budget else {}),
        },
        state=RunState.RUNNING.value,
    )
    session.add(run)
    await session.flush()
    session.add_all(RunProblem(run_id=run.id, problem_id=p.id) for p in problems)
    if budget is not None:
        await session.flush()
        await record_first_round(session, run.id, [p.id for p in problems], budget)
    return run, [p.id for p in problems]


def run_start_requests(run: Run, problem_ids: list[int]) -> list[Message]:
    """The generate requests that start a run made by :func:`create_run` (to publish
    once its transaction commits)."""
    return start_requests(
        run.id,
        problem_ids,
        run.n_solutions,
        run.n_tests,
        Budget.from_config(run.config),
    )

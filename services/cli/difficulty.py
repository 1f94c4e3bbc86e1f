"""``coderm difficulty train|predict``: the paper's difficulty probe on the command line.

``train`` takes the pass rates a vllm-backed policy reached on the problems of finished
runs (the share of correct solution samples, pooled over the runs that share a
problem), reads each problem's feature from the policy's checkpoint (the final hidden
state of its solution prompt's last token, :mod:`services.generator.prompt_features`),
fits the probe (:mod:`shared.core.difficulty`) and writes it to a JSON file with what
it was trained on. ``predict`` loads such a file, checks it belongs to the policy
(checkpoint fingerprint, prompt format, feature), reads the features of a benchmark's
problems and prints or writes the predicted pass rate of each one.

Both commands load the policy in this process (they do not go through a running
generator), after every database check has passed, so a mistake is reported in
seconds, not after a model has loaded.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import checkpoints, registry, store
from services.cli.errors import UserError
from services.cli.models import parse_engine_args
from services.cli.shell import console, user_errors, with_sessions
from services.generator.prompt_features import (
    FEATURE_KIND,
    VllmOptions,
    feature_options,
    solution_prompt_features,
)
from shared.core.difficulty import (
    DifficultyProbe,
    ProbeFormatError,
    ProbeMetadata,
    ProbeSettings,
    SplitMetrics,
    train_probe,
)
from shared.db.matrices import load_matrices
from shared.db.models import Benchmark, Model, Problem, Run, RunProblem
from shared.enums import CompletionFormat, RunState
from shared.runs.creation import benchmark_problems

difficulty_app = typer.Typer(
    help="The difficulty probe: predict a problem's pass rate from the policy's hidden "
    "state before sampling (needs a vllm-backed policy).",
    no_args_is_help=True,
)

DEFAULTS = ProbeSettings()


@dataclass(frozen=True)
class Policy:
    """A vllm-backed policy as the probe sees it: the engine options to load it, the
    format its prompts are built for, and its checkpoint's fingerprint."""

    name: str
    format: CompletionFormat
    options: VllmOptions
    fingerprint: str


@dataclass(frozen=True)
class LabelledProblem:
    """A problem with the pass rate observed on it: ``correct`` of ``samples`` solution
    samples, over every training run that has it."""

    problem: Problem
    benchmark: str
    correct: int
    samples: int

    @property
    def pass_rate(self) -> float:
        """The observed pass rate lambda."""
        return self.correct / self.samples


@dataclass(frozen=True)
class TrainingSet:
    """What ``train`` learns from."""

    policy: Policy
    runs: tuple[uuid.UUID, ...]
    problems: tuple[LabelledProblem, ...]


def _policy(model: Model, engine_args: dict[str, Any]) -> Policy:
    """The probe's view of ``model``; a user error unless it is vllm-backed with its
    checkpoint on this machine (the fingerprint is taken from the folder itself)."""
    options = feature_options(model, engine_args)
    return Policy(
        name=model.name,
        format=CompletionFormat(model.format),
        options=options,
        fingerprint=checkpoints.fingerprint(Path(options.checkpoint)),
    )


async def _explicit_runs(session: AsyncSession, model: Model, refs: Sequence[str]) -> list[Run]:
    """The runs named by id or prefix: each of ``model``'s and finished."""
    runs: dict[uuid.UUID, Run] = {}
    for ref in refs:
        run = await store.find_run(session, ref)
        if run.policy_model_id != model.id:
            other = await session.get(Model, run.policy_model_id)
            raise UserError(
                f"run {run.id} is of policy {other.name if other else run.policy_model_id!r}, "
                f"not {model.name!r}: a probe learns one policy's pass rates"
            )
        if run.state != RunState.FINISHED.value:
            raise UserError(f"run {run.id} is {run.state}: only finished runs' pass rates are used")
        runs.setdefault(run.id, run)
    return list(runs.values())


async def _benchmark_runs(session: AsyncSession, model: Model, names: Sequence[str]) -> list[Run]:
    """Every finished run of ``model`` on each benchmark of ``names``."""
    runs: list[Run] = []
    for name in names:
        benchmark_id = await session.scalar(select(Benchmark.id).where(Benchmark.name == name))
        if benchmark_id is None:
            raise UserError(f"benchmark {name!r} is not imported (coderm import-benchmark)")
        found = list(
            await session.scalars(
                select(Run)
                .where(
                    Run.benchmark_id == benchmark_id,
                    Run.policy_model_id == model.id,
                    Run.state == RunState.FINISHED.value,
                )
                .order_by(Run.created_at)
            )
        )
        if not found:
            raise UserError(f"no finished run of policy {model.name!r} on benchmark {name!r}")
        runs.extend(found)
    return runs


async def _labelled(session: AsyncSession, runs: Sequence[Run]) -> list[LabelledProblem]:
    """The observed pass rates of the runs' problems, pooled over runs sharing a problem.

    A problem counts when ground truth labels it, every one of its candidate solutions
    has its label, and it has solution samples; its pass rate is the share of correct
    samples among the samples the run's profile counts (samples without code are wrong).
    """
    names = dict((await session.execute(select(Benchmark.id, Benchmark.name))).tuples().all())
    pooled: dict[int, LabelledProblem] = {}
    for run in runs:
        problems = list(
            await session.scalars(
                select(Problem)
                .join(RunProblem, RunProblem.problem_id == Problem.id)
                .where(RunProblem.run_id == run.id)
                .order_by(Problem.benchmark_id, Problem.position)
            )
        )
        by_id = {problem.id: problem for problem in problems}
        for matrix in await load_matrices(session, run, problems):
            if not matrix.labelled or matrix.missing_labels or not matrix.candidates:
                continue
            correct = sum(1 for candidate in matrix.candidates if candidate.correct)
            seen = pooled.get(matrix.problem_id)
            problem = by_id[matrix.problem_id]
            pooled[matrix.problem_id] = LabelledProblem(
                problem=problem,
                benchmark=names.get(problem.benchmark_id, str(problem.benchmark_id)),
                correct=correct + (seen.correct if seen else 0),
                samples=len(matrix.candidates) + (seen.samples if seen else 0),
            )
    return sorted(pooled.values(), key=lambda p: (p.benchmark, p.problem.position))


def _training_set(
    policy_name: str,
    run_refs: Sequence[str],
    benchmarks: Sequence[str],
    engine_args: dict[str, Any],
) -> TrainingSet:
    """The policy, its training runs and their labelled problems, from the database."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> TrainingSet:
        async with sessions() as session:
            model = await registry.get_model(session, policy_name)
            policy = _policy(model, engine_args)
            if run_refs:
                runs = await _explicit_runs(session, model, run_refs)
            else:
                runs = await _benchmark_runs(session, model, benchmarks)
            labelled = await _labelled(session, runs)
        if not labelled:
            raise UserError(
                "the runs have no labelled problems (problems with hidden tests and "
                "every solution labelled): there are no pass rates to learn from"
            )
        return TrainingSet(policy, tuple(run.id for run in runs), tuple(labelled))

    return with_sessions(work)


def _metrics_table(train: SplitMetrics, held_out: SplitMetrics) -> Table:
    table = Table(title="difficulty probe: predicted vs observed pass rate")
    table.add_column("")
    table.add_column("train", justify="right")
    table.add_column("held out", justify="right")

    def r(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    rows = (
        ("problems", str(train.problems), str(held_out.problems)),
        ("cross-entropy", f"{train.bce:.4f}", f"{held_out.bce:.4f}"),
        ("mean abs. error", f"{train.mae:.4f}", f"{held_out.mae:.4f}"),
        ("rms error", f"{train.rmse:.4f}", f"{held_out.rmse:.4f}"),
        (
            "mean abs. error of the mean",
            f"{train.baseline_mae:.4f}",
            f"{held_out.baseline_mae:.4f}",
        ),
        ("Pearson r", r(train.pearson), r(held_out.pearson)),
    )
    for row in rows:
        table.add_row(*row)
    return table


def _writable(path: Path) -> Path:
    if not path.parent.is_dir():
        raise UserError(f"folder {path.parent} does not exist")
    return path


EngineArgOption = Annotated[
    list[str] | None,
    typer.Option(
        "--engine-arg",
        help="extra vLLM engine argument KEY=VALUE for loading the policy here, over its "
        "registry entry's (repeat), e.g. gpu_memory_utilization=0.3",
    ),
]


@difficulty_app.command("train")
def train(
    policy: Annotated[str, typer.Option(help="the policy model (vllm backend)")],
    out: Annotated[Path, typer.Option(help="where to write the probe (JSON)")],
    runs: Annotated[
        list[str] | None,
        typer.Option("--runs", help="a finished run of the policy: id or unique prefix (repeat)"),
    ] = None,
    benchmark: Annotated[
        list[str] | None,
        typer.Option(help="take every finished run of the policy on this benchmark (repeat)"),
    ] = None,
    hidden_units: Annotated[int, typer.Option(min=1)] = DEFAULTS.hidden_units,
    learning_rate: Annotated[float, typer.Option(help="Adam's step size")] = DEFAULTS.learning_rate,
    weight_decay: Annotated[float, typer.Option(min=0.0)] = DEFAULTS.weight_decay,
    max_epochs: Annotated[int, typer.Option(min=1)] = DEFAULTS.max_epochs,
    patience: Annotated[
        int, typer.Option(help="epochs without a better held-out loss before stopping", min=1)
    ] = DEFAULTS.patience,
    validation_fraction: Annotated[
        float, typer.Option(help="share of the problems held out")
    ] = DEFAULTS.validation_fraction,
    seed: Annotated[int, typer.Option(help="split and initialisation")] = DEFAULTS.seed,
    engine_arg: EngineArgOption = None,
) -> None:
    """Train a probe on the pass rates of a policy's finished runs (--runs, or every run
    on --benchmark), and print its held-out error and correlation."""
    run_refs = [ref for value in runs or [] for ref in value.split(",") if ref]
    with user_errors():
        if bool(run_refs) == bool(benchmark):
            raise UserError("give the training runs: --runs RUN ... or --benchmark NAME")
        _writable(out)
        try:
            settings = ProbeSettings(
                hidden_units=hidden_units,
                learning_rate=learning_rate,
                weight_decay=weight_decay,
                max_epochs=max_epochs,
                patience=patience,
                validation_fraction=validation_fraction,
                seed=seed,
            )
        except ValueError as error:
            raise UserError(str(error)) from error
        engine_args = parse_engine_args(engine_arg or [])
    data = _training_set(policy, run_refs, benchmark or [], engine_args)
    rates = [p.pass_rate for p in data.problems]
    with user_errors():
        try:
            settings.split_sizes(len(rates))
        except ValueError as error:
            raise UserError(str(error)) from error
    runs_text = f"{len(data.runs)} run{'s' if len(data.runs) != 1 else ''}"
    console.print(
        f"{len(rates)} labelled problems from {runs_text} of {data.policy.name}; "
        "reading their features with vLLM"
    )
    if len(set(rates)) == 1:
        console.print(
            f"[yellow]every observed pass rate is {rates[0]:g}: the probe can only learn "
            "that constant[/yellow]"
        )
    with user_errors():
        features = solution_prompt_features(
            data.policy.options, data.policy.format, [p.problem for p in data.problems]
        )
    metadata = ProbeMetadata(
        policy=data.policy.name,
        policy_fingerprint=data.policy.fingerprint,
        feature_kind=FEATURE_KIND,
        feature_dim=int(features.shape[1]),
        training_runs=tuple(str(run) for run in data.runs),
        context={
            "policy_format": data.policy.format.value,
            "checkpoint": data.policy.options.checkpoint,
            "dtype": data.policy.options.dtype,
            "benchmarks": ",".join(sorted({p.benchmark for p in data.problems})),
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    )
    with user_errors():
        try:
            probe = train_probe(features, rates, metadata, settings)
        except ValueError as error:
            raise UserError(f"cannot train on these features: {error}") from error
        out.write_text(probe.to_json(), encoding="utf-8")
    report = probe.report
    console.print(_metrics_table(report.train, report.validation))
    console.print(
        f"kept epoch {report.best_epoch} of {report.epochs} (lowest held-out cross-entropy)"
    )
    console.print(f"probe written to {out} (feature length {metadata.feature_dim})")


def _load_probe(path: Path) -> DifficultyProbe:
    try:
        return DifficultyProbe.from_json(path.read_text(encoding="utf-8"))
    except ProbeFormatError as error:
        raise UserError(f"{path}: {error}") from error


def check_probe(probe: DifficultyProbe, policy: Policy) -> None:
    """A user error unless ``probe`` was trained on this policy's feature: the same
    feature kind, checkpoint content and prompt format."""
    meta = probe.metadata
    if meta.feature_kind != FEATURE_KIND:
        raise UserError(
            f"the probe was trained on feature {meta.feature_kind!r}; this coderm reads "
            f"{FEATURE_KIND!r}: train it again"
        )
    if meta.policy_fingerprint != policy.fingerprint:
        raise UserError(
            f"the probe was trained on policy {meta.policy!r} (checkpoint fingerprint "
            f"{meta.policy_fingerprint[:12]}), but {policy.name!r} has checkpoint "
            f"{policy.fingerprint[:12]}: a probe only reads the hidden states of the model "
            "it was trained on; train one for this policy"
        )
    trained_format = meta.context.get("policy_format")
    if trained_format is not None and trained_format != policy.format.value:
        raise UserError(
            f"the probe was trained on {trained_format} prompts, policy {policy.name!r} "
            f"takes {policy.format.value} prompts"
        )


def _prediction_problems(
    policy_name: str, benchmark: str, limit: int | None, engine_args: dict[str, Any]
) -> tuple[Policy, list[Problem]]:
    async def work(sessions: async_sessionmaker[AsyncSession]) -> tuple[Policy, list[Problem]]:
        async with sessions() as session:
            model = await registry.get_model(session, policy_name)
            problems = await benchmark_problems(session, benchmark)
        return _policy(model, engine_args), problems[:limit] if limit is not None else problems

    return with_sessions(work)


@difficulty_app.command("predict")
def predict(
    probe_file: Annotated[
        Path, typer.Option("--probe", help="a probe written by `coderm difficulty train`")
    ],
    benchmark: Annotated[str, typer.Option(help="the problems to predict")],
    problems: Annotated[int | None, typer.Option(help="only the first K problems", min=1)] = None,
    policy: Annotated[
        str | None,
        typer.Option(help="the policy to read features from [default: the probe's policy]"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the predictions as JSON here instead of a table")
    ] = None,
    engine_arg: EngineArgOption = None,
) -> None:
    """Predict the pass rate (lambda) of each problem of a benchmark with a trained probe."""
    with user_errors():
        if not probe_file.is_file():
            raise UserError(f"no probe file {probe_file}")
        probe = _load_probe(probe_file)
        if out is not None:
            _writable(out)
        engine_args = parse_engine_args(engine_arg or [])
    chosen, rows = _prediction_problems(
        policy or probe.metadata.policy, benchmark, problems, engine_args
    )
    with user_errors():
        check_probe(probe, chosen)
        if not rows:
            raise UserError(f"benchmark {benchmark!r} has no problems")
        features = solution_prompt_features(chosen.options, chosen.format, rows)
        if features.shape[1] != probe.feature_dim:
            raise UserError(
                f"policy {chosen.name!r} gives features of length {features.shape[1]}, the "
                f"probe takes {probe.feature_dim}"
            )
        try:
            lambdas = probe.predict(features)
        except ValueError as error:
            raise UserError(f"cannot predict from these features: {error}") from error
    predictions = {row.task_id: float(value) for row, value in zip(rows, lambdas, strict=True)}
    if out is not None:
        document = {
            "policy": chosen.name,
            "policy_fingerprint": chosen.fingerprint,
            "benchmark": benchmark,
            "probe": str(probe_file),
            "feature_kind": probe.metadata.feature_kind,
            "predictions": predictions,
        }
        with user_errors():
            out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        console.print(
            f"{len(predictions)} predicted pass rates written to {out} "
            f"(mean {sum(predictions.values()) / len(predictions):.3f})"
        )
        return
    table = Table(title=f"predicted pass rates: {chosen.name} on {benchmark}")
    table.add_column("task_id")
    table.add_column("lambda", justify="right")
    for task_id, value in predictions.items():
        table.add_row(task_id, f"{value:.3f}")
    console.print(table)

"""``coderm suite add|list|show``: suites of benchmarks for continuous evaluation.

A suite is a named list of *members*, each a benchmark with the settings of its runs
(unit-test model, N, M, profile and any other :class:`RunSettings` field), a
*headline* metric that picks the best checkpoint so far, and *gates*: the metrics
whose significant loss counts as a regression (``METRIC[:THRESHOLD]``, as ``coderm
compare --fail-on-regression`` reads them). ``coderm watch DIR --suite NAME`` gives
each new checkpoint one run per member (:mod:`services.cli.suite_watch`).

The pure rules live here too (member specs, the best checkpoint so far, regressions
from stored verdicts), so that they are tested without a database.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli.compare import Gate, parse_gates
from services.cli.errors import UserError
from services.cli.shell import console, with_sessions
from shared.core.analysis import STRATEGY_LABELS
from shared.core.round_plan import LIVE_ALLOCATIONS
from shared.core.run_profile import RunProfile, check_test_format
from shared.core.run_request import RUN_DEFAULTS, RunSettings
from shared.core.significance import QUALITY_CLASSIFIERS, QUALITY_FIGURES, Interval, regressed
from shared.db.models import Benchmark, CheckpointEvaluation, Model, Suite, SuiteMember
from shared.enums import CompletionFormat, ModelRole, Role

DEFAULT_HEADLINE = "codet.pass@1"
"""The metric that picks the best checkpoint so far, unless a suite names another."""

suite_app = typer.Typer(
    help="Suites of benchmarks for `coderm watch --suite`.", no_args_is_help=True
)


class SuiteError(UserError):
    """A suite request that cannot be done as asked (one ``error:`` line)."""


# --- member specs (pure) ----------------------------------------------------------------

#: ``--member`` keys (``-`` or ``_``) -> RunSettings fields; ``name``, ``benchmark`` and
#: ``test-model`` are the member's own.
SETTING_KEYS: dict[str, str] = {
    "n": "n_solutions",
    "m": "n_tests",
    "problems": "problems",
    "profile": "profile",
    "seed": "seed",
    "max-tokens": "max_tokens",
    "assert-time-limit": "assert_time_limit_s",
    "ground-truth-time-limit": "ground_truth_time_limit_s",
    "ground-truth": "ground_truth",
    "adaptive": "adaptive",
    "test-budget": "test_budget",
    "first-round": "first_round",
    "allocation": "allocation",
}
OWN_KEYS = ("name", "benchmark", "test-model")
#: Settings stored as columns of ``suite_members``; the rest go to its ``settings`` JSON.
COLUMN_FIELDS = ("n_solutions", "n_tests", "profile")
MEMBER_EXAMPLE = "benchmark=humaneval,test-model=X,n=10,m=10,profile=strict"


@dataclass(frozen=True)
class MemberSpec:
    """One member of a suite: a benchmark, its unit-test model and run settings."""

    name: str
    benchmark: str
    test_model: str
    settings: RunSettings

    def stored_settings(self) -> dict[str, Any]:
        """The RunSettings fields that are not columns, as JSON (``lambdas`` never)."""
        values = dataclasses.asdict(self.settings)
        return {k: v for k, v in values.items() if k not in COLUMN_FIELDS and k != "lambdas"}

    def describe(self) -> str:
        """The member as ``--member`` would give it (every setting that is not a default)."""
        parts = [
            f"name={self.name}",
            f"benchmark={self.benchmark}",
            f"test-model={self.test_model}",
        ]
        defaults = dataclasses.asdict(RUN_DEFAULTS)
        values = dataclasses.asdict(self.settings)
        for key, field in SETTING_KEYS.items():
            if field in ("n_solutions", "n_tests", "profile") or values[field] != defaults[field]:
                value = values[field]
                shown = value.value if isinstance(value, RunProfile) else value
                parts.append(f"{key}={'' if shown is None else shown}")
        return ",".join(parts)


def _number(key: str, text: str, kind: type[int] | type[float], minimum: float) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise SuiteError(f"--member: {key} takes a number, got {text!r}") from None
    if value < minimum or value != value or value == float("inf"):
        raise SuiteError(f"--member: {key} must be at least {minimum:g}, got {text!r}")
    return value


def _setting(key: str, field: str, text: str) -> Any:
    if field in ("n_solutions", "first_round"):
        return _number(key, text, int, 1)
    if field in ("n_tests", "seed"):
        return _number(key, text, int, 0)
    if field in ("problems", "max_tokens", "test_budget"):
        return None if text in ("", "none", "all") else _number(key, text, int, 1)
    if field in ("assert_time_limit_s", "ground_truth_time_limit_s"):
        return _number(key, text, float, 0.001)
    if field == "profile":
        try:
            return RunProfile(text)
        except ValueError:
            known = ", ".join(p.value for p in RunProfile)
            raise SuiteError(f"--member: profile is one of {known}, got {text!r}") from None
    if field == "adaptive":
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise SuiteError(f"--member: adaptive is true or false, got {text!r}")
        return text.lower() in ("true", "yes", "1")
    if field == "allocation":
        if text not in LIVE_ALLOCATIONS:
            known = ", ".join(LIVE_ALLOCATIONS)
            raise SuiteError(f"--member: allocation is one of {known}, got {text!r}")
        return text
    return text or None  # ground_truth


def parse_member(text: str) -> MemberSpec:
    """``benchmark=humaneval,test-model=X,n=10,m=10,profile=strict`` -> a member.

    ``benchmark`` and ``test-model`` are required; ``name`` defaults to the benchmark;
    the other keys are :data:`SETTING_KEYS` (``-`` or ``_`` alike), their defaults those
    of ``coderm run``. :class:`SuiteError` names a key that is unknown, repeated or
    missing, or a value out of range.
    """
    values: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower().replace("_", "-")
        if not sep or not key:
            raise SuiteError(f"--member takes KEY=VALUE pairs, e.g. {MEMBER_EXAMPLE}: {text!r}")
        if key not in SETTING_KEYS and key not in OWN_KEYS:
            known = ", ".join((*OWN_KEYS, *SETTING_KEYS))
            raise SuiteError(f"--member: unknown key {key!r} (known: {known})")
        if key in values:
            raise SuiteError(f"--member: {key} given twice in {text!r}")
        values[key] = value.strip()
    for needed in ("benchmark", "test-model"):
        if not values.get(needed):
            raise SuiteError(f"--member needs {needed}=..., e.g. {MEMBER_EXAMPLE}: {text!r}")
    settings = {
        SETTING_KEYS[k]: _setting(k, SETTING_KEYS[k], v)
        for k, v in values.items()
        if k in SETTING_KEYS
    }
    name = values.get("name") or values["benchmark"]
    if not re.fullmatch(r"[\w.+@-]{1,100}", name):
        raise SuiteError(f"--member: a name is letters, digits and . _ + @ - only: {name!r}")
    run_settings = dataclasses.replace(RUN_DEFAULTS, **settings)
    if run_settings.test_budget is None and ("first-round" in values or "allocation" in values):
        raise SuiteError("--member: first-round and allocation go with test-budget")
    return MemberSpec(name, values["benchmark"], values["test-model"], run_settings)


def member_of(row: SuiteMember) -> MemberSpec:
    """The spec a stored member was made from."""
    stored = dict(row.settings)
    settings = dataclasses.replace(
        RUN_DEFAULTS,
        n_solutions=row.n,
        n_tests=row.m,
        profile=RunProfile(row.profile),
        **{
            k: v
            for k, v in stored.items()
            if k in {f.name for f in dataclasses.fields(RunSettings)}
        },
    )
    return MemberSpec(row.name, row.benchmark, row.test_model, settings)


def check_metric(metric: str, option: str, pass_at_only: bool = False) -> str:
    """``metric`` if ``coderm compare`` computes it (``<strategy>.pass@<k>``, or with
    ``pass_at_only`` false a quality figure ``<classifier>.<figure>``); else
    :class:`SuiteError`."""
    head, _, tail = metric.partition(".")
    if head in STRATEGY_LABELS and re.fullmatch(r"pass@[1-9][0-9]*", tail):
        return metric
    if not pass_at_only and head in QUALITY_CLASSIFIERS and tail in QUALITY_FIGURES:
        return metric
    examples = "codet.pass@1, coderm_majority.pass@1" + (
        "" if pass_at_only else ", individual.precision"
    )
    raise SuiteError(f"{option}: unknown metric {metric!r} (e.g. {examples})")


def parse_suite_gates(texts: Sequence[str], headline: str) -> list[Gate]:
    """``--gate METRIC[:THRESHOLD]`` options (default: the headline at threshold 0)."""
    try:
        gates = parse_gates(texts) if texts else [Gate(headline)]
    except UserError as error:
        raise SuiteError(str(error).replace("--fail-on-regression", "--gate")) from None
    for gate in gates:
        check_metric(gate.metric, "--gate")
    return gates


# --- the best so far and regressions (pure) ----------------------------------------------


@dataclass(frozen=True)
class Evaluated:
    """An earlier checkpoint's evaluation of one member, as the rules need it."""

    sequence: int
    checkpoint: str
    run_id: str
    headline_value: float | None


def previous_of(history: Sequence[Evaluated]) -> Evaluated | None:
    """The latest earlier evaluation (highest sequence), if any."""
    return max(history, key=lambda e: e.sequence, default=None)


def best_of(history: Sequence[Evaluated]) -> Evaluated | None:
    """The earlier evaluation with the highest headline value (an undefined one never
    counts; a tie goes to the earliest checkpoint); ``None`` when no value is defined."""
    defined = [e for e in history if e.headline_value is not None]
    return min(defined, key=lambda e: (-(e.headline_value or 0.0), e.sequence), default=None)


def interval_of(data: Mapping[str, Any]) -> Interval:
    """An interval stored as JSON (``dataclasses.asdict`` of :class:`Interval`)."""
    names = {f.name for f in dataclasses.fields(Interval)}
    return Interval(**{k: v for k, v in data.items() if k in names})


def find_regressions(verdicts: Mapping[str, Any], gates: Sequence[Gate]) -> list[dict[str, Any]]:
    """One entry a gate and baseline (``previous``, ``best``) where the checkpoint is
    significantly worse by more than the gate's threshold
    (:func:`shared.core.significance.regressed`), in gate order, previous first. A
    baseline that is missing, or a gated metric it has no interval for, gives none."""
    found = []
    for gate in gates:
        for against in ("previous", "best"):
            baseline = verdicts.get(against)
            if not baseline:
                continue
            stored = {i["metric"]: i for i in baseline.get("intervals", [])}
            if gate.metric not in stored:
                continue
            interval = interval_of(stored[gate.metric])
            if regressed(interval, gate.threshold):
                found.append(
                    {
                        "against": against,
                        "baseline_checkpoint": baseline.get("checkpoint"),
                        "baseline_run_id": baseline.get("run_id"),
                        "metric": gate.metric,
                        "threshold": gate.threshold,
                        "a": interval.a,
                        "b": interval.b,
                        "delta": interval.delta,
                        "low": interval.low,
                        "high": interval.high,
                        "level": interval.level,
                        "verdict": interval.verdict,
                    }
                )
    return found


# --- storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteSpec:
    """A suite as ``coderm suite add`` gives it."""

    name: str
    members: tuple[MemberSpec, ...]
    headline: str = DEFAULT_HEADLINE
    gates: tuple[Gate, ...] = ()
    description: str = ""

    def gate_texts(self) -> list[str]:
        """The gates as stored (``METRIC:THRESHOLD``)."""
        return [f"{g.metric}:{g.threshold:g}" for g in self.gates]


@dataclass(frozen=True)
class LoadedSuite:
    """A stored suite with its members in order."""

    row: Suite
    members: tuple[tuple[SuiteMember, MemberSpec], ...]

    @property
    def gates(self) -> list[Gate]:
        """The stored gates."""
        return parse_gates(list(self.row.gates))


def check_members(members: Sequence[MemberSpec]) -> None:
    """At least one member, names unique."""
    if not members:
        raise SuiteError(f"a suite needs at least one --member, e.g. --member '{MEMBER_EXAMPLE}'")
    names = [m.name for m in members]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SuiteError(
            f"member names must differ: {', '.join(twice)} given twice (add name=... to "
            "tell members of one benchmark apart)"
        )


async def check_known(session: AsyncSession, member: MemberSpec) -> None:
    """:class:`SuiteError` unless the member's benchmarks are imported and its test model
    is registered for tests, in a format its profile can run."""
    benchmarks = set(await session.scalars(select(Benchmark.name)))
    for option, name in (
        ("benchmark", member.benchmark),
        ("ground-truth", member.settings.ground_truth),
    ):
        if name is not None and name not in benchmarks:
            known = ", ".join(sorted(benchmarks)) or "none"
            raise SuiteError(
                f"member {member.name}: {option} {name!r} is not imported "
                f"(coderm import-benchmark; imported: {known})"
            )
    model = await session.scalar(select(Model).where(Model.name == member.test_model))
    if model is None:
        raise SuiteError(
            f"member {member.name}: test model {member.test_model!r} is not registered "
            "(coderm model add, or coderm import-completions)"
        )
    if not ModelRole(model.role).serves(Role.TEST):
        raise SuiteError(f"member {member.name}: model {model.name!r} is a {model.role} model")
    try:
        check_test_format(member.settings.profile, CompletionFormat(model.format))
    except ValueError as error:
        raise SuiteError(f"member {member.name}: {error}") from None


async def load_suite(session: AsyncSession, name: str) -> LoadedSuite:
    """The stored suite ``name``; :class:`SuiteError` naming the known ones if none."""
    row = await session.scalar(select(Suite).where(Suite.name == name))
    if row is None:
        known = ", ".join(await session.scalars(select(Suite.name).order_by(Suite.name)))
        raise SuiteError(f"no suite {name!r} (coderm suite add; known: {known or 'none'})")
    members = await session.scalars(
        select(SuiteMember).where(SuiteMember.suite_id == row.id).order_by(SuiteMember.position)
    )
    return LoadedSuite(row, tuple((m, member_of(m)) for m in members))


async def add_suite(session: AsyncSession, spec: SuiteSpec) -> tuple[Suite, bool]:
    """Store ``spec``; return (row, created). Adding the same suite again is a no-op;
    other members, headline or gates under a stored name are refused."""
    check_members(spec.members)
    for member in spec.members:
        await check_known(session, member)
    existing = await session.scalar(select(Suite).where(Suite.name == spec.name))
    if existing is not None:
        stored = await load_suite(session, spec.name)
        same = (
            tuple(m for _, m in stored.members) == spec.members
            and existing.headline == spec.headline
            and list(existing.gates) == spec.gate_texts()
        )
        if not same:
            raise SuiteError(
                f"suite {spec.name!r} exists with other members or gates (coderm suite show "
                f"{spec.name}); add the new definition under another name"
            )
        return existing, False
    row = Suite(
        name=spec.name,
        description=spec.description,
        headline=spec.headline,
        gates=spec.gate_texts(),
    )
    session.add(row)
    await session.flush()
    for position, member in enumerate(spec.members):
        session.add(
            SuiteMember(
                suite_id=row.id,
                position=position,
                name=member.name,
                benchmark=member.benchmark,
                test_model=member.test_model,
                n=member.settings.n_solutions,
                m=member.settings.n_tests,
                profile=member.settings.profile.value,
                settings=member.stored_settings(),
            )
        )
    await session.flush()
    return row, True


# --- the commands -------------------------------------------------------------------------


@suite_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the suite's name")],
    member: Annotated[
        list[str],
        typer.Option(
            help=f"a benchmark and its run settings, e.g. '{MEMBER_EXAMPLE}' (repeatable; keys: "
            f"{', '.join((*OWN_KEYS, *SETTING_KEYS))})"
        ),
    ],
    headline: Annotated[
        str, typer.Option(help="the metric that picks the best checkpoint so far")
    ] = DEFAULT_HEADLINE,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            help="METRIC[:THRESHOLD]: a significant loss on it is a regression (repeatable; "
            "default: the headline)"
        ),
    ] = None,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Store a suite: benchmarks with their run settings, for `coderm watch --suite`."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> bool:
        spec = SuiteSpec(
            name=name,
            members=tuple(parse_member(text) for text in member),
            headline=check_metric(headline, "--headline", pass_at_only=True),
            gates=tuple(parse_suite_gates(gate or [], headline)),
            description=description,
        )
        if not re.fullmatch(r"[\w.+@-]{1,100}", name):
            raise SuiteError(f"a suite name is letters, digits and . _ + @ - only: {name!r}")
        async with sessions.begin() as session:
            return (await add_suite(session, spec))[1]

    created = with_sessions(work)
    console.print(f"suite {name} {'added' if created else 'exists already, unchanged'}")


@suite_app.command("list")
def list_suites() -> None:
    """List the stored suites with their members and checkpoints evaluated."""

    async def work(
        sessions: async_sessionmaker[AsyncSession],
    ) -> list[tuple[Suite, list[str], int]]:
        async with sessions() as session:
            out = []
            for row in await session.scalars(select(Suite).order_by(Suite.name)):
                members = list(
                    await session.scalars(
                        select(SuiteMember.name)
                        .where(SuiteMember.suite_id == row.id)
                        .order_by(SuiteMember.position)
                    )
                )
                checkpoints = await session.scalar(
                    select(func.count(func.distinct(CheckpointEvaluation.policy_model_id))).where(
                        CheckpointEvaluation.suite_id == row.id
                    )
                )
                out.append((row, members, int(checkpoints or 0)))
            return out

    found = with_sessions(work)
    if not found:
        console.print("no suites (coderm suite add)")
        return
    table = Table(title="suites")
    for column in ("suite", "members", "headline", "gates", "checkpoints", "created"):
        table.add_column(column)
    for row, members, checkpoints in found:
        table.add_row(
            row.name,
            ", ".join(members),
            row.headline,
            ", ".join(row.gates),
            str(checkpoints),
            f"{row.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@suite_app.command("show")
def show(name: Annotated[str, typer.Argument(help="the suite's name")]) -> None:
    """Show a suite's members and its checkpoints' evaluations and verdicts."""

    async def work(
        sessions: async_sessionmaker[AsyncSession],
    ) -> tuple[LoadedSuite, list[CheckpointEvaluation]]:
        async with sessions() as session:
            loaded = await load_suite(session, name)
            evaluations = await session.scalars(
                select(CheckpointEvaluation)
                .where(CheckpointEvaluation.suite_id == loaded.row.id)
                .order_by(CheckpointEvaluation.sequence, CheckpointEvaluation.member_id)
            )
            return loaded, list(evaluations)

    loaded, evaluations = with_sessions(work)
    suite = loaded.row
    console.print(
        f"suite {suite.name}: headline {suite.headline} (picks the best checkpoint so far), "
        f"gates {', '.join(suite.gates)}" + (f"\n{suite.description}" if suite.description else "")
    )
    members = Table(title="members")
    for column in ("#", "member", "benchmark", "test model", "N x M", "profile", "settings"):
        members.add_column(column)
    for row, spec in loaded.members:
        members.add_row(
            str(row.position),
            row.name,
            row.benchmark,
            row.test_model,
            f"{row.n} x {row.m}",
            row.profile,
            spec.describe(),
        )
    console.print(members)
    console.print(evaluations_table(loaded, evaluations))


def _verdict_cell(verdicts: Mapping[str, Any] | None, against: str) -> str:
    baseline = (verdicts or {}).get(against)
    if not baseline:
        return "-"
    headline = baseline.get("headline") or {}
    delta = headline.get("delta")
    shown = "" if delta is None else f" {delta:+.2f}"
    return f"{baseline.get('checkpoint')}: {headline.get('verdict') or '-'}{shown}"


def evaluations_table(loaded: LoadedSuite, evaluations: Sequence[CheckpointEvaluation]) -> Table:
    """Checkpoints x members: run, state, headline figure, verdicts, regressions, hook."""
    names = {row.id: row.name for row, _ in loaded.members}
    table = Table(title=f"checkpoint evaluations ({loaded.row.headline}; A - B in points)")
    for column in (
        "#",
        "checkpoint",
        "member",
        "run",
        "state",
        loaded.row.headline,
        "vs previous",
        "vs best",
        "regressions",
        "hook",
    ):
        table.add_column(column)
    for e in evaluations:
        table.add_row(
            str(e.sequence),
            e.checkpoint,
            names.get(e.member_id, "?"),
            str(e.run_id)[:8] if e.run_id else "-",
            e.state,
            "-" if e.headline_value is None else f"{e.headline_value:.2f}",
            _verdict_cell(e.verdicts, "previous"),
            _verdict_cell(e.verdicts, "best"),
            ", ".join(f"{r['metric']} vs {r['against']}" for r in e.regressions) or "-",
            e.hook_state or "-",
        )
    return table

"""SQLAlchemy 2 models: the tables of docs/ARCHITECTURE.md.

Natural keys carry unique constraints so that every write can be
``INSERT ... ON CONFLICT DO NOTHING`` and a redelivered message changes nothing.
Solutions and unit tests are content-addressed per problem, which makes the
execution cache (solution, test, sandbox profile) shared across runs; verdicts are
packed per (solution, profile, segment of test ordinals) (``Verdict``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.core.oracle import GroundTruthKind
from shared.enums import CompletionFormat, ModelRole, ProblemState, RunState


class Base(DeclarativeBase):
    """Declarative base with JSONB for ``dict`` columns."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, list[Any]: JSONB}


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Benchmark(Base):
    __tablename__ = "benchmarks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = _created()


class Problem(Base):
    __tablename__ = "problems"
    __table_args__ = (UniqueConstraint("benchmark_id", "task_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmarks.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    test_prompt: Mapped[str | None] = mapped_column(Text)
    entry_point: Mapped[str] = mapped_column(String(200))
    canonical_solution: Mapped[str] = mapped_column(Text, default="")
    test_code: Mapped[str] = mapped_column(Text)
    test_ordinals: Mapped[int] = mapped_column(Integer, server_default="0")
    """The next ordinal a new unit test of the problem gets (the trigger's counter)."""
    ground_truth: Mapped[str] = mapped_column(
        String(20), default=GroundTruthKind.TESTS.value, server_default=GroundTruthKind.TESTS.value
    )
    """How solutions are labelled: ``tests``, ``outputs`` (evalplus) or ``none``."""
    oracle: Mapped[dict[str, Any] | None] = mapped_column(JSONB, deferred=True)
    """evalplus inputs and the canonical solution's expected outputs
    (``shared.core.oracle.Oracle``), loaded only on request (it can be megabytes)."""
    solution_messages: Mapped[list[Any] | None] = mapped_column(JSONB)
    """CodeRM's chat prompt for a solution (``[{role, content}]``), when imported."""
    test_messages: Mapped[list[Any] | None] = mapped_column(JSONB)
    """CodeRM's chat prompt for a unit test, when imported."""
    created_at: Mapped[datetime] = _created()


class Model(Base):
    """A registered model: how to reach it (backend, checkpoint or endpoint), what it is
    for (role), how its prompts and completions are laid out (format) and its sampling
    defaults (CodeRM's: temperature 0.8, top-p 0.95, 2048 tokens).

    ``config`` holds backend extras: ``engine_args`` for vLLM, ``extra_body`` for an
    OpenAI-compatible server. API keys are never stored: ``api_key_ref`` names one in
    the generator's settings.
    """

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    backend: Mapped[str] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(20), default=ModelRole.BOTH.value)
    format: Mapped[str] = mapped_column(String(20), default=CompletionFormat.CHAT.value)
    checkpoint: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    endpoint: Mapped[str | None] = mapped_column(Text)
    served_name: Mapped[str | None] = mapped_column(String(200))
    api_key_ref: Mapped[str | None] = mapped_column(String(100))
    dtype: Mapped[str] = mapped_column(String(20), default="auto")
    max_model_len: Mapped[int | None] = mapped_column(Integer)
    temperature: Mapped[float] = mapped_column(Float, default=0.8)
    top_p: Mapped[float] = mapped_column(Float, default=0.95)
    max_tokens: Mapped[int] = mapped_column(Integer, default=2048)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmarks.id"))
    policy_model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    test_model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    n_solutions: Mapped[int] = mapped_column(Integer)
    n_tests: Mapped[int] = mapped_column(Integer)
    test_style: Mapped[str] = mapped_column(String(20))
    exec_profile: Mapped[str] = mapped_column(String(200))
    ground_truth_profile: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default=RunState.PENDING.value)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set by ``coderm run archive``: the run's results stay, its verdicts are no longer
    kept for it (``coderm gc`` may remove them)."""


class RunProblem(Base):
    __tablename__ = "run_problems"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default=ProblemState.PENDING.value)
    solutions_extracted: Mapped[bool] = mapped_column(Boolean, default=False)
    tests_extracted: Mapped[bool] = mapped_column(Boolean, default=False)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    round: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """The round of a run with a test budget the problem is in (1 for every other run);
    a message of an earlier round no longer moves it."""


class RunRound(Base):
    """One round of a run with a test budget: the test samples it granted in all
    (``units``), spent before it, how many problems got any, and the run's metrics
    once every problem was scored with its tests (``metrics``: name -> value, as
    ``run_metrics``)."""

    __tablename__ = "run_rounds"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    units: Mapped[int] = mapped_column(Integer)
    spent_before: Mapped[int] = mapped_column(Integer)
    problems: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RunRoundProblem(Base):
    """A problem's part of a round: test samples asked for before it, granted in it,
    the allocation's estimate (none in round 1) and why."""

    __tablename__ = "run_round_problems"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), primary_key=True)
    tests_before: Mapped[int] = mapped_column(Integer)
    granted: Mapped[int] = mapped_column(Integer)
    estimate: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")


class ExecutionBatch(Base):
    __tablename__ = "execution_batches"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), primary_key=True)
    batch_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    solution_ids: Mapped[list[Any]] = mapped_column(default=list)
    pairs: Mapped[int] = mapped_column(Integer)
    executed: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


#: ``Completion.generation`` of completions imported from published files.
IMPORTED_GENERATION = "imported"


class Completion(Base):
    __tablename__ = "completions"
    __table_args__ = (
        UniqueConstraint("model_id", "problem_id", "role", "generation", "sample_index"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"))
    role: Mapped[str] = mapped_column(String(20))
    generation: Mapped[str] = mapped_column(String(200))
    sample_index: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(40))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    extraction_status: Mapped[str | None] = mapped_column(String(40))
    extraction_detail: Mapped[str | None] = mapped_column(Text)
    extracted_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = _created()


class RunCompletion(Base):
    __tablename__ = "run_completions"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    completion_id: Mapped[int] = mapped_column(ForeignKey("completions.id"), primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))


class Solution(Base):
    __tablename__ = "solutions"
    __table_args__ = (UniqueConstraint("problem_id", "content_hash"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class UnitTest(Base):
    __tablename__ = "unit_tests"
    __table_args__ = (UniqueConstraint("problem_id", "style", "content_hash"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"))
    style: Mapped[str] = mapped_column(String(20))
    content_hash: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(Text)
    ordinal: Mapped[int] = mapped_column(Integer)
    """The test's place in its problem's test list (0, 1, ...), set by the database on
    insert (trigger ``unit_test_ordinal``): where its verdicts sit in a packed row."""
    created_at: Mapped[datetime] = _created()


class CompletionSolution(Base):
    __tablename__ = "completion_solutions"

    completion_id: Mapped[int] = mapped_column(
        ForeignKey("completions.id", ondelete="CASCADE"), primary_key=True
    )
    solution_id: Mapped[int] = mapped_column(ForeignKey("solutions.id"), index=True)


class CompletionTest(Base):
    __tablename__ = "completion_tests"

    completion_id: Mapped[int] = mapped_column(
        ForeignKey("completions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_test_id: Mapped[int] = mapped_column(ForeignKey("unit_tests.id"), index=True)


class ExecProfile(Base):
    """An execution profile's name interned as a small integer (``verdicts.profile_id``)."""

    __tablename__ = "exec_profiles"

    id: Mapped[int] = mapped_column(SmallInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class VerdictDetail(Base):
    """A verdict's detail text (the error a test raised), stored once however many
    verdicts share it; ``digest``: its md5, the unique key (texts can be long)."""

    __tablename__ = "verdict_details"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    digest: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    detail: Mapped[str] = mapped_column(Text)


class Verdict(Base):
    """The verdicts of a solution under an execution profile on one segment of its
    problem's test ordinals, packed one byte a test
    (:mod:`shared.core.verdict_packing`; read and written by :mod:`shared.db.verdicts`)."""

    __tablename__ = "verdicts"

    solution_id: Mapped[int] = mapped_column(
        ForeignKey("solutions.id", ondelete="CASCADE"), primary_key=True
    )
    profile_id: Mapped[int] = mapped_column(
        SmallInteger, ForeignKey("exec_profiles.id"), primary_key=True
    )
    segment: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    outcomes: Mapped[bytes] = mapped_column(LargeBinary)
    details: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    counts: Mapped[bytes | None] = mapped_column(LargeBinary)


class VerdictDetailOverflow(Base):
    """Details of the verdicts of a packed row past its 30 inline detail slots."""

    __tablename__ = "verdict_detail_overflow"

    solution_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    profile_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    segment: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    detail_id: Mapped[int] = mapped_column(ForeignKey("verdict_details.id"))


class GroundTruth(Base):
    __tablename__ = "ground_truth"

    solution_id: Mapped[int] = mapped_column(
        ForeignKey("solutions.id", ondelete="CASCADE"), primary_key=True
    )
    profile: Mapped[str] = mapped_column(String(200), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20))
    passed: Mapped[bool] = mapped_column(Boolean)
    """The headline verdict (evalplus: base and plus inputs)."""
    base_passed: Mapped[bool | None] = mapped_column(Boolean)
    """evalplus benchmarks: the verdict on the base inputs alone; else ``None``."""
    plus_passed: Mapped[bool | None] = mapped_column(Boolean)
    """evalplus benchmarks: the verdict on the plus inputs alone (evalplus's
    ``plus_status``, CodeRM's label); else ``None``."""
    duration_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class Selection(Base):
    __tablename__ = "selections"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(40), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    chosen: Mapped[list[Any]] = mapped_column(default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RunMetric(Base):
    __tablename__ = "run_metrics"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    problems: Mapped[int] = mapped_column(Integer)


class Suite(Base):
    """A named list of benchmarks with their run settings (``coderm suite add``): each
    checkpoint ``coderm watch --suite`` sees gets one run per member. ``headline``: the
    metric that picks the best checkpoint so far; ``gates``: the metrics whose
    significant loss is a regression (``METRIC[:THRESHOLD]``, as ``coderm compare
    --fail-on-regression`` takes them)."""

    __tablename__ = "suites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    headline: Mapped[str] = mapped_column(String(80))
    gates: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    created_at: Mapped[datetime] = _created()


class SuiteMember(Base):
    """One benchmark of a suite and how its runs are made: the unit-test model, N, M,
    the profile, and the other :class:`~shared.core.run_request.RunSettings` fields as
    JSON (``settings``)."""

    __tablename__ = "suite_members"
    __table_args__ = (
        UniqueConstraint("suite_id", "name"),
        UniqueConstraint("suite_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    benchmark: Mapped[str] = mapped_column(String(100))
    test_model: Mapped[str] = mapped_column(String(200))
    n: Mapped[int] = mapped_column(Integer)
    m: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str] = mapped_column(String(20))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class CheckpointEvaluation(Base):
    """One member's evaluation of one checkpoint (policy model) of a suite.

    ``sequence``: the checkpoint's place in the suite's history (every member of a
    checkpoint shares it); ``state``: ``pending`` (no run yet), ``running``,
    ``evaluated`` (verdicts stored) or ``failed`` (the run did not finish);
    ``headline_value``: the run's headline metric; ``verdicts``: the intervals and
    verdicts against the previous checkpoint and the best so far (``previous``,
    ``best``: ``null`` when there is none); ``regressions``: the gated metrics that are
    significantly worse; ``hook_state``: ``NULL`` without a regression, ``unset`` (no
    hook configured when found), ``pending``, ``called`` (recorded before the hook ran:
    it is never called twice)."""

    __tablename__ = "checkpoint_evaluations"
    __table_args__ = (UniqueConstraint("suite_id", "member_id", "policy_model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("suite_members.id", ondelete="CASCADE"))
    policy_model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    checkpoint: Mapped[str] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True
    )
    state: Mapped[str] = mapped_column(String(20))
    headline: Mapped[str] = mapped_column(String(80))
    headline_value: Mapped[float | None] = mapped_column(Float)
    previous_run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    best_run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    verdicts: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    regressions: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    regressed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    hook_state: Mapped[str | None] = mapped_column(String(20))
    hook_called_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hook_exit_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

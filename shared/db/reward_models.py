"""Tables of the reward service: test banks, API tokens, and every reward request with
its rewards (migration 0008)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models import Base


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class TestBank(Base):
    """A problem's unit tests for rewards: taken from a finished run's tests (``source``
    names it), with how they run (``limits``: the run's execution limits, whose
    ``exec_profile`` keys their verdicts)."""

    __tablename__ = "test_banks"
    __table_args__ = (UniqueConstraint("problem_id", "source"),)
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    source: Mapped[str] = mapped_column(String(200))
    style: Mapped[str] = mapped_column(String(20))
    exec_profile: Mapped[str] = mapped_column(String(200))
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()


class TestBankTest(Base):
    """One unit test of a bank, with its weight (test samples that yielded it)."""

    __tablename__ = "test_bank_tests"
    __test__ = False

    bank_id: Mapped[int] = mapped_column(
        ForeignKey("test_banks.id", ondelete="CASCADE"), primary_key=True
    )
    unit_test_id: Mapped[int] = mapped_column(ForeignKey("unit_tests.id"), primary_key=True)
    weight: Mapped[int] = mapped_column(Integer, default=1)


class ApiToken(Base):
    """A token of the reward API, stored as its SHA-256 only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RewardRequest(Base):
    """One request to the reward API, keyed by the client's request id (or the hash of
    its body): its answer once done, so a retried request gets the same answer."""

    __tablename__ = "reward_requests"

    request_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    kind: Mapped[str] = mapped_column(String(20))
    items: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    seconds: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RewardItem(Base):
    """One response of a reward request: its problem, group, code, tests and rewards."""

    __tablename__ = "reward_items"

    request_key: Mapped[str] = mapped_column(
        ForeignKey("reward_requests.request_key", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"))
    bank_id: Mapped[int] = mapped_column(ForeignKey("test_banks.id"))
    group_key: Mapped[str] = mapped_column(Text)
    solution_id: Mapped[int | None] = mapped_column(ForeignKey("solutions.id"))
    extraction_status: Mapped[str] = mapped_column(String(40))
    tests_run: Mapped[int] = mapped_column(Integer)
    tests_passed: Mapped[int] = mapped_column(Integer)
    rewards: Mapped[dict[str, Any]] = mapped_column(JSONB)

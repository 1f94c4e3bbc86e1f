"""Scoring a request's responses: banks, code, verdicts (run where missing), rewards.

The steps, each idempotent: find each problem's test bank (made on first use by
:mod:`services.gateway.banks`); extract each response's
code (:func:`shared.core.extraction.extract_response`); store the code
content-addressed; ask the executors, for all banks at once, only for the solutions
without a stored verdict on every bank test; read the verdicts; compute the rewards of each group
(:func:`shared.core.rewards.group_rewards`). A retried request finds the verdicts of
its first attempt stored and runs nothing again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.gateway import store
from services.gateway.banks import BankMaker
from services.gateway.rpc import PairsClient
from services.gateway.schemas import ProblemRef
from shared.core.extraction import extract_response
from shared.core.rewards import Reward, Verdicts, group_rewards
from shared.enums import ExtractionStatus
from shared.errors import RequestError


@dataclass(frozen=True)
class Item:
    """One response to score, with the key of its group."""

    problem: ProblemRef
    response: str
    group: str


@dataclass(frozen=True)
class Scored:
    """One response's outcome."""

    item: Item
    bank: store.Bank
    extraction: str
    solution_id: int | None
    reward: Reward

    def as_dict(self) -> dict[str, Any]:
        """The outcome as the native API answers it."""
        return {
            "problem": str(self.item.problem),
            "group": self.item.group,
            "extraction": self.extraction,
            "tests_run": self.reward.tests_run,
            "tests_passed": self.reward.tests_passed,
            "rewards": self.reward.as_dict(),
        }

    def row(self, position: int) -> dict[str, Any]:
        """The ``reward_items`` row."""
        return {
            "position": position,
            "problem_id": self.bank.problem_id,
            "bank_id": self.bank.id,
            "group_key": self.item.group,
            "solution_id": self.solution_id,
            "extraction_status": self.extraction,
            "tests_run": self.reward.tests_run,
            "tests_passed": self.reward.tests_passed,
            "rewards": self.reward.as_dict(),
        }


@dataclass
class Scorer:
    """Scores items against their banks through the executors."""

    sessions: async_sessionmaker[AsyncSession]
    pairs: PairsClient
    timeout_s: float
    banks: BankMaker

    async def score(self, items: Sequence[Item]) -> list[Scored]:
        """Every item's rewards, in order. Problems without a test bank get one first
        (:class:`BankMaker`: ``RequestError`` when it cannot, ``BankPending`` while its
        run goes on)."""
        extracted = [extract_response(item.response) for item in items]
        refs = {i.problem for i in items}
        async with self.sessions() as session:
            banks = await store.banks_of(session, refs)
        if len(banks) < len(refs):
            await self.banks.make(refs - set(banks))
            async with self.sessions() as session:
                banks = await store.banks_of(session, refs)
            absent = sorted(str(r) for r in refs - set(banks))
            if absent:
                raise RequestError(
                    f"the test model gave no usable unit test for {', '.join(absent[:5])}"
                    f"{f' and {len(absent) - 5} more' if len(absent) > 5 else ''}"
                )
        async with self.sessions.begin() as session:
            solution_of = await self._solutions(session, items, extracted, banks)
        by_bank: dict[int, list[int]] = defaultdict(list)
        for i, sid in solution_of.items():
            by_bank[banks[items[i].problem].id].append(sid)
        bank_by_id = {b.id: b for b in banks.values()}
        async with self.sessions() as session:
            todo = {
                bank_id: await store.missing(session, bank_by_id[bank_id], sids)
                for bank_id, sids in by_bank.items()
            }
        await asyncio.gather(
            *(
                self.pairs.execute(bank_id, sids, self.timeout_s)
                for bank_id, sids in todo.items()
                if sids
            )
        )
        passed: dict[tuple[int, int], frozenset[int]] = {}
        async with self.sessions() as session:
            for bank_id, sids in by_bank.items():
                found = await store.passed_sets(session, bank_by_id[bank_id], sids)
                passed.update(((bank_id, sid), tests) for sid, tests in found.items())
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            groups[(item.group, banks[item.problem].id)].append(i)
        rewards: dict[int, Reward] = {}
        for (_, bank_id), members in groups.items():
            bank = bank_by_id[bank_id]
            verdicts = [
                Verdicts(True, passed[(bank_id, solution_of[i])])
                if i in solution_of
                else Verdicts(False)
                for i in members
            ]
            for i, reward in zip(
                members, group_rewards(verdicts, bank.tests, bank.weights), strict=True
            ):
                rewards[i] = reward
        return [
            Scored(
                item,
                banks[item.problem],
                extracted[i].status.value,
                solution_of.get(i),
                rewards[i],
            )
            for i, item in enumerate(items)
        ]

    @staticmethod
    async def _solutions(
        session: AsyncSession,
        items: Sequence[Item],
        extracted: Sequence[Any],
        banks: dict[ProblemRef, store.Bank],
    ) -> dict[int, int]:
        """Item index -> solution id, for the items with code."""
        by_problem: dict[int, list[int]] = defaultdict(list)
        for i, result in enumerate(extracted):
            if result.status is ExtractionStatus.OK:
                by_problem[banks[items[i].problem].problem_id].append(i)
        out: dict[int, int] = {}
        for problem_id, members in by_problem.items():
            ids = await store.solution_ids(
                session, problem_id, [extracted[i].code[0] for i in members]
            )
            out.update(zip(members, ids, strict=True))
        return out

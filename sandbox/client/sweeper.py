"""Remove the sandbox containers one executor process left behind, while it runs.

A container is force-deleted by :class:`~sandbox.client.container.DockerSandbox` after
its batch, but that delete can fail: when the Docker engine restarts under a batch, the
engine is gone at the moment of the delete, and the container it held (stopped by the
engine's shutdown, or created and never started) stays behind. ``remove_stale_containers``
only runs when an executor starts, so a long-lived executor would keep them forever.

Every container of one executor process carries :data:`OWNER_LABEL` with a token of
that process alone (:func:`owner_token`), and :class:`ContainerSweeper` periodically
removes that process's containers that no batch can still be using:

* a container that is not running (created, exited, dead) and has been so for more
  than ``grace_s``: a batch holds a container in that state only for the moment
  between its create and its start, or between its exit and its delete;
* a running container ``slack_s`` past the deadline label its batch set (the batch
  has been given up on by then: its own time-out has fired).

Other processes' containers are never touched here (another executor on the same
engine may hold them); the start-up sweep of ``remove_stale_containers`` handles those
of processes that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiodocker
import aiohttp
import structlog

from sandbox.client.container import DEADLINE_LABEL, LABEL

OWNER_LABEL = f"{LABEL}.owner"
"""The label that names the executor process a sandbox container belongs to."""

log = structlog.get_logger(__name__)

SWEEP_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, OSError, asyncio.TimeoutError)
"""What a sweep may meet while the engine is down or restarting (the next one retries)."""


_STAMP = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)$"
)


def owner_token(instance: str) -> str:
    """A token for this process's containers: the instance name, the pid and a random
    part, so that no other process (a restarted executor of the same name, another
    test session on the same engine) has it."""
    return f"{instance}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def owner_labels(token: str) -> dict[str, str]:
    """The labels to put on this process's containers."""
    return {OWNER_LABEL: token}


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of one of Docker's RFC 3339 times (0 when unset or
    unreadable); fractions beyond microseconds are dropped."""
    match = _STAMP.match(stamp)
    if match is None or match["date"].startswith("0001-"):
        return 0.0
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    fraction = (match["fraction"] or "0")[:6]
    return datetime.fromisoformat(f"{match['date']}.{fraction}{zone}").timestamp()


def removable(
    state: dict[str, Any], labels: dict[str, str], now: float, grace_s: float, slack_s: float
) -> bool:
    """Whether a container of ours, in ``state`` (``docker inspect``'s ``State``) with
    ``labels``, is one no batch can still be using."""
    if state.get("Running") or state.get("Paused") or state.get("Restarting"):
        deadline = labels.get(DEADLINE_LABEL)
        return deadline is not None and now > float(deadline) + slack_s
    last = max(_epoch(str(state.get("StartedAt", ""))), _epoch(str(state.get("FinishedAt", ""))))
    return now - last > grace_s


class ContainerSweeper:
    """Removes the containers of one owner token that no batch is using (see the
    module's docstring); :meth:`run` sweeps every ``interval_s`` until cancelled."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        token: str,
        grace_s: float = 30.0,
        slack_s: float = 60.0,
    ) -> None:
        self._docker = docker
        self.token = token
        self.grace_s = grace_s
        self.slack_s = slack_s

    async def sweep(self) -> int:
        """One sweep; how many containers it removed."""
        listed = await self._docker.containers.list(
            all=True, filters={"label": [f"{OWNER_LABEL}={self.token}"]}
        )
        removed = 0
        for container in listed:
            try:
                info = await container.show()
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    continue
                raise
            created = _epoch(str(info.get("Created", "")))
            state = dict(info.get("State") or {})
            if not state.get("StartedAt") or state["StartedAt"].startswith("0001-"):
                state["StartedAt"] = str(info.get("Created", ""))
            labels = dict((info.get("Config") or {}).get("Labels") or {})
            if created and not removable(state, labels, time.time(), self.grace_s, self.slack_s):
                continue
            try:
                await container.delete(force=True)
                removed += 1
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise
        return removed

    async def run(self, interval_s: float = 15.0) -> None:
        """Sweep every ``interval_s`` seconds until cancelled; a sweep that fails (the
        engine is down) is logged and the next one tries again."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                removed = await self.sweep()
            except SWEEP_ERRORS as exc:
                log.warning("sandbox.sweep_failed", error=repr(exc)[:300])
                continue
            if removed:
                log.warning("sandbox.swept", removed=removed, owner=self.token)


@contextlib.asynccontextmanager
async def sweeping(
    sweeper: ContainerSweeper, interval_s: float = 15.0
) -> AsyncIterator[ContainerSweeper]:
    """Run ``sweeper`` in the background for the duration of the block."""
    task = asyncio.create_task(sweeper.run(interval_s), name="sandbox-sweeper")
    try:
        yield sweeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

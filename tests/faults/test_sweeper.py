"""The executor's sweeper (sandbox/client/sweeper.py): which of its own containers it
removes while it runs, on the private Docker engine and by its rules alone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiodocker
import pytest

from sandbox.client.container import DEADLINE_LABEL, LABEL
from sandbox.client.sweeper import OWNER_LABEL, ContainerSweeper, _epoch, owner_token, removable
from tests.faults.infra import SANDBOX_IMAGE, PrivateInfra


def test_epoch_reads_dockers_times() -> None:
    """Nanoseconds, whole seconds, offsets and Docker's zero time."""
    assert _epoch("2026-12-07T18:40:12.123456789Z") == pytest.approx(1796668812.123456)
    assert _epoch("2026-12-07T18:40:12Z") == 1796668812.0
    assert _epoch("2026-12-07T19:40:12.5+01:00") == 1796668812.5
    assert _epoch("0001-01-01T00:00:00Z") == 0.0
    assert _epoch("garbage") == 0.0


def test_removable_spares_what_a_batch_may_hold() -> None:
    """Stopped long enough: removed; just stopped, or running before its deadline (a
    batch, a warm container): kept; running far past its deadline: removed."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 100))
    fresh = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1))
    exited = {"Running": False, "StartedAt": stamp, "FinishedAt": stamp}
    assert removable(exited, {}, now, grace_s=30, slack_s=60)
    assert not removable({**exited, "FinishedAt": fresh}, {}, now, grace_s=30, slack_s=60)
    running = {"Running": True, "StartedAt": stamp}
    assert not removable(running, {}, now, 30, 60)
    assert not removable(running, {DEADLINE_LABEL: f"{now + 10:.0f}"}, now, 30, 60)
    assert removable(running, {DEADLINE_LABEL: f"{now - 100:.0f}"}, now, 30, 60)


@pytest.mark.faults
def test_sweep_removes_only_its_own_idle_containers(infra: PrivateInfra) -> None:
    """Created and exited containers of the token go; a running one before its deadline,
    and another token's, stay."""

    async def scenario() -> tuple[int, set[str]]:
        docker = aiodocker.Docker(url=infra.docker.url)
        try:
            token = owner_token("sweeper-test")

            async def make(owner: str, cmd: list[str], start: bool, deadline: float) -> str:
                labels = {LABEL: "1", OWNER_LABEL: owner, DEADLINE_LABEL: f"{deadline:.0f}"}
                config: dict[str, Any] = {
                    "Image": SANDBOX_IMAGE,
                    "Entrypoint": cmd,
                    "Labels": labels,
                    "NetworkDisabled": True,
                }
                container = await docker.containers.create(config)
                if start:
                    await container.start()
                return str(container.id)

            soon = time.time() + 600
            created = await make(token, ["true"], start=False, deadline=soon)
            exited = await make(token, ["true"], start=True, deadline=soon)
            running = await make(token, ["sleep", "300"], start=True, deadline=soon)
            other = await make("someone-else", ["true"], start=False, deadline=soon)
            await docker.containers.container(exited).wait()
            removed = await ContainerSweeper(docker, token, grace_s=0.0).sweep()
            listed = await docker.containers.list(all=True)
            left = {str(c.id) for c in listed}
            for cid in (running, other):
                await docker.containers.container(cid).delete(force=True)
            assert created not in left and exited not in left
            return removed, left & {running, other}
        finally:
            await docker.close()

    removed, kept = asyncio.run(scenario())
    assert removed == 2
    assert len(kept) == 2

"""Warm sandboxes (sandbox/client/warm.py) against the real Docker engine: a waiting
container gives the verdicts a cold one gives, hostile code included, runs one batch
and is deleted, and the pool refills with fresh containers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiodocker
import pytest
import pytest_asyncio

from sandbox.client import DockerSandbox, UnittestJob, WarmSandbox
from sandbox.client.container import LABEL
from shared.enums import Outcome
from tests.integration.test_sandbox import (
    ALLOC_TEST,
    GOOD,
    HOSTILE,
    NOT_PASS,
    SETTINGS,
    TEST,
    WRONG,
    our_containers,
    pair,
    same_task_jobs,
    summary,
)
from tests.integration.test_sandbox import OURS as OURS
from tests.integration.test_sandbox import docker as docker
from tests.integration.test_sandbox import image as image

pytestmark = [pytest.mark.integration, pytest.mark.long]


@pytest_asyncio.fixture(loop_scope="session")
async def pool(docker: aiodocker.Docker) -> AsyncIterator[WarmSandbox]:
    warm = WarmSandbox(DockerSandbox(docker, SETTINGS, labels=OURS), size=2)
    warm.start()
    try:
        assert await warm.wait_filled(120), "the pool never filled"
        yield warm
    finally:
        await warm.close()


async def waiting_ids(docker: aiodocker.Docker) -> set[str]:
    """Our containers that are running (the pool's, between batches)."""
    listed = await docker.containers.list(
        filters={"label": [f"{LABEL}=1", *(f"{k}={v}" for k, v in OURS.items())]}
    )
    return {c.id for c in listed}


async def test_hostile_batch_in_a_warm_container(
    pool: WarmSandbox,
    docker: aiodocker.Docker,
) -> None:
    """Every hostile pair fails in a waiting container as in a cold one, the pairs
    after it keep their verdicts, the container is deleted and never reused, and the
    pool is refilled by a fresh container."""
    before = await waiting_ids(docker)
    assert len(before) == 2
    jobs: list[UnittestJob] = [pair("pass", GOOD), pair("fail", WRONG)]
    for name, solution in HOSTILE.items():
        jobs.append(pair(name, solution, ALLOC_TEST if name == "alloc_8g_test" else TEST))
        jobs.append(pair(f"{name}/after_pass", GOOD))
    batch = await pool.run_batch(jobs)
    results = batch.results
    assert pool.warm_runs == 1 and pool.cold_runs == 0
    assert batch.timings.create_s == 0.0  # nothing was created on the request's path
    assert results["pass"].outcome is Outcome.PASS
    assert results["fail"].outcome is Outcome.FAIL
    for name in HOSTILE:
        assert results[name].outcome in NOT_PASS, summary(results)
        assert results[f"{name}/after_pass"].outcome is Outcome.PASS, summary(results)
    assert await pool.wait_filled(120)
    await pool.cold.drain()  # the used container is deleted after the results came back
    after = await waiting_ids(docker)
    assert len(after) == 2
    used = before - after
    assert len(used) == 1, "exactly the container that ran the batch is gone"
    assert set(await our_containers(docker)) == after  # deleted, not just stopped
    # the next batch runs in another container and is not disturbed
    second = await pool.run_batch([pair("again", GOOD), pair("again_fail", WRONG)])
    assert second.results["again"].outcome is Outcome.PASS
    assert second.results["again_fail"].outcome is Outcome.FAIL


async def test_warm_and_cold_give_the_same_verdicts(
    pool: WarmSandbox,
    docker: aiodocker.Docker,
) -> None:
    """Real pairs of the pair set get identical verdicts warm and cold."""
    jobs = same_task_jobs()
    warm = await pool.run_batch(jobs)
    cold = await DockerSandbox(docker, SETTINGS, labels=OURS).run_batch(jobs)
    assert pool.warm_runs == 1
    assert {k: r.outcome for k, r in warm.results.items()} == {
        k: r.outcome for k, r in cold.results.items()
    }
    assert len({r.outcome for r in warm.results.values()}) > 1  # not all one outcome


async def test_an_empty_pool_runs_cold_and_idle_containers_are_replaced(
    docker: aiodocker.Docker,
) -> None:
    """Batches beyond the waiting containers run cold, concurrently; a container idle
    past ``max_idle_s`` is replaced; closing the pool leaves nothing behind."""
    warm = WarmSandbox(DockerSandbox(docker, SETTINGS, labels=OURS), size=1, max_idle_s=2.0)
    warm.start()
    try:
        assert await warm.wait_filled(120)
        first = await waiting_ids(docker)
        results = await asyncio.gather(*(warm.run_batch([pair(f"p{i}", GOOD)]) for i in range(3)))
        assert all(r.results[f"p{i}"].outcome is Outcome.PASS for i, r in enumerate(results))
        assert (warm.warm_runs, warm.cold_runs) == (1, 2)
        assert await warm.wait_filled(120)
        refilled = await waiting_ids(docker)
        assert refilled and not refilled & first
        await asyncio.sleep(3.5)  # past max_idle_s, and the filler checks every 0.5 s
        assert await warm.wait_filled(120)
        assert not (await waiting_ids(docker)) & refilled, "the idle container was kept"
    finally:
        await warm.close()
    assert await our_containers(docker) == []

"""What one sandbox batch costs, on synthetic pairs (moved out of the test suite;
its sample solutions and test are the sandbox tests').

    .venv/bin/python -m bench.sandbox_throughput

Prints the time of a batch of 200 unittest pairs (half passing) and of a batch of 20
solutions x 92 asserts, each in one container with the default settings, and the
phases (create, run, delete) of the last one. Needs Docker and the sandbox image.
"""

from __future__ import annotations

import asyncio
import time

import aiodocker

from sandbox.client import AssertCheck, AssertJob, DockerSandbox, pair_job
from shared.enums import Outcome
from shared.settings import ExecutorSettings
from tests.integration.test_sandbox import DRIVER, GOOD, TEST, WRONG


async def main() -> None:
    """Run both batches and print their times."""
    settings = ExecutorSettings().sandbox
    docker = aiodocker.Docker(url=settings.docker_url)
    try:
        sandbox = DockerSandbox(docker, settings)
        pairs = [
            pair_job(f"p{i}", GOOD if i % 2 else WRONG, TEST + DRIVER + f"# {i % 10}\n", 1.0, 2.0)
            for i in range(200)
        ]
        t0 = time.monotonic()
        batch = await sandbox.run_batch(pairs)
        unittest_s = time.monotonic() - t0
        assert sum(r.outcome is Outcome.PASS for r in batch.results.values()) == 100
        checks = [AssertCheck(f"c{i}", f"assert add_one({i}) == {i + 1}") for i in range(92)]
        jobs = [
            AssertJob(
                f"s{j}",
                GOOD,
                tuple(AssertCheck(f"s{j}/{c.key}", c.code) for c in checks),
                0.5,
                3.0,
            )
            for j in range(20)
        ]
        t1 = time.monotonic()
        asserts = await sandbox.run_batch(jobs)
        asserts_s = time.monotonic() - t1
        assert all(r.outcome is Outcome.PASS for r in asserts.results.values())
        print(
            f"200 unittest pairs: {unittest_s:.2f} s ({unittest_s / 200 * 1000:.1f} ms/pair,"
            f" {sandbox.parallel} at once on {settings.cpus:g} CPU);"
            f" 20 solutions x 92 asserts: {asserts_s:.2f} s; phases {asserts.timings.as_dict()}"
        )
    finally:
        await docker.close()


if __name__ == "__main__":
    asyncio.run(main())

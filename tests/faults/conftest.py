"""Module fixtures of the fault tests: private servers, a stack slice on them, the
services, and one undisturbed reference run that every faulted run is compared to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.chaos_drive import run_reference
from bench.chaos_workload import Outcome, import_sample, service_env
from tests.faults.infra import PrivateInfra
from tests.stack import Services, Stack, create_stack, drop_stack, run_services


@pytest.fixture(scope="session")
def infra() -> Iterator[PrivateInfra]:
    """A private PostgreSQL, RabbitMQ and dockerd, torn down at the end."""
    private = PrivateInfra()
    try:
        private.start()
        yield private
    finally:
        private.close()


@pytest.fixture(scope="session")
def fault_stack(infra: PrivateInfra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A migrated database on the private cluster, queues on the private node, and the
    bundled sample imported."""
    log_dir: Path = tmp_path_factory.mktemp("fault-logs")
    stack = create_stack(log_dir, infra.postgres.admin_dsn, infra.rabbit.url)
    try:
        import_sample(stack)
        yield stack
    finally:
        drop_stack(stack)


@pytest.fixture(scope="session")
def fault_services(infra: PrivateInfra, fault_stack: Stack) -> Iterator[Services]:
    """The four services on the private servers (sandboxes on the private engine)."""
    yield from run_services(fault_stack, 1, **service_env(), **infra.service_env())


@pytest.fixture(scope="session")
def reference(fault_stack: Stack, fault_services: Services) -> Outcome:
    """The workload run once undisturbed."""
    return run_reference(fault_stack, fault_services)

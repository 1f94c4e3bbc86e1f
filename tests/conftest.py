"""Session fixtures: an isolated slice of the real stack for the integration tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.chaos_workload import import_sample
from tests.stack import ROOT, Services, Stack, create_stack, drop_stack, run_services


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh migrated database and fresh queue names for this test session."""
    log_dir: Path = tmp_path_factory.mktemp("service-logs")
    created = create_stack(log_dir)
    try:
        yield created
    finally:
        drop_stack(created)


@pytest.fixture(scope="session")
def services(stack: Stack) -> Iterator[Services]:
    """The four services running as real processes against ``stack``."""
    yield from run_services(stack, CODERM_SOLUTIONS_PER_BATCH="10")


@pytest.fixture(scope="session")
def imported(stack: Stack) -> None:
    """The bundled sample imported through the real CLI."""
    import_sample(stack)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama checkpoint with a locally trained tokenizer (tests/tiny_model.py).

    Built once per session in a child process, so torch and transformers stay out of
    the test process.
    """
    directory = tmp_path_factory.mktemp("tiny-llama")
    built = subprocess.run(
        [sys.executable, "-m", "tests.tiny_model", str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return directory

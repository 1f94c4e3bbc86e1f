"""Faults of the infrastructure on the real stack (private servers: tests/faults/infra.py).

Each test runs the 240-batch workload, injects one fault of bench/chaos_faults.py once
batches run, and requires the run to finish with the reference run's metrics,
selections, verdict rows and batches, no dead letter, no sandbox container left behind
and every service still running (no restart by hand).
"""

from __future__ import annotations

import pytest

from bench.chaos_drive import run_faulted
from bench.chaos_faults import FAULTS
from bench.chaos_workload import Outcome
from tests.faults.infra import PrivateInfra
from tests.stack import Services, Stack

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1200)]


@pytest.mark.parametrize("name", list(FAULTS))
def test_run_survives_fault_with_identical_numbers(
    name: str,
    infra: PrivateInfra,
    fault_stack: Stack,
    fault_services: Services,
    reference: Outcome,
) -> None:
    """The run finishes as if undisturbed, and nothing is left behind."""
    result = run_faulted(FAULTS[name], infra, fault_stack, fault_services, reference)
    assert result.finished, result.problems
    assert result.survived, result.problems
    assert result.identical, result.problems

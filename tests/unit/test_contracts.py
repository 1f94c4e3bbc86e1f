"""Message contract, execution profiles and importers: pure behaviour."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.cli.importers import (
    ImportFormatError,
    read_codet_samples,
    read_humaneval,
    read_task_completions,
)
from shared.broker import Topology, kind_of
from shared.core.oracle import outputs_profile
from shared.core.profiles import AdaptiveLimit, ExecLimits
from shared.enums import Role
from shared.enums import TestStyle as Style
from shared.messages import ExecuteBatch, GenerateRequest

RUN = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_messages_round_trip_and_reject_unknown_fields() -> None:
    message = GenerateRequest(run_id=RUN, problem_id=3, role=Role.TEST, count=5)
    assert GenerateRequest.model_validate_json(message.to_body()) == message
    assert kind_of(message) == "generate"
    with pytest.raises(ValidationError):
        GenerateRequest.model_validate_json(b'{"run_id": "x", "problem_id": 1}')
    body = json.loads(message.to_body())
    body["surprise"] = 1
    with pytest.raises(ValidationError):
        GenerateRequest.model_validate(body)
    with pytest.raises(ValidationError):
        ExecuteBatch(run_id=RUN, problem_id=1, batch_no=-1, solution_ids=[])


def test_topology_names() -> None:
    topology = Topology("coderm")
    assert topology.queue("execute") == "coderm.execute"
    assert topology.dead_queue("execute") == "coderm.execute.dead"
    assert topology.dead_exchange == "coderm.dlx"


@pytest.mark.parametrize(
    ("limits", "profile"),
    [
        (ExecLimits.default_for(Style.UNITTEST), "sbx4/unittest/t1000ms-k2000ms"),
        (ExecLimits.default_for(Style.ASSERT, 0.1), "sbx4/assert/t100ms-s3000ms"),
        (
            ExecLimits.default_for(Style.UNITTEST).model_copy(update={"adaptive": AdaptiveLimit()}),
            "sbx4/unittest/t1000ms-k2000ms-a5x-f250ms-n3",
        ),
        (
            ExecLimits(
                test_style=Style.UNITTEST, time_limit_s=1, kill_after_s=2, reference_globals=True
            ),
            "sbx4/unittest-ref/t1000ms-k2000ms",
        ),
        (
            ExecLimits(
                test_style=Style.UNITTEST,
                time_limit_s=1,
                kill_after_s=2,
                reference_globals=True,
                adaptive=AdaptiveLimit(),
            ),
            "sbx4/unittest-ref/t1000ms-k2000ms-a5x-f250ms-n3",
        ),
    ],
)
def test_profiles_name_semantics_and_limits(limits: ExecLimits, profile: str) -> None:
    assert limits.exec_profile() == profile
    assert limits.ground_truth_profile("humaneval").startswith("sbx4/gt-humaneval/t3000ms")


def test_reference_globals_are_for_unittest_runs_only() -> None:
    with pytest.raises(ValidationError, match="unittest"):
        ExecLimits(
            test_style=Style.ASSERT, time_limit_s=0.1, kill_after_s=0.1, reference_globals=True
        )
    stored = ExecLimits.default_for(Style.UNITTEST).model_dump()
    del stored["reference_globals"]  # a run stored before the field existed
    assert ExecLimits.model_validate(stored).reference_globals is False


def test_package_environment_follows_the_style_and_names_its_profiles() -> None:
    """Unittest runs see numpy and pandas (CodeRM's image), assert runs the standard
    library (CodeT's published run); any other choice is named in the cache keys."""
    unittest_limits = ExecLimits.default_for(Style.UNITTEST)
    asserts = ExecLimits.default_for(Style.ASSERT)
    assert (unittest_limits.packages, asserts.packages) == (True, False)
    assert unittest_limits.exec_profile() == "sbx4/unittest/t1000ms-k2000ms"
    assert asserts.exec_profile() == "sbx4/assert/t100ms-s3000ms"
    assert unittest_limits.ground_truth_profile("humaneval") == "sbx4/gt-humaneval/t3000ms-pkgs"
    assert asserts.ground_truth_profile("humaneval") == "sbx4/gt-humaneval/t3000ms"
    stdlib = unittest_limits.model_copy(update={"site_packages": False})
    with_packages = asserts.model_copy(update={"site_packages": True})
    assert stdlib.exec_profile() == "sbx4/unittest/t1000ms-k2000ms-stdlib"
    assert with_packages.exec_profile() == "sbx4/assert/t100ms-s3000ms-pkgs"
    assert outputs_profile("humaneval+").endswith("min1000ms")
    assert outputs_profile("humaneval+", packages=False).endswith("min1000ms-stdlib")


def _write(path: Path, rows: list[object]) -> Path:
    with gzip.open(path, "wt") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def test_read_humaneval_joins_test_prompts(tmp_path: Path) -> None:
    problems = _write(
        tmp_path / "he.jsonl.gz",
        [{"task_id": "T/0", "prompt": "p", "entry_point": "f", "test": "t"}],
    )
    prompts = _write(tmp_path / "tp.jsonl.gz", [{"task_id": "T/0", "prompt": "tp"}])
    [problem] = read_humaneval(problems, prompts)
    assert (problem.task_id, problem.test_prompt, problem.position) == ("T/0", "tp", 0)


def test_read_humaneval_names_the_bad_record(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.jsonl.gz", [{"task_id": "T/0", "prompt": "p"}])
    with pytest.raises(ImportFormatError, match="record 0"):
        read_humaneval(bad)
    not_json = tmp_path / "x.jsonl"
    not_json.write_text("{oops\n")
    with pytest.raises(ImportFormatError, match=r"x\.jsonl:1"):
        read_humaneval(not_json)


def test_read_codet_samples_joins_by_exact_prompt(tmp_path: Path) -> None:
    file = _write(tmp_path / "s.jsonl.gz", [{"prompt": "p", "samples": ["a", "b"]}])
    [record] = read_codet_samples(file, {"p": "T/0"})
    assert record.task_id == "T/0" and record.samples == ("a", "b")
    with pytest.raises(ImportFormatError, match="matches no problem"):
        read_codet_samples(file, {"other": "T/0"})


def test_read_task_completions_accepts_strings_or_text_objects(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "c.jsonl.gz", [{"task_id": "T/0", "completions": ["a", {"text": "b"}]}]
    )
    assert read_task_completions(file)[0].samples == ("a", "b")
    bad = _write(tmp_path / "d.jsonl.gz", [{"task_id": "T/0", "completions": [1]}])
    with pytest.raises(ImportFormatError, match="strings"):
        read_task_completions(bad)

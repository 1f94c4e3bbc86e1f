"""Continuous evaluation: ``coderm run --policy CHECKPOINT_DIR`` and ``coderm watch DIR``,
with tiny random checkpoints served by vLLM's engine inside the generator."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Services, Stack, cli, query, submit, wait_run_finished

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.long]
TESTS = ("--benchmark", "humaneval", "--test-model", "codegen16b")


def checkpoint(source: Path, target: Path, step: int) -> Path:
    """A copy of the tiny model as a training checkpoint of ``step`` (its own content)."""
    shutil.copytree(source, target)
    (target / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return target


def vllm_models(stack: Stack) -> dict[str, dict[str, object]]:
    rows = query(stack, "SELECT * FROM models WHERE backend = 'vllm'")
    return {str(r["name"]): dict(r) for r in rows}


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("imported")
def test_run_with_a_checkpoint_folder_registers_it_once(
    stack: Stack, services: Services, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A folder as ``--policy`` becomes a vllm model named after it, known by content:
    the same checkpoint copied elsewhere is the same model."""
    folder = checkpoint(tiny_model_dir, tmp_path / "direct-7", 7)
    args = (*TESTS, "--n", "2", "--m", "2", "--problems", "1", "--max-tokens", "8")
    run_id = submit(stack, "--policy", str(folder), *args)
    wait_run_finished(stack, services, run_id, timeout=600)
    model = vllm_models(stack)["direct-7"]
    assert model["checkpoint"] == str(folder.resolve())
    assert model["role"] == "policy" and model["format"] == "chat"
    assert isinstance(model["fingerprint"], str) and len(model["fingerprint"]) == 64

    moved = shutil.copytree(folder, tmp_path / "elsewhere" / "direct-7")
    again = cli(stack, "run", "--policy", str(moved), *args, "--detach")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "registered as model" not in again.stdout
    assert "(policy direct-7)" in again.stdout
    assert len([n for n in vllm_models(stack) if n.startswith("direct-7")]) == 1


def watch(stack: Stack, folder: Path) -> tuple[int, str]:
    result = cli(
        stack,
        "watch",
        str(folder),
        *TESTS,
        "--n",
        "2",
        "--m",
        "3",
        "--problems",
        "2",
        "--max-tokens",
        "8",
        "--settle",
        "0",
        "--once",
        timeout=900,
    )
    return result.returncode, result.stdout + result.stderr


def watch_runs(stack: Stack) -> list[dict[str, Any]]:
    rows = query(
        stack,
        """SELECT r.id, r.state, r.config, m.name AS model FROM runs r
           JOIN models m ON m.id = r.policy_model_id
           WHERE r.config ? 'watch' ORDER BY r.created_at""",
    )
    return [{**dict(r), "config": json.loads(r["config"])} for r in rows]


@pytest.mark.timeout(1200)
@pytest.mark.usefixtures("imported")
def test_watch_evaluates_each_new_checkpoint_once_and_compares_it(
    stack: Stack, services: Services, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """``watch --once`` runs every checkpoint folder in order and compares each with the
    one before; a half-written folder is left alone; a second pass starts nothing; a
    new checkpoint gets one run, compared with the last one."""
    folder = tmp_path / "checkpoints"
    checkpoint(tiny_model_dir, folder / "checkpoint-200", 200)
    checkpoint(tiny_model_dir, folder / "checkpoint-100", 100)
    (folder / "checkpoint-300").mkdir()
    (folder / "checkpoint-300" / "config.json").write_text("{}")

    code, output = watch(stack, folder)
    assert code == 0, output
    runs = watch_runs(stack)
    assert [r["model"] for r in runs] == ["checkpoint-100", "checkpoint-200"]
    assert all(r["state"] == "finished" for r in runs)
    assert all(r["config"]["watch"]["reported"] for r in runs)
    assert "checkpoint checkpoint-200 (A) against the one before it (B)" in output
    assert str(runs[0]["id"])[:8] in output and str(runs[1]["id"])[:8] in output
    assert "checkpoint-300" not in output

    code, output = watch(stack, folder)
    assert code == 0, output
    assert len(watch_runs(stack)) == 2

    shutil.rmtree(folder / "checkpoint-300")
    checkpoint(tiny_model_dir, folder / "checkpoint-300", 300)
    code, output = watch(stack, folder)
    assert code == 0, output
    runs = watch_runs(stack)
    assert [r["model"] for r in runs][-1] == "checkpoint-300" and len(runs) == 3
    assert "checkpoint checkpoint-300 (A) against the one before it (B)" in output
    assert run_ids_in(output) >= {uuid.UUID(str(runs[2]["id"]))}


def run_ids_in(text: str) -> set[uuid.UUID]:
    found = set()
    for word in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
        try:
            found.add(uuid.UUID(word))
        except ValueError:
            continue
    return found

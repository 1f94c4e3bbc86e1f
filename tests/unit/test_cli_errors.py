"""What a user can fix is one ``error:`` line and exit 2; a bug inside a command keeps its
traceback (``user_errors`` in services/cli/shell.py).

The commands run through typer's ``CliRunner`` on the real ``coderm`` app, on a fake
database session that finds nothing, so no stack is needed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import shell, store
from services.cli.app import app
from services.cli.errors import UserError
from services.cli.registry import RegistryError
from shared.settings import DatabaseSettings

ROOT = Path(__file__).resolve().parents[2]


class _EmptySession:
    """A session on an empty database: every ``scalars`` query finds no row."""

    async def scalars(self, statement: object) -> list[object]:
        """No rows, whatever was asked."""
        return []


class _Engine:
    """An engine that was never connected."""

    async def dispose(self) -> None:
        """Nothing to close."""


@contextlib.asynccontextmanager
async def _sessions() -> AsyncIterator[_EmptySession]:
    yield _EmptySession()


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that use ``with_sessions`` get the empty fake session, and wide lines."""

    def engine(settings: DatabaseSettings) -> _Engine:
        return _Engine()

    def sessionmaker(engine: _Engine) -> object:
        return _sessions

    monkeypatch.setattr(shell, "make_engine", engine)
    monkeypatch.setattr(shell, "make_sessionmaker", sessionmaker)
    monkeypatch.setenv("COLUMNS", "300")


def error_lines(output: str) -> list[str]:
    """The non-empty lines of a command's output."""
    return [line for line in output.splitlines() if line.strip()]


def test_a_user_error_is_not_a_lookup_error() -> None:
    assert not issubclass(UserError, LookupError)
    assert issubclass(RegistryError, UserError)


@pytest.mark.usefixtures("no_database")
def test_an_unknown_run_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["status", "feedface"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.output) == ["error: no unique run matches 'feedface'"]


@pytest.mark.usefixtures("no_database")
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--backend", "vllm", "--format", "code"],
            "error: format code is for imported CodeRM files (the replay backend)",
        ),
        (
            ["--backend", "openai", "--served-name", "m"],
            "error: an openai model needs --endpoint http(s)://host:port/v1",
        ),
        (
            ["--backend", "replay", "--engine-arg", "novalue"],
            "error: --engine-arg wants KEY=VALUE, got 'novalue'",
        ),
    ],
)
def test_options_that_do_not_go_together_are_one_error_line(
    arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["model", "add", "some-model", *arguments])
    assert result.exit_code == 2, result.output
    assert error_lines(result.output) == [message]


@pytest.mark.usefixtures("no_database")
def test_a_malformed_pair_file_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"}\n')
    result = CliRunner().invoke(
        app, ["exec-pairs", "--input", str(bad), "--output", str(tmp_path / "out.jsonl")]
    )
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.output)
    assert line.startswith("error: ") and "bad.jsonl:1: not a pair record" in line


@pytest.mark.usefixtures("no_database")
@pytest.mark.parametrize(
    "bug",
    [KeyError("task_id"), IndexError("list index out of range"), LookupError("a lookup bug")],
    ids=["KeyError", "IndexError", "LookupError"],
)
def test_a_bug_inside_a_command_propagates(
    monkeypatch: pytest.MonkeyPatch, bug: LookupError
) -> None:
    async def broken(session: object, prefix: str) -> object:
        raise bug

    monkeypatch.setattr(store, "find_run", broken)
    result = CliRunner().invoke(app, ["status", str(uuid.uuid4())[:8]])
    assert result.exit_code == 1, result.output
    assert result.exception is bug
    assert "error:" not in result.output


def test_a_bug_prints_its_traceback() -> None:
    script = textwrap.dedent(
        """
        import sys

        from services.cli import store


        async def broken(session: object, prefix: str) -> object:
            raise KeyError("planted bug")


        store.find_run = broken
        from services.cli.app import main

        sys.argv = ["coderm", "status", "feedface"]
        main()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" in proc.stderr
    assert "KeyError: 'planted bug'" in proc.stderr
    assert "error:" not in proc.stdout

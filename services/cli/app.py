"""The ``coderm`` command line: import data, submit runs, follow them, read results."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import importers, render, store
from services.cli.dead_letters import peek_dead_letters
from shared.broker import connect_broker
from shared.db.session import make_engine, make_sessionmaker
from shared.enums import CompletionFormat, Role, RunState
from shared.messages import GenerateRequest
from shared.settings import ServiceSettings

app = typer.Typer(help="Score LLM-written code with LLM-written unit tests.", no_args_is_help=True)
console = Console()
T = TypeVar("T")
DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Report what a user can fix as one line and exit 2, instead of a traceback."""
    try:
        yield
    except (LookupError, importers.ImportFormatError, ValidationError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    except OSError as error:
        console.print(f"[red]error:[/red] {error}; is the stack up? (make up)")
        raise typer.Exit(2) from error


def _with_sessions(work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = make_engine(ServiceSettings().database)
        try:
            return await work(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    with _user_errors():
        return asyncio.run(main())


@app.command("import-benchmark")
def import_benchmark(
    name: Annotated[str, typer.Argument(help="benchmark name, e.g. humaneval")],
    file: Annotated[Path, typer.Option(help="HumanEval-format JSONL(.gz)", exists=True)],
    test_prompts: Annotated[
        Path | None, typer.Option(help="test-generation prompts (CodeT), joined by task_id")
    ] = None,
) -> None:
    """Import a HumanEval-format benchmark (idempotent)."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
        async with sessions.begin() as session:
            return await store.upsert_benchmark(session, name, str(file.name), problems)

    with _user_errors():
        problems = importers.read_humaneval(file, test_prompts)
    if not problems:
        console.print(f"[red]error:[/red] no problems in {file}")
        raise typer.Exit(2)

    _, added = _with_sessions(work)
    console.print(f"benchmark {name}: {len(problems)} problems in file, {added} new")


@app.command("import-completions")
def import_completions(
    file: Annotated[Path, typer.Argument(help="generations JSONL(.gz)", exists=True)],
    benchmark: Annotated[str, typer.Option()],
    model: Annotated[str, typer.Option(help="model name to register them under")],
    role: Annotated[Role, typer.Option()],
    file_format: Annotated[
        str,
        typer.Option(
            "--format", help="codet: {prompt, samples[]}; jsonl: {task_id, completions[]}"
        ),
    ] = "codet",
    completion_format: Annotated[
        CompletionFormat,
        typer.Option(help="completion: prompt continuations (CodeT); chat: markdown answers"),
    ] = CompletionFormat.COMPLETION,
) -> None:
    """Import published generations for the ``replay`` backend (idempotent)."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
        async with sessions.begin() as session:
            problems = await store.benchmark_problems(session, benchmark)
            if file_format == "codet":
                key = {
                    (p.prompt if role is Role.SOLUTION else p.test_prompt or p.prompt): p.task_id
                    for p in problems
                }
                records = importers.read_codet_samples(file, key)
            elif file_format == "jsonl":
                records = importers.read_task_completions(file)
            else:
                raise importers.ImportFormatError(f"unknown --format {file_format!r}")
            ids = {p.task_id: p.id for p in problems}
            unknown = [r.task_id for r in records if r.task_id not in ids]
            if unknown:
                raise importers.ImportFormatError(f"task ids not in {benchmark}: {unknown[:5]}")
            model_id = await store.upsert_model(session, model, "replay", completion_format)
            added = await store.insert_completions(
                session, model_id, role, completion_format, ids, records
            )
            return sum(len(r.samples) for r in records), added

    total, added = _with_sessions(work)
    console.print(f"{model} {role.value}s: {total} samples in file, {added} new")


@app.command()
def run(
    benchmark: Annotated[str, typer.Option()],
    policy: Annotated[str, typer.Option(help="policy model (solutions)")],
    test_model: Annotated[str, typer.Option(help="unit-test model")],
    n: Annotated[int, typer.Option(help="solutions per problem", min=1)] = 100,
    m: Annotated[int, typer.Option(help="test samples per problem", min=0)] = 100,
    problems: Annotated[int | None, typer.Option(help="only the first K problems")] = None,
    assert_time_limit: Annotated[
        float, typer.Option(help="seconds per assert test (CodeT: 0.1)")
    ] = 0.1,
    ground_truth_time_limit: Annotated[
        float, typer.Option(help="seconds for a solution's hidden tests")
    ] = 3.0,
    name: Annotated[str, typer.Option()] = "",
    detach: Annotated[bool, typer.Option(help="submit and return")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait before giving up")] = 7200.0,
) -> None:
    """Submit a run; follow it with per-stage progress bars, then print its table."""
    request = store.RunRequest(
        benchmark,
        policy,
        test_model,
        n,
        m,
        problems,
        assert_time_limit,
        ground_truth_time_limit,
        name,
    )
    with _user_errors():
        run_id = asyncio.run(_submit(request))
    console.print(f"run {run_id} submitted")
    if not detach:
        _follow(run_id, timeout)
        report(str(run_id))


async def _submit(request: store.RunRequest) -> uuid.UUID:
    settings = ServiceSettings()
    engine = make_engine(settings.database)
    try:
        async with make_sessionmaker(engine).begin() as session:
            run_row, problem_ids = await store.create_run(session, request)
        async with connect_broker(settings.broker) as broker:
            for problem_id in problem_ids:
                for role, count in (
                    (Role.SOLUTION, request.n_solutions),
                    (Role.TEST, request.n_tests),
                ):
                    await broker.publish(
                        GenerateRequest(
                            run_id=run_row.id, problem_id=problem_id, role=role, count=count
                        )
                    )
        return run_row.id
    finally:
        await engine.dispose()


def _follow(run_id: uuid.UUID, timeout: float) -> None:
    async def work(sessions: async_sessionmaker[AsyncSession]) -> str:
        bars, tasks = render.progress_bars()
        deadline = time.monotonic() + timeout
        with Live(bars, console=console, refresh_per_second=4):
            while True:
                async with sessions() as session:
                    progress = await store.run_progress(session, run_id)
                render.update_bars(bars, tasks, progress)
                if progress.state in (RunState.FINISHED.value, RunState.FAILED.value):
                    return progress.state
                if progress.error:
                    return f"stuck: {progress.error}"
                if time.monotonic() > deadline:
                    return "timeout"
                await asyncio.sleep(0.5)

    state = _with_sessions(work)
    if not console.is_terminal:
        console.line()
    if state != RunState.FINISHED.value:
        console.print(f"[red]run {run_id} {state}[/red]")
        console.print("see `coderm dead-letters`; after fixing the cause, `coderm resume RUN`")
        raise typer.Exit(1)


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="run id or unique prefix")],
    follow: Annotated[bool, typer.Option(help="follow with progress bars until it ends")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to follow before giving up")] = 7200.0,
) -> None:
    """Print a run's state and per-stage progress (or follow it)."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> store.Progress:
        async with sessions() as session:
            found = await store.find_run(session, run_id)
            return await store.run_progress(session, found.id)

    progress = _with_sessions(work)
    if follow:
        _follow(progress.run_id, timeout)
        return
    console.print(f"state: {progress.state}")
    if progress.error:
        console.print(f"[red]error:[/red] {progress.error}")
    for stage in render.STAGES:
        done, total = getattr(progress, stage)
        console.print(f"{stage:>10}: {done}/{total}")


@app.command()
def report(run_id: Annotated[str, typer.Argument(help="run id or unique prefix")]) -> None:
    """Print the strategy table of a finished run."""

    async def work(
        sessions: async_sessionmaker[AsyncSession],
    ) -> tuple[str, dict[str, tuple[float, int]]]:
        async with sessions() as session:
            found = await store.find_run(session, run_id)
            return f"run {found.id} ({found.state})", await store.run_metrics(session, found.id)

    title, metrics = _with_sessions(work)
    if not metrics:
        console.print(f"{title}: no metrics yet")
        raise typer.Exit(1)
    console.print(render.metrics_table(title, metrics))


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="run id or unique prefix")],
    detach: Annotated[bool, typer.Option(help="re-drive and return")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait before giving up")] = 7200.0,
) -> None:
    """Re-drive a run's unfinished problems (e.g. after messages were dead-lettered)."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> tuple[uuid.UUID, int]:
        async with sessions.begin() as session:
            found = await store.find_run(session, run_id)
            messages = await store.resume_messages(session, found)
        async with connect_broker(ServiceSettings().broker) as broker:
            await broker.publish_many(messages)
        return found.id, len(messages)

    found_id, count = _with_sessions(work)
    console.print(f"run {found_id}: {count} messages re-published")
    if not detach:
        _follow(found_id, timeout)
        report(str(found_id))


@app.command()
def runs(limit: Annotated[int, typer.Option(help="how many, newest first", min=1)] = 20) -> None:
    """List recent runs: id, name, models, state, CodeT pass@1."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> list[store.RunSummary]:
        async with sessions() as session:
            return await store.recent_runs(session, limit)

    table = Table(title="runs")
    for column in ("run", "name", "benchmark", "policy / tests", "N x M", "state", "created"):
        table.add_column(column)
    table.add_column("CodeT pass@1", justify="right")
    for item in _with_sessions(work):
        run_row = item.run
        table.add_row(
            str(run_row.id)[:8],
            run_row.name,
            item.benchmark,
            f"{item.policy} / {item.test_model}",
            f"{run_row.n_solutions} x {run_row.n_tests}",
            run_row.state,
            f"{run_row.created_at:%Y-%m-%d %H:%M}",
            "" if item.codet_pass_at_1 is None else f"{item.codet_pass_at_1:.2f}",
        )
    console.print(table)


@app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option(help="messages shown per queue", min=1)] = 20,
) -> None:
    """Show dead-lettered messages and why (they stay in their queues)."""
    with _user_errors():
        letters = asyncio.run(peek_dead_letters(ServiceSettings().broker, limit))
    if not letters:
        console.print("no dead-lettered messages")
        return
    table = Table(title="dead-lettered messages")
    for column in ("queue", "reason", "body"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(letter.kind, letter.reason[:300], letter.body[:200].decode(errors="replace"))
    console.print(table)


@app.command()
def demo(
    problems: Annotated[int, typer.Option(help="problems of the bundled sample to score")] = 20,
    n: Annotated[int, typer.Option(help="solutions per problem")] = 20,
) -> None:
    """Import the bundled real sample (idempotent) and score it through the services."""
    import_benchmark(
        "humaneval",
        DEMO_DIR / "humaneval.jsonl.gz",
        DEMO_DIR / "humaneval_test_prompts.jsonl.gz",
    )
    for role, file in (
        (Role.SOLUTION, "codegen16b_solutions.jsonl.gz"),
        (Role.TEST, "codegen16b_tests.jsonl.gz"),
    ):
        import_completions(DEMO_DIR / file, "humaneval", "codegen16b", role)
    run("humaneval", "codegen16b", "codegen16b", n=n, m=100, problems=problems, name="demo")


def main() -> None:
    """Console-script entry point."""
    app()

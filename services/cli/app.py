"""The ``coderm`` command line: import data, submit runs, follow them, read results."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import allocation_report as allocation_cmd
from services.cli import (
    benchmark_import,
    benchmarks,
    importers,
    render,
    retention,
    store,
    submission,
)
from services.cli import compare as compare_cmd
from services.cli import dashboard as dashboard_cmd
from services.cli import exec_pairs as exec_pairs_cmd
from services.cli import report as report_cmd
from services.cli import rounds as rounds_view
from services.cli import suite_watch as suite_watch_cmd
from services.cli import watch as watch_cmd
from services.cli.dead_letters import dead_letters_table, peek_dead_letters
from services.cli.difficulty import difficulty_app
from services.cli.errors import UserError
from services.cli.models import model_app
from services.cli.rewards_admin import bank_app, token_app
from services.cli.shell import console, user_errors, with_sessions
from services.cli.suites import suite_app
from shared.broker import connect_broker
from shared.core.profiles import AdaptiveLimit
from shared.core.round_plan import LIVE_ALLOCATIONS
from shared.core.run_profile import RunProfile, run_profile
from shared.core.run_request import RUN_DEFAULTS, RunSettings
from shared.enums import CompletionFormat, Role, RunState
from shared.runs.creation import benchmark_problems
from shared.runs.resume import resume_messages
from shared.settings import ServiceSettings

app = typer.Typer(help="Score LLM-written code with LLM-written unit tests.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(token_app, name="token")
app.add_typer(bank_app, name="bank")
app.add_typer(difficulty_app, name="difficulty")
app.add_typer(suite_app, name="suite")
app.command("dashboard")(dashboard_cmd.dashboard)
DEMO_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"


@app.command("import-benchmark")
def import_benchmark(
    name: Annotated[str, typer.Argument(help="benchmark name, e.g. humaneval, humaneval+, mbpp+")],
    file: Annotated[
        Path | None,
        typer.Option(
            help="JSONL(.gz): HumanEval format, or evalplus's HumanEvalPlus[-Mini] / MbppPlus",
            exists=True,
        ),
    ] = None,
    test_prompts: Annotated[
        Path | None, typer.Option(help="test-generation prompts (CodeT), joined by task_id")
    ] = None,
    coderm_prompts: Annotated[
        Path | None,
        typer.Option(
            help="folder of CodeRM's input_<set>_{sol,ut}.jsonl.gz chat prompts, by task_id",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    file_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="humaneval, humaneval+, mbpp+ or livecodebench (default: the name if it is "
            "one of these, else humaneval)",
        ),
    ] = None,
    executor_wait: Annotated[
        float,
        typer.Option(
            help="seconds to wait for an executor to take the expected-outputs requests "
            "(evalplus benchmarks) before giving up; they stay queued",
            min=0,
        ),
    ] = 60.0,
) -> None:
    """Import a benchmark (idempotent). evalplus benchmarks get their canonical solutions'
    outputs computed once, by the executor in its sandbox (the command waits for it);
    LiveCodeBench is read from --coderm-prompts and has no hidden tests (no correctness
    figures)."""
    fmt = file_format or (name if name in benchmarks.FORMATS else "humaneval")
    with user_errors():
        loaded = benchmarks.load_benchmark(fmt, file, test_prompts, coderm_prompts)
    if not loaded.problems:
        console.print(f"[red]error:[/red] no problems in {file or coderm_prompts}")
        raise typer.Exit(2)
    source = str(file.name if file is not None else coderm_prompts)

    progress = benchmark_import.ExpectedProgress(console)
    try:
        summary = with_sessions(
            lambda sessions: benchmark_import.import_benchmark(
                sessions, ServiceSettings().broker, name, source, loaded, progress, executor_wait
            )
        )
    finally:
        progress.close()
    console.print(f"benchmark {name}: {summary.in_file} problems in file, {summary.added} new")
    if summary.prompts_matched is not None:
        console.print(f"CodeRM prompts: {summary.prompts_matched} of {summary.in_file} matched")
    if summary.unlabelled:
        console.print(
            f"{summary.unlabelled} problems have no hidden tests: ground truth unavailable, "
            "runs on them report no correctness figures"
        )
    expected = summary.expected
    if expected is not None:
        console.print(
            f"expected outputs: {expected.computed} computed, {expected.already} already stored"
        )
        for task_id, reason in sorted(expected.failed.items()):
            console.print(
                f"[yellow]{task_id}: no expected outputs, left without ground truth:[/yellow] "
                f"{reason}"
            )


@app.command("import-completions")
def import_completions(
    file: Annotated[Path, typer.Argument(help="generations JSONL(.gz)", exists=True)],
    benchmark: Annotated[str, typer.Option()],
    model: Annotated[str, typer.Option(help="model name to register them under")],
    role: Annotated[Role, typer.Option()],
    file_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="codet: {prompt, samples[]}; jsonl: {task_id, completions[]}; CodeRM's files: "
            "coderm-sol (sol_*.jsonl), coderm-ut (ut_*.jsonl), coderm-inference "
            "({messages, responses}, joined by the problems' CodeRM prompts)",
        ),
    ] = "codet",
    completion_format: Annotated[
        CompletionFormat,
        typer.Option(
            help="completion: prompt continuations (CodeT); chat: markdown answers; chat-ref: "
            "markdown answers by CodeRM's own rules; code: extracted code, used verbatim "
            "(the coderm-* formats set it)"
        ),
    ] = CompletionFormat.COMPLETION,
    as_unittest: Annotated[
        bool,
        typer.Option(
            help="tests only: each CodeT sample as one CodeRM-style unittest class (chat format)"
        ),
    ] = False,
) -> None:
    """Import published generations for the ``replay`` backend (idempotent)."""
    if as_unittest and role is not Role.TEST:
        console.print("[red]error:[/red] --as-unittest applies to --role test only")
        raise typer.Exit(2)
    if as_unittest:
        completion_format = CompletionFormat.CHAT
    coderm = importers.CODERM_FORMATS.get(file_format)
    if coderm is not None:
        wrong = "--as-unittest" if as_unittest else f"--role {role}"
        if as_unittest or coderm[0] not in (None, role):
            console.print(f"[red]error:[/red] --format {file_format} does not take {wrong}")
            raise typer.Exit(2)
        completion_format = coderm[1]

    async def work(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int, list[str]]:
        async with sessions.begin() as session:
            problems = await benchmark_problems(session, benchmark)
            records = importers.read_completions(file_format, file, role, problems)
            ids = {p.task_id: p.id for p in problems}
            records, unknown = importers.known_records(records, ids)
            if unknown and (coderm is None or not records):  # CodeRM's files: skip, count
                raise importers.ImportFormatError(f"task ids not in {benchmark}: {unknown[:5]}")
            if as_unittest:
                entry_points = {p.task_id: p.entry_point for p in problems}
                records = importers.as_unittest_tests(records, entry_points)
            model_id = await store.upsert_model(session, model, "replay", completion_format)
            added = await store.insert_completions(
                session, model_id, role, completion_format, ids, records
            )
            return len(records), sum(len(r.samples) for r in records), added, unknown

    matched, total, added, unknown = with_sessions(work)
    summary = f"{matched} problems, {total} samples in file, {added} new"
    console.print(f"{model} {role.value}s: {summary}")
    if coderm is not None:
        console.print(f"stored as {completion_format.value} completions")
        shown = ": " + ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        console.print(
            f"{len(unknown)} lines skipped, task id in no problem of {benchmark}"
            + (shown if unknown else "")
        )


@app.command()
def run(
    benchmark: Annotated[str, typer.Option()],
    policy: Annotated[
        str, typer.Option(help="policy model (solutions): a name, or a checkpoint folder")
    ],
    test_model: Annotated[str, typer.Option(help="unit-test model")],
    n: Annotated[int, typer.Option(help="solutions per problem", min=1)] = RUN_DEFAULTS.n_solutions,
    m: Annotated[int, typer.Option(help="test samples per problem", min=0)] = RUN_DEFAULTS.n_tests,
    problems: Annotated[
        int | None, typer.Option(help="only the first K problems")
    ] = RUN_DEFAULTS.problems,
    assert_time_limit: Annotated[
        float, typer.Option(help="seconds per assert test (CodeT: 0.1)")
    ] = RUN_DEFAULTS.assert_time_limit_s,
    ground_truth_time_limit: Annotated[
        float, typer.Option(help="seconds for a solution's hidden tests")
    ] = RUN_DEFAULTS.ground_truth_time_limit_s,
    name: Annotated[str, typer.Option()] = "",
    seed: Annotated[int, typer.Option(help="seed of generated samples", min=0)] = RUN_DEFAULTS.seed,
    max_tokens: Annotated[
        int | None, typer.Option(help="tokens a generated sample [default: the model's]", min=1)
    ] = RUN_DEFAULTS.max_tokens,
    ground_truth: Annotated[
        str | None,
        typer.Option(
            help="benchmark whose problems (same task ids) label the solutions, e.g. "
            "humaneval+ for a humaneval run (default: --benchmark)"
        ),
    ] = RUN_DEFAULTS.ground_truth,
    adaptive: Annotated[
        bool,
        typer.Option(
            help="unittest pairs: a test's limit becomes 5x its slowest finished run "
            "(floor 0.25 s, at most the 1 s limit) once 3 solutions have run it"
        ),
    ] = RUN_DEFAULTS.adaptive,
    profile: Annotated[
        RunProfile,
        typer.Option(
            help="coderm-ref: CodeRM's executor globals, candidates (samples with one code "
            "block), labels (evalplus plus inputs alone); strict: ours"
        ),
    ] = RUN_DEFAULTS.profile,
    test_budget: Annotated[
        int | None,
        typer.Option(
            help="total test samples over the problems, spent in rounds where they can "
            "change the pick (-m then caps a problem's samples) [default: -m each at once]",
            min=1,
        ),
    ] = RUN_DEFAULTS.test_budget,
    first_round: Annotated[
        int, typer.Option(help="with --test-budget: test samples a problem in round 1", min=1)
    ] = RUN_DEFAULTS.first_round,
    allocation: Annotated[
        str,
        typer.Option(
            help="with --test-budget: who gets the later rounds' tests "
            f"({', '.join(LIVE_ALLOCATIONS)})"
        ),
    ] = RUN_DEFAULTS.allocation,
    difficulty: Annotated[
        Path | None,
        typer.Option(
            help="with --allocation paper: the pass rates `coderm difficulty predict --out` "
            "wrote, used instead of the estimate from the executions",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    detach: Annotated[bool, typer.Option(help="submit and return")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait before giving up")] = 7200.0,
) -> None:
    """Submit a run; follow it with per-stage progress bars, then print its table.

    A checkpoint folder as ``--policy`` is registered as a vllm model on first sight.
    With ``--test-budget`` the tests come in rounds (``coderm status`` and the report
    show them)."""
    settings = RunSettings(
        n_solutions=n,
        n_tests=m,
        problems=problems,
        assert_time_limit_s=assert_time_limit,
        ground_truth_time_limit_s=ground_truth_time_limit,
        seed=seed,
        max_tokens=max_tokens,
        ground_truth=ground_truth,
        adaptive=adaptive,
        profile=profile,
        test_budget=test_budget,
        first_round=first_round,
        allocation=allocation,
    )
    with user_errors():
        if difficulty is not None:
            settings = dataclasses.replace(
                settings, lambdas=submission.predicted_lambdas(difficulty, policy)
            )
    request = submission.run_request(
        benchmark=benchmark, policy=policy, test_model=test_model, name=name, settings=settings
    )
    with user_errors():
        checkpoint = submission.policy_checkpoint(policy)
        submitted = asyncio.run(submission.submit_run(request, checkpoint))
    if submitted.registered:
        console.print(f"checkpoint {policy} registered as model {submitted.policy}")
    run_id = submitted.run_id
    console.print(f"run {run_id} submitted (policy {submitted.policy})")
    if not detach:
        _follow(run_id, timeout)
        report(str(run_id))


def _follow(run_id: uuid.UUID, timeout: float) -> None:
    async def work(sessions: async_sessionmaker[AsyncSession]) -> str:
        bars, tasks = render.progress_bars()
        deadline = time.monotonic() + timeout
        with Live(bars, console=console, refresh_per_second=4):
            while True:
                async with sessions() as session:
                    progress = await store.run_progress(session, run_id)
                render.update_bars(bars, tasks, progress)
                if progress.state == RunState.FINISHED.value:
                    return progress.state
                if progress.state == RunState.FAILED.value:
                    return f"failed: {progress.error or 'no reason recorded'}"
                if progress.error:
                    return f"stuck: {progress.error}"
                if time.monotonic() > deadline:
                    return "timeout"
                await asyncio.sleep(0.5)

    state = with_sessions(work)
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

    async def work(
        sessions: async_sessionmaker[AsyncSession],
    ) -> tuple[store.Progress, str | None, tuple[rounds_view.RoundRow, ...]]:
        async with sessions() as session:
            found = await store.find_run(session, run_id)
            found_rounds = await rounds_view.load_rounds(session, found.id)
            progress = await store.run_progress(session, found.id)
            return progress, rounds_view.budget_line(found.config, found_rounds), found_rounds

    progress, budget, run_rounds = with_sessions(work)
    if follow:
        _follow(progress.run_id, timeout)
        return
    console.print(f"state: {progress.state} (profile {progress.profile})")
    if progress.error:
        console.print(f"[red]error:[/red] {progress.error}")
    for stage in render.STAGES:
        done, total = getattr(progress, stage)
        console.print(f"{stage:>10}: {done}/{total}")
    if budget is not None:
        console.print(budget)
        console.print(render.FittedTable(rounds_view.rounds_table(run_rounds)))


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="run id or unique prefix")],
    output: Annotated[
        report_cmd.ReportFormat, typer.Option("--format", help="what to print")
    ] = report_cmd.ReportFormat.TABLE,
    out: Annotated[
        Path | None, typer.Option(help="directory for the files [default: reports/<run>/]")
    ] = None,
    draws: Annotated[int, typer.Option(help="test draws a size for the curves", min=1)] = 20,
    sol_num: Annotated[
        int, typer.Option(help="calculate_result.py figure: solutions a problem", min=1, max=100)
    ] = 100,
    ut_num: Annotated[
        int, typer.Option(help="calculate_result.py figure: tests drawn", min=1, max=100)
    ] = 100,
    sample_num: Annotated[
        int, typer.Option(help="calculate_result.py figure: repetitions", min=1)
    ] = 100,
    seed: Annotated[int, typer.Option(help="calculate_result.py figure: random.seed")] = 0,
) -> None:
    """Analyse a run: print its tables and write report.html/.md/.json with plots."""
    reference = report_cmd.ReferenceParams(sol_num, ut_num, sample_num, seed)
    found = with_sessions(
        lambda sessions: report_cmd.load_report(sessions, run_id, draws, reference)
    )
    code = report_cmd.emit_report(console, found, output, out or report_cmd.default_out(found))
    if code:
        raise typer.Exit(code)


@app.command("simulate-allocation")
def simulate_allocation(
    run_id: Annotated[str, typer.Argument(help="a finished run: id or unique prefix")],
    budgets: Annotated[
        str, typer.Option(help="average test samples a problem at which accuracy is read")
    ] = "1,2,4,8,16,32,64",
    draws: Annotated[
        int, typer.Option(help="seeded orders of the test samples (bootstrap)", min=1)
    ] = allocation_cmd.DEFAULT_DRAWS,
    seed: Annotated[int, typer.Option(help="seed of the draws")] = 0,
    allocations: Annotated[
        str | None,
        typer.Option(help="comma-separated allocations [all]; equal is always included"),
    ] = None,
    first_round: Annotated[int, typer.Option(help="test samples a problem in round 1", min=0)] = 1,
    per_doubling: Annotated[
        int, typer.Option(help="rounds in which the budget about doubles", min=1)
    ] = 4,
    output: Annotated[
        allocation_cmd.SimulateFormat, typer.Option("--format", help="what to print")
    ] = allocation_cmd.SimulateFormat.TEXT,
    out: Annotated[
        Path | None,
        typer.Option(help="directory for allocation_rounds.png and allocation_rounds.json"),
    ] = None,
) -> None:
    """Replay every test allocation in rounds on a finished run's full matrix: accuracy
    (CodeRM majority voting, CodeT) against the average test budget, with error bars."""
    with user_errors():
        asked = allocation_cmd.parse_budgets(budgets)
        rules = allocation_cmd.parse_allocations(allocations)
    found, problems = with_sessions(
        lambda sessions: allocation_cmd.load_simulation_input(sessions, run_id)
    )
    sim = allocation_cmd.run_simulation(
        found, problems, rules, asked, draws, seed, first_round, per_doubling
    )
    allocation_cmd.emit_simulation(console, sim, output, out)


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="run A (the candidate): id or unique prefix")],
    run_b: Annotated[str, typer.Argument(help="run B (the baseline): id or unique prefix")],
    output: Annotated[
        compare_cmd.CompareFormat, typer.Option("--format", help="what to print")
    ] = compare_cmd.CompareFormat.TABLE,
    level: Annotated[
        float, typer.Option(help="confidence level of the intervals, a fraction")
    ] = compare_cmd.DEFAULT_BOOTSTRAP.level,
    resamples: Annotated[
        int, typer.Option(help="bootstrap resamples of the common problems", min=1)
    ] = compare_cmd.DEFAULT_BOOTSTRAP.resamples,
    seed: Annotated[
        int, typer.Option(help="seed of the resamples", min=0)
    ] = compare_cmd.DEFAULT_BOOTSTRAP.seed,
    inner: Annotated[
        int,
        typer.Option(
            help="also resample each problem's solutions and tests: re-scored copies "
            "a problem (slow; 0: problems only)",
            min=0,
        ),
    ] = 0,
    fail_on_regression: Annotated[
        list[str] | None,
        typer.Option(
            metavar="METRIC[:THRESHOLD]",
            help="exit 1 when A is significantly worse than B on METRIC (e.g. codet.pass@1) "
            "by more than THRESHOLD percentage points [0]; repeatable",
        ),
    ] = None,
) -> None:
    """Two runs side by side on their common problems: deltas with paired bootstrap
    intervals and verdicts, per-problem wins/losses."""
    with user_errors():
        gates = compare_cmd.parse_gates(fail_on_regression or [])
        spec = compare_cmd.bootstrap_spec(level, resamples, seed, inner)
    found = with_sessions(
        lambda sessions: compare_cmd.load_comparison(sessions, run_a, run_b, spec)
    )
    with user_errors():
        failures = compare_cmd.check_gates(found, gates)
    compare_cmd.emit_comparison(console, found, output)
    for failure in failures:
        typer.echo(failure, err=True)
    if failures:
        raise typer.Exit(1)


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
            messages = await resume_messages(session, found)
        async with connect_broker(ServiceSettings().broker) as broker:
            await broker.publish_many(messages)
        return found.id, len(messages)

    found_id, count = with_sessions(work)
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
    columns = ("run", "name", "benchmark", "policy / tests", "N x M", "profile", "state", "created")
    for column in columns:
        table.add_column(column)
    table.add_column("CodeT pass@1", justify="right")
    for item in with_sessions(work):
        run_row = item.run
        table.add_row(
            str(run_row.id)[:8],
            run_row.name,
            item.benchmark,
            f"{item.policy} / {item.test_model}",
            f"{run_row.n_solutions} x {run_row.n_tests}",
            run_profile(run_row.config).value,
            run_row.state,
            f"{run_row.created_at:%Y-%m-%d %H:%M}",
            "" if item.codet_pass_at_1 is None else f"{item.codet_pass_at_1:.2f}",
        )
    console.print(table)


@app.command()
def archive(
    run_id: Annotated[str, typer.Argument(help="run id or unique prefix")],
    undo: Annotated[bool, typer.Option(help="keep the run again")] = False,
) -> None:
    """Archive a run: its results stay, its verdicts are no longer kept (coderm gc)."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
        async with sessions.begin() as session:
            found = await store.find_run(session, run_id)
            await retention.archive_run(session, found.id, undo=undo)
            return found.id

    found_id = with_sessions(work)
    console.print(f"run {found_id} {'kept' if undo else 'archived'}")


@app.command()
def delete(
    run_id: Annotated[str, typer.Argument(help="run id or unique prefix")],
    yes: Annotated[bool, typer.Option("--yes", help="do delete (else say what would go)")] = False,
) -> None:
    """Delete a run and what is its own; shared code and verdicts go with coderm gc."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
        async with sessions.begin() as session:
            found = await store.find_run(session, run_id)
            if yes:
                await retention.delete_run(session, found.id)
            return found.id

    found_id = with_sessions(work)
    console.print(f"run {found_id} {'deleted' if yes else 'would be deleted (add --yes)'}")


@app.command()
def gc(
    min_age: Annotated[
        float, typer.Option(help="hours: younger solutions and tests stay", min=0)
    ] = 1.0,
    dry_run: Annotated[bool, typer.Option(help="say what would go, delete nothing")] = False,
) -> None:
    """Remove verdicts, completions, solutions and tests no kept run needs; print what
    it freed (rows and bytes)."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> list[retention.Freed]:
        async with sessions() as session, session.begin():
            freed = await retention.collect(session, timedelta(hours=min_age))
            if dry_run:
                await session.rollback()
            return freed

    freed = with_sessions(work)
    table = Table(title="gc: would free" if dry_run else "gc: freed")
    for column in ("what", "rows", "bytes"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for item in freed:
        table.add_row(item.what, f"{item.rows:,}", f"{item.bytes:,}")
    table.add_row("total", f"{sum(f.rows for f in freed):,}", f"{sum(f.bytes for f in freed):,}")
    console.print(table)


@app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option(help="messages shown per queue", min=1)] = 20,
) -> None:
    """Show dead-lettered messages and why (they stay in their queues)."""
    with user_errors():
        letters = asyncio.run(peek_dead_letters(ServiceSettings().broker, limit))
    if not letters:
        console.print("no dead-lettered messages")
        return
    console.print(dead_letters_table(letters))


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


@app.command()
def watch(
    folder: Annotated[
        Path, typer.Argument(help="folder of checkpoint folders", exists=True, file_okay=False)
    ],
    benchmark: Annotated[str | None, typer.Option(help="required without --suite")] = None,
    test_model: Annotated[
        str | None, typer.Option(help="unit-test model (required without --suite)")
    ] = None,
    n: Annotated[int, typer.Option(help="solutions per problem", min=1)] = RUN_DEFAULTS.n_solutions,
    m: Annotated[int, typer.Option(help="test samples per problem", min=0)] = RUN_DEFAULTS.n_tests,
    problems: Annotated[
        int | None, typer.Option(help="only the first K problems")
    ] = RUN_DEFAULTS.problems,
    seed: Annotated[int, typer.Option(help="seed of generated samples", min=0)] = RUN_DEFAULTS.seed,
    max_tokens: Annotated[
        int | None, typer.Option(help="tokens a generated sample [default: the model's]", min=1)
    ] = RUN_DEFAULTS.max_tokens,
    suite: Annotated[
        str | None,
        typer.Option(
            help="a stored suite (coderm suite add): one run per member for each checkpoint, "
            "verdicts against the previous checkpoint and the best so far (docs/CONTINUOUS.md)"
        ),
    ] = None,
    on_regression: Annotated[
        str | None,
        typer.Option(
            help="with --suite: a shell command run once per regression, the verdicts as "
            "JSON on stdin and CODERM_CHECKPOINT in its environment"
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="with --suite: a registered policy model evaluated before the checkpoints "
            "(e.g. the model training starts from)"
        ),
    ] = None,
    interval: Annotated[float, typer.Option(help="seconds between looks at the folder")] = 60.0,
    settle: Annotated[
        float, typer.Option(help="seconds a checkpoint must be unchanged to count")
    ] = 60.0,
    once: Annotated[bool, typer.Option(help="one pass over the folder, then exit")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for one run")] = 7200.0,
) -> None:
    """Evaluate every new checkpoint in FOLDER and compare it with the one before it
    (with --suite: on every benchmark of the suite, and with the best so far too)."""
    if suite is not None:
        run_options = (benchmark, test_model, problems, max_tokens)
        if any(v is not None for v in run_options) or (n, m, seed) != (
            RUN_DEFAULTS.n_solutions,
            RUN_DEFAULTS.n_tests,
            RUN_DEFAULTS.seed,
        ):
            console.print(
                "[red]error:[/red] --suite takes its benchmarks and run settings from the "
                "suite (coderm suite show); drop --benchmark, --test-model, -n, -m, "
                "--problems, --seed, --max-tokens"
            )
            raise typer.Exit(2)
        suite_spec = suite_watch_cmd.SuiteWatch(
            folder=folder.resolve(),
            suite=suite,
            settle_s=settle,
            interval_s=interval,
            timeout_s=timeout,
            hook=on_regression,
            baseline=baseline,
        )
        with user_errors():
            ok = asyncio.run(suite_watch_cmd.watch_suite(suite_spec, once))
        if not ok:
            raise typer.Exit(1)
        return
    if benchmark is None or test_model is None or on_regression or baseline:
        console.print(
            "[red]error:[/red] watch needs --benchmark and --test-model, or --suite "
            "(--on-regression and --baseline go with --suite)"
        )
        raise typer.Exit(2)
    settings = RunSettings(
        n_solutions=n, n_tests=m, problems=problems, seed=seed, max_tokens=max_tokens
    )
    template = submission.run_request(
        benchmark=benchmark, policy="", test_model=test_model, settings=settings
    )
    show = watch_cmd.Show(
        report=lambda run_id: report(str(run_id)),
        compare=lambda run_a, run_b: compare(str(run_a), str(run_b)),
    )
    spec = watch_cmd.Watch(
        folder=folder.resolve(),
        template=template,
        settle_s=settle,
        interval_s=interval,
        timeout_s=timeout,
    )
    with user_errors():
        ok = asyncio.run(watch_cmd.watch_folder(spec, once, show))
    if not ok:
        raise typer.Exit(1)


@app.command("exec-pairs")
def exec_pairs(
    input_path: Annotated[
        Path, typer.Option("--input", exists=True, help="JSONL {task_id, sol_id, ut_id, code}")
    ],
    output_path: Annotated[Path, typer.Option("--output", help="JSONL results, input order")],
    time_limit: Annotated[
        float, typer.Option(min=0.001, help="seconds a pair's module may run")
    ] = 1.0,
    kill_after: Annotated[
        float | None, typer.Option(help="kill bound (default 2 x the limit)")
    ] = None,
    adaptive: Annotated[
        bool, typer.Option(help="per-test limit from the other solutions' run times")
    ] = False,
    adaptive_factor: Annotated[float, typer.Option(min=1.0)] = 5.0,
    adaptive_floor: Annotated[float, typer.Option(min=0.001, help="seconds")] = 0.25,
    jobs: Annotated[int, typer.Option(min=1, help="sandbox containers at once")] = 2,
    parallel: Annotated[
        int | None, typer.Option(min=1, help="pairs a container runs at once (CPUs + 1)")
    ] = None,
    batch_pairs: Annotated[
        int, typer.Option(min=1, help="distinct modules a container gets at most")
    ] = 8000,
    profile: Annotated[
        RunProfile,
        typer.Option(
            help="coderm-ref: CodeRM's executor globals (unittest, output, locals_dict), "
            "for pair files as CodeRM's evaluate.py writes them; strict: our own wrapping"
        ),
    ] = RunProfile.CODERM_REF,
) -> None:
    """Run (solution, unit test) pairs like CodeRM's executor, through the sandbox."""
    options = exec_pairs_cmd.ExecOptions(
        reference_globals=profile.reference_globals,
        time_limit_s=time_limit,
        kill_after_s=kill_after if kill_after is not None else 2 * time_limit,
        adaptive=AdaptiveLimit(factor=adaptive_factor, floor_s=adaptive_floor)
        if adaptive
        else None,
        containers=jobs,
        parallel=parallel,
        batch_pairs=batch_pairs,
    )
    with user_errors():
        try:
            summary = exec_pairs_cmd.run_command(input_path, output_path, options, console)
        except exec_pairs_cmd.PairsFormatError as error:
            raise UserError(str(error)) from error
    console.print(summary)


def main() -> None:
    """Console-script entry point."""
    app()

"""Terminal rendering (rich): run progress, and report documents laid out to fit the
terminal's width.

A report table that is wider than the terminal is not left to rich's own shrinking,
which cuts labels and numbers to ``stra…`` and ``100…``: every column keeps at least
its longest word, so cells wrap between words and are never cut, and when even that is
too wide the table is split into several tables, each with the leading label columns
(the strategy, the task) and as many of the other columns as fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table as RichTable
from rich.text import Text

from services.cli.blocks import TERMINAL_ROWS, Block, Heading, Para, Table
from services.cli.store import Progress as RunProgress

STAGES = ("generated", "extracted", "executed", "scored")


def progress_bars() -> tuple[Progress, dict[str, TaskID]]:
    """A rich progress display with one bar per pipeline stage."""
    bars = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    tasks = {stage: bars.add_task(stage, total=None) for stage in STAGES}
    return bars, tasks


def update_bars(bars: Progress, tasks: dict[str, TaskID], progress: RunProgress) -> None:
    """Move every bar to the run's current counts."""
    for stage in STAGES:
        done, total = getattr(progress, stage)
        bars.update(tasks[stage], completed=done, total=total or None)


# ------------------------------------------------------------------ report tables

#: Rich's default table: one space of padding on each side of a cell, one rule between
#: columns and one at each edge.
CELL_PADDING = 2
CONTINUED = "(continued below)"


@dataclass(frozen=True)
class ColumnSize:
    """The widths a column's text asks for: ``minimum`` its longest word (narrower
    would cut a word), ``natural`` its longest cell on one line."""

    minimum: int
    natural: int


def table_width(widths: Sequence[int]) -> int:
    """The terminal width of a rich table whose columns' text is ``widths`` wide."""
    return sum(widths) + (CELL_PADDING + 1) * len(widths) + 1


def _size(cells: Sequence[str]) -> ColumnSize:
    words = [cell_len(word) for cell in cells for word in cell.split()]
    natural = max((cell_len(cell) for cell in cells), default=0)
    return ColumnSize(max(max(words, default=0), 1), max(natural, 1))


def column_sizes(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[ColumnSize]:
    """Each column's :class:`ColumnSize` over its header and cells."""
    return [_size([header, *(row[i] for row in rows)]) for i, header in enumerate(headers)]


def _is_figure(cell: str) -> bool:
    """A number, ``-`` (undefined), a ratio such as ``18 / 100`` or a number with its
    error bar such as ``41.96±2.23``."""
    for word in cell.split():
        try:
            for part in word.split("±"):
                float(part)
        except ValueError:
            if word not in ("-", "/"):
                return False
    return True


def label_columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """How many leading columns label a row (a cell in them is not a figure): at
    least one, and at least one column is left for the figures."""
    keys = 0
    while keys < len(headers) - 1 and any(not _is_figure(row[keys]) for row in rows):
        keys += 1
    return max(keys, 1) if len(headers) > 1 else len(headers)


def _fits(sizes: Sequence[ColumnSize], width: int) -> bool:
    return table_width([s.minimum for s in sizes]) <= width


def _even_chunks(columns: Sequence[int], parts: int) -> list[list[int]]:
    size, extra = divmod(len(columns), parts)
    chunks, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        chunks.append(list(columns[start:end]))
        start = end
    return chunks


def column_groups(sizes: Sequence[ColumnSize], keys: int, width: int) -> list[list[int]]:
    """The indices of the columns after the ``keys`` label columns, split into the
    fewest runs that fit ``width`` beside the label columns at their minimum widths,
    as even as possible; one column a run when even that does not fit."""
    data = list(range(keys, len(sizes)))
    if not data:
        return [[]]
    label = list(sizes[:keys])
    greedy: list[list[int]] = [[]]
    for i in data:
        if greedy[-1] and not _fits([*label, *(sizes[j] for j in greedy[-1]), sizes[i]], width):
            greedy.append([])
        greedy[-1].append(i)
    even = _even_chunks(data, len(greedy))
    if all(_fits([*label, *(sizes[j] for j in chunk)], width) for chunk in even):
        return even
    return greedy


def fit_widths(sizes: Sequence[ColumnSize], width: int) -> list[int]:
    """Column widths within ``width``: every column at least its longest word, the
    space left given to the columns up to their natural widths, those that need the
    least first (so that as many as can be stay on one line). A column whose longest
    word cannot fit is narrowed (its words fold, none is cut)."""
    widths = [s.minimum for s in sizes]
    spare = width - table_width(widths)
    for i in sorted(range(len(sizes)), key=lambda i: (sizes[i].natural - sizes[i].minimum, i)):
        grow = max(0, min(spare, sizes[i].natural - widths[i]))
        widths[i] += grow
        spare -= grow
    while table_width(widths) > width and max(widths) > 1:
        widths[widths.index(max(widths))] -= 1
    return widths


def _rich_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int], caption: str
) -> RichTable:
    table = RichTable(caption=caption or None, caption_justify="left")
    for i, (header, w) in enumerate(zip(headers, widths, strict=True)):
        table.add_column(header, justify="left" if i == 0 else "right", width=w, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def fitted_tables(block: Table, width: int) -> list[RichTable]:
    """``block`` as rich tables at most ``width`` wide (at most ``TERMINAL_ROWS``
    rows): one table when its columns fit at their longest words, else several, each
    with the label columns (:func:`label_columns`) and the next run of the others."""
    caption, rows = block.caption, block.rows
    if len(rows) > TERMINAL_ROWS:
        caption += f" (first {TERMINAL_ROWS}; {len(rows) - TERMINAL_ROWS} more in the files)"
        rows = rows[:TERMINAL_ROWS]
    sizes = column_sizes(block.headers, rows)
    keys = label_columns(block.headers, rows)
    groups = column_groups(sizes, keys, width)
    layouts = [fit_widths([sizes[i] for i in (*range(keys), *g)], width) for g in groups]
    labels = [min(widths[k] for widths in layouts) for k in range(keys)]  # aligned parts
    tables = []
    for n, (group, widths) in enumerate(zip(groups, layouts, strict=True), start=1):
        columns = [*range(keys), *group]
        tables.append(
            _rich_table(
                [block.headers[i] for i in columns],
                [[row[i] for i in columns] for row in rows],
                [*labels, *widths[keys:]],
                caption if n == len(groups) else CONTINUED,
            )
        )
    return tables


@dataclass(frozen=True)
class FittedTable:
    """A report table laid out, when printed, for the console's width
    (:func:`fitted_tables`)."""

    table: Table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Rich's rendering protocol: the fitted tables, one after the other."""
        yield from fitted_tables(self.table, options.max_width)


def terminal_document(blocks: Sequence[Block]) -> RenderableType:
    """Headings, paragraphs and tables (at most ``TERMINAL_ROWS`` rows each, fitted to
    the console's width) for a terminal; images, collapsed sections and headings with
    nothing else under them are left to the files."""
    items: list[RenderableType] = []
    heading: Text | None = None
    for block in blocks:
        if isinstance(block, Heading):
            heading = Text(block.text, style="bold")
        elif isinstance(block, Para | Table):
            if heading is not None:
                items.append(heading)
                heading = None
            items.append(Text(block.text) if isinstance(block, Para) else FittedTable(block))
    return Group(*items)

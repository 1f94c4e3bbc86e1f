"""A document as a list of blocks (heading, paragraph, table, image, collapsed
section), rendered to Markdown, self-contained HTML (images as base64 PNG data URIs)
and the terminal (rich). Building a document once and rendering it several ways
keeps the formats' sections and numbers identical."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    stem: str
    caption: str


@dataclass(frozen=True)
class Details:
    summary: str
    blocks: list[Block] = field(default_factory=list)


Block = Heading | Para | Table | Image | Details


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a table cell; ``-`` for an undefined value."""
    return "-" if value is None else f"{value:.{digits}f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    lines = [f"*{table.caption}*", ""] if table.caption else []
    lines.append("| " + " | ".join(map(_md_cell, table.headers)) + " |")
    lines.append("|" + "|".join(" --- " for _ in table.headers) + "|")
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in table.rows]
    return lines


def to_markdown(blocks: Sequence[Block], images: dict[str, str]) -> str:
    """Markdown; ``images`` maps a plot stem to its (relative) file path."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines.append("#" * block.level + " " + block.text)
        elif isinstance(block, Para):
            lines.append(block.text)
        elif isinstance(block, Table):
            lines += _md_table(block)
        elif isinstance(block, Image):
            if block.stem not in images:
                continue
            lines.append(f"![{block.caption}]({images[block.stem]})")
        else:
            lines.append(f"### {block.summary}")
            lines.append("")
            lines.append(to_markdown(block.blocks, images).rstrip("\n"))
        lines.append("")
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td { text-align: right; } td:first-child, th { text-align: left; }
caption { caption-side: top; text-align: left; font-style: italic; padding: 0.3em 0; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def _html_inline(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(table: Table) -> str:
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_blocks(blocks: Sequence[Block], pngs: dict[str, bytes]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{_html_inline(block.text)}</p>")
        elif isinstance(block, Table):
            out.append(_html_table(block))
        elif isinstance(block, Image):
            if block.stem in pngs:
                data = base64.b64encode(pngs[block.stem]).decode("ascii")
                out.append(
                    f'<figure><img alt="{html.escape(block.caption)}" '
                    f'src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
                )
        else:
            inner = "".join(_html_blocks(block.blocks, pngs))
            out.append(f"<details><summary>{html.escape(block.summary)}</summary>{inner}</details>")
    return out


def to_html(blocks: Sequence[Block], pngs: dict[str, bytes], title: str) -> str:
    """A self-contained HTML page: inline CSS, plots as data URIs, no external links."""
    body = "\n".join(_html_blocks(blocks, pngs))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


TERMINAL_ROWS = 20
"""The most rows a table shows in a terminal; the files hold them all."""

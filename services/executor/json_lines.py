"""The JSON-lines stdout of a sandbox container, as the executor's parsers read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JsonLines:
    """The records of a container's stdout and whether its end marker was among them."""

    records: list[dict[str, Any]]
    done: bool


def read_json_lines(stdout: bytes) -> JsonLines:
    """Every JSON object line of ``stdout`` (blank lines skipped) except the end marker
    ``{"done": true, ...}``, and whether that marker was seen.

    Raises ValueError naming the line when a line is not a JSON object.
    """
    records: list[dict[str, Any]] = []
    done = False
    for raw in stdout.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"unparsable line {raw[:200]!r}: {exc}") from exc
        if not isinstance(line, dict):
            raise ValueError(f"unparsable line {raw[:200]!r}: not an object")
        if line.get("done") is True:
            done = True
        else:
            records.append(line)
    return JsonLines(records, done)

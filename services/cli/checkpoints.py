"""Checkpoint folders on disk: recognise them, fingerprint their content, order them.

A checkpoint is a folder with a ``config.json`` and weights (``*.safetensors`` or
``*.bin``), as ``save_pretrained`` writes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.enums import CompletionFormat

WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: Files up to this size are hashed whole; larger ones (weights) by their size and
#: samples of this size at the start, the middle and the end.
WHOLE_FILE_BYTES = 64 * 2**20
SAMPLE_BYTES = 4 * 2**20


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a folder holding a ``config.json`` and weights."""
    if not path.is_dir() or not (path / "config.json").is_file():
        return False
    return any(f.suffix in WEIGHT_SUFFIXES for f in path.iterdir() if f.is_file())


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as handle:
        if size <= WHOLE_FILE_BYTES:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        else:
            for offset in (0, size // 2, size - SAMPLE_BYTES):
                handle.seek(offset)
                digest.update(handle.read(SAMPLE_BYTES))
    return digest.digest()


def fingerprint(path: Path) -> str:
    """A content fingerprint of a checkpoint folder (hex sha256).

    Every regular file counts, by relative name and content; a file over
    ``WHOLE_FILE_BYTES`` by its size and three samples, which tells apart any two
    trained checkpoints at a small fraction of the cost of reading gigabytes.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(_file_digest(file))
    return digest.hexdigest()


def prompt_format(path: Path) -> CompletionFormat:
    """``chat`` if the checkpoint's tokenizer carries a chat template, else ``completion``."""
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return CompletionFormat.CHAT
    config = path / "tokenizer_config.json"
    if config.is_file():
        try:
            if json.loads(config.read_text()).get("chat_template"):
                return CompletionFormat.CHAT
        except (ValueError, AttributeError):
            pass
    return CompletionFormat.COMPLETION


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``checkpoint-500`` before ``checkpoint-1000``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )


def newest_mtime(path: Path) -> float:
    """The latest modification time of the folder or any file in it."""
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.rglob("*"))])


def checkpoints_in(folder: Path) -> Iterator[Path]:
    """The checkpoint folders directly inside ``folder``, in natural name order."""
    found = [p for p in folder.iterdir() if is_checkpoint(p)]
    yield from sorted(found, key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class Checkpoint:
    """What the registry needs to know of a checkpoint folder."""

    path: Path
    fingerprint: str
    format: CompletionFormat


def inspect(path: Path) -> Checkpoint:
    """Resolve, fingerprint and classify a checkpoint folder; ``ValueError`` if it is none."""
    if not is_checkpoint(path):
        raise ValueError(f"{path} is not a checkpoint folder (config.json and weights)")
    return Checkpoint(path.resolve(), fingerprint(path), prompt_format(path))

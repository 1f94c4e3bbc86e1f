"""Entry point of the sandbox's batch runner: ``python3 -I -S /opt/coderm/runner.py``.

The runner is the package ``coderm_runner`` next to this script (its docstring gives
the input and output formats and the job kinds). ``-I`` keeps the script's directory
off ``sys.path``, so it is put there here. ``-S`` keeps the interpreter's
site-packages off it too (and skips their ``.pth`` files): those of them this
process cannot write (the image's numpy and pandas) are appended after the standard
library, so candidate code can import what the image installed and nothing else.
"""

from __future__ import annotations

import importlib
import os
import sys


def site_packages() -> list[str]:
    """The interpreter's site-packages directories that exist and this process cannot
    write (the image's root is read-only; a writable one is never added)."""
    site = importlib.import_module("site")  # with -S, importing it changes nothing
    found: list[str] = []
    for path in site.getsitepackages():
        if os.path.isdir(path) and not os.access(path, os.W_OK) and path not in sys.path:
            found.append(path)
    return found


def main() -> int:
    """Run one batch from stdin (see ``coderm_runner.batch.main``)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.extend(site_packages())
    batch = importlib.import_module("coderm_runner.batch")
    status: int = batch.main()
    return status


if __name__ == "__main__":
    sys.exit(main())

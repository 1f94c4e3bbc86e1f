"""Entry point of the sandbox's batch runner: ``python3 -I -S /opt/coderm/runner.py``.

The runner is the package ``coderm_runner`` next to this script (its docstring gives
the input and output formats and the job kinds). ``-I`` keeps the script's directory
off ``sys.path``, so it is put there here.
"""

from __future__ import annotations

import importlib
import os
import sys


def main() -> int:
    """Run one batch from stdin (see ``coderm_runner.batch.main``)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    batch = importlib.import_module("coderm_runner.batch")
    status: int = batch.main()
    return status


if __name__ == "__main__":
    sys.exit(main())

"""CodeRM's own extraction rules, text for text (pure functions, no I/O).

Re-implemented from the behaviour of CodeRM's ``preprocess/extract_solution.py`` and
``preprocess/extract_unit_test.py`` (``RUCKBReasoning/CodeRM``), so that a CodeRM user's
files can be re-scored here and give the very strings CodeRM's scripts give:

* :func:`extract_solution_ref`: the single fenced block of a chat answer, verbatim.
* :func:`extract_unittest_ref`: the single fenced block holding exactly one class,
  cut and wrapped by CodeRM's text rules (:func:`wrap_unittest_ref`).
* :func:`extract_verbatim`: text that already *is* extracted code (a solution string of
  a ``sol_*.jsonl`` file, a wrapped test of a ``ut_*.jsonl`` file), taken as it is.
* :func:`pair_code_ref`: the module CodeRM's evaluation runs for one pair.

How this differs from our default :func:`~shared.core.extraction.extract_chat_unittest`
(which follows the same rules but repairs their accidents):

1. **Text slicing, not the AST.** The kept part starts at the first ``"\\nclass"`` in
   the text and ends before the first ``"\\ndef"`` after it. A block that starts with
   ``class`` (no newline before it) keeps only its *last character*, because
   ``str.find`` returns -1; a decorated ``def`` leaves its ``@decorator`` line behind;
   ``"\\nclassify = 1"`` or ``"\\ndefault = 1"`` count as a class or a def. The default
   extractor uses the top-level statements of the parsed block instead.
2. **Trailing ``#`` rule.** Only when a ``"\\ndef"`` ends the kept part, trailing lines
   that contain ``#`` anywhere (a comment, but also ``'#'`` inside a string, as in the
   last assertion of a test) are dropped, which can leave a method without a body.
3. **Imports as CodeRM prints them.** Every import anywhere in the block (``ast.walk``
   order: module level first, then nested), one alias a line; ``from . import x`` becomes
   the literal ``from None import x`` and relative dots are lost (``from .m import x``
   gives ``from m import x``). If the block no longer parses once the tails are removed,
   the imports are just ``import unittest`` and the (broken) text is kept: we do not
   report a syntax error, CodeRM's test simply fails to run.
4. **Only the two exact ``unittest.main()`` tails are removed**; any other
   ``if __name__ == "__main__":`` block is kept (it never runs in CodeRM's executor,
   whose namespace is not ``__main__``).
5. **The driver** writes to ``output`` and stores the result in ``locals_dict['result']``,
   two names CodeRM's executor puts in the namespace it runs the pair in, instead of an
   ``io.StringIO()`` of its own and a module-level ``result``.
6. **No newline normalisation.** The fence patterns need ``\\n``: an answer written with
   CRLF line endings has no block at all.

CodeRM's script would crash with an ``IndexError`` if every line before the ``def`` held
a ``#``; that cannot happen to a text found by ``"\\nclass"`` (its first line is empty),
but should it, the response yields no test and the reason is recorded.

Per problem CodeRM deduplicates the wrapped tests by exact text and stores
``list(set(...))``, whose order is arbitrary; callers here keep first-seen order.
"""

from __future__ import annotations

import ast
import re
import warnings

from shared.core.extraction import Extracted
from shared.enums import ExtractionStatus

_PYTHON_FENCE = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
_BARE_FENCE = re.compile(r"```\n(.*?)\n```", re.DOTALL)

# One name only, optionally followed by a comment; removed with its text, not its newline.
_YOUR_MODULE_IMPORT = re.compile(r"^from\s+your_module\s+import\s+\w+(\s+#.*)?$", re.MULTILINE)

_MAIN_TAIL_SINGLE = "if __name__ == '__main__':\n    unittest.main()"
_MAIN_TAIL_DOUBLE = 'if __name__ == "__main__":\n    unittest.main()'

#: The imports CodeRM falls back to when the cleaned block does not parse.
_FALLBACK_IMPORTS = "import unittest"


class _EveryLineHasHash(Exception):
    """The trailing-``#`` rule removed every line (CodeRM's script raises IndexError)."""


def _ok(code: str) -> Extracted:
    return Extracted(ExtractionStatus.OK, (code,))


def _no(status: ExtractionStatus, detail: str) -> Extracted:
    return Extracted(status, (), detail)


def _try_parse(code: str) -> ast.Module | None:
    """``ast.parse``, or None if it raises anything; warnings are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(code)
        except Exception:  # SyntaxError, ValueError (NUL bytes), RecursionError...
            return None


def code_blocks_ref(text: str) -> list[str]:
    """CodeRM's ``extract_code``: bodies of ```` ```python\\n ... \\n``` ```` blocks
    (non-greedy, across lines); only if there is none, of bare ```` ```\\n ```` blocks.
    The text is not normalised in any way."""
    blocks = _PYTHON_FENCE.findall(text)
    if not blocks:
        blocks = _BARE_FENCE.findall(text)
    return [str(block) for block in blocks]


def _single_block(text: str) -> str | Extracted:
    """The one block CodeRM keeps, or why it drops the response."""
    if not text.strip():
        return _no(ExtractionStatus.EMPTY, "completion is empty")
    blocks = code_blocks_ref(text)
    if not blocks:
        return _no(ExtractionStatus.NO_CODE_BLOCK, "no fenced code block (CodeRM drops it)")
    if len(blocks) > 1:
        return _no(
            ExtractionStatus.MULTIPLE_CODE_BLOCKS,
            f"{len(blocks)} fenced code blocks (CodeRM drops it)",
        )
    return blocks[0]


def extract_solution_ref(text: str) -> Extracted:
    """A chat answer's solution as CodeRM's ``extract_solution.py`` takes it.

    Kept iff exactly one block matched (see :func:`code_blocks_ref`); the solution is
    that block verbatim, parsed or not. CodeRM drops other responses from its solution
    list altogether (so its ``sol_id`` counts kept responses only); here they get a
    non-OK status saying why.
    """
    block = _single_block(text)
    if isinstance(block, Extracted):
        return block
    return _ok(block)


def extract_verbatim(text: str, solution: bool = False) -> Extracted:
    """Text that is already extracted code, used exactly as it is.

    A solution string of CodeRM's ``sol_*.jsonl`` or an already wrapped test of its
    ``ut_*.jsonl``. A solution is kept whatever it holds: CodeRM keeps the empty
    solution of a response whose one block is empty, and its ``sol_id`` counts it (it
    fails every test). A blank test (empty or whitespace only) has nothing to run:
    EMPTY (CodeRM's files never hold one).
    """
    if not solution and not text.strip():
        return _no(ExtractionStatus.EMPTY, "code is empty")
    return _ok(text)


def class_names_ref(code: str) -> list[str]:
    """Names of every class in ``code``, nested ones included, in ``ast.walk`` order;
    ``[]`` if the code does not parse."""
    tree = _try_parse(code)
    if tree is None:
        return []
    return [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _alias(name: str, asname: str | None) -> str:
    return name + (f" as {asname}" if asname else "")


def import_lines_ref(code: str) -> str:
    """CodeRM's import header: one line per imported name, in ``ast.walk`` order.

    ``from`` imports print ``node.module`` as Python formats it, so relative dots are
    lost and ``from . import x`` reads ``from None import x``. ``import unittest`` if the
    code does not parse.
    """
    tree = _try_parse(code)
    if tree is None:
        return _FALLBACK_IMPORTS
    lines: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            lines.extend(f"import {_alias(a.name, a.asname)}" for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            lines.extend(
                f"from {node.module} import {_alias(a.name, a.asname)}" for a in node.names
            )
    return "\n".join(lines)


def _strip_main_tails(code: str) -> str:
    """Delete the two exact ``unittest.main()`` tails (each only where its guard appears)."""
    if "__name__ == '__main__'" in code:
        code = code.replace(_MAIN_TAIL_SINGLE, "")
    if '__name__ == "__main__"' in code:
        code = code.replace(_MAIN_TAIL_DOUBLE, "")
    return code


def _class_to_first_def(code: str) -> str:
    """CodeRM's ``remove_func`` body cut (without the import header).

    From the first ``"\\nclass"`` on (with -1 for "absent", i.e. only the last
    character); if a ``"\\ndef"`` follows, up to it, minus trailing lines containing
    ``#``, lines split by :meth:`str.splitlines` and joined by ``"\\n"``.
    """
    code = code[code.find("\nclass") :]
    if "\ndef" in code:
        lines = code[: code.find("\ndef")].splitlines()
        while lines and "#" in lines[-1]:
            lines.pop()
        if not lines:
            raise _EveryLineHasHash
        code = "\n".join(lines)
    return code


def remove_func_ref(code: str) -> str:
    """CodeRM's ``remove_func``: the import header, a newline, then the class section."""
    return import_lines_ref(code) + "\n" + _class_to_first_def(code)


def wrap_unittest_ref(code: str, class_name: str) -> str:
    """The runnable test CodeRM stores: ``code`` (trailing newlines removed), a blank
    line, and a driver that runs ``class_name``'s tests into the executor-provided
    ``output`` stream and hands the result back through ``locals_dict['result']``."""
    body = code.rstrip("\n")
    return (
        f"{body}\n\n"
        f"suite = unittest.TestLoader().loadTestsFromTestCase({class_name})\n"
        "runner = unittest.TextTestRunner(stream=output, verbosity=2)\n"
        "result = runner.run(suite)\n"
        "locals_dict['result'] = result\n"
    )


def extract_unittest_ref(text: str) -> Extracted:
    """A chat answer's unit test exactly as CodeRM's ``extract_unit_test.py`` makes it.

    1. Exactly one block (:func:`code_blocks_ref`) that parses and defines exactly one
       class anywhere in it (:func:`class_names_ref`); otherwise no test.
    2. The exact tails ``if __name__ == '__main__':\\n    unittest.main()`` and its
       double-quoted twin are deleted; lines ``from your_module import X`` (one name,
       optional comment) are emptied, their newline kept.
    3. :func:`remove_func_ref`: import header, newline, text from ``"\\nclass"`` to the
       first ``"\\ndef"`` after it, trailing ``#`` lines dropped.
    4. :func:`wrap_unittest_ref` with the one class name.
    """
    block = _single_block(text)
    if isinstance(block, Extracted):
        return block
    tree = _try_parse(block)
    if tree is None:
        return _no(ExtractionStatus.SYNTAX_ERROR, "code block does not parse (CodeRM drops it)")
    classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    if not classes:
        return _no(ExtractionStatus.NO_TEST_CLASS, "code block defines no class")
    if len(classes) > 1:
        return _no(ExtractionStatus.MULTIPLE_TEST_CLASSES, "classes: " + ", ".join(classes))
    code = _YOUR_MODULE_IMPORT.sub("", _strip_main_tails(block))
    try:
        code = remove_func_ref(code)
    except _EveryLineHasHash:
        return _no(
            ExtractionStatus.NO_TEST_CLASS,
            "every line before the first def contains '#' (CodeRM's script raises IndexError)",
        )
    return _ok(wrap_unittest_ref(code, classes[0]))


def pair_code_ref(solution: str, test: str) -> str:
    """The ``code`` of a line of CodeRM's pair file: solution, blank line, unit test."""
    return solution + "\n\n" + test

"""Turn raw completions into runnable solutions and tests (pure functions, no I/O).

Two families, following the released code of each paper rather than its prose:

* Chat completions (CodeRM, ``RUCKBReasoning/CodeRM`` ``preprocess/extract_solution.py``
  and ``preprocess/extract_unit_test.py``): code sits in a markdown fence. A solution is
  the single fenced block; a unit test is the single fenced block holding one
  ``unittest`` class, rewritten so the sandbox can run it after the solution and read the
  module-level ``result`` (see :func:`extract_chat_unittest`).
* Completion-model samples (CodeT, ``microsoft/CodeT`` ``CodeT/src/postprocess.py``,
  ``CodeT/src/_execution.py``, ``CodeT/main.py``): a solution continues the prompt and is
  cut at stop strings; test samples continue after ``assert `` and are split into single
  assertions (see :func:`extract_completion_asserts`).

Deduplication is the caller's job: equal :func:`content_hash` values mean the same code.
"""

from __future__ import annotations

import ast
import hashlib
import re
import warnings
from dataclasses import dataclass

from shared.enums import ExtractionStatus

#: Version of these extraction rules, stored with each extracted completion: bump it
#: when a rule changes, and completions extracted under the old rules are redone.
EXTRACTION_VERSION = "1"

#: CodeT's ``STOP_TOKEN`` list; a sample is cut at the earliest occurrence of any.
CODET_STOP_STRINGS: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")

#: CodeT's ``--test_case_limit`` default: the first 5 valid asserts of each sample.
DEFAULT_TEST_CASE_LIMIT = 5

_PYTHON_FENCE = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
_BARE_FENCE = re.compile(r"```\n(.*?)\n```", re.DOTALL)

# CodeRM removes only the one-name form, optionally followed by a comment; a line such
# as ``from your_module import a, b`` survives there (and fails at import), so here too.
_YOUR_MODULE_IMPORT = re.compile(r"^from\s+your_module\s+import\s+\w+(\s+#.*)?$", re.MULTILINE)

# The exact tails CodeRM deletes by string replacement before cutting.
_MAIN_TAILS: tuple[str, ...] = (
    "if __name__ == '__main__':\n    unittest.main()",
    'if __name__ == "__main__":\n    unittest.main()',
)

_DRIVER = (
    "\n\n"
    "import io\n"
    "import unittest\n"
    "\n"
    "suite = unittest.TestLoader().loadTestsFromTestCase({class_name})\n"
    "runner = unittest.TextTestRunner(stream=io.StringIO(), verbosity=2)\n"
    "result = runner.run(suite)\n"
)


@dataclass(frozen=True)
class Extracted:
    """The outcome of extracting one completion.

    ``code`` is empty unless ``status`` is OK; then it holds exactly one solution or unit
    test, or 1..limit asserts. ``detail`` says why for any other status.
    """

    status: ExtractionStatus
    code: tuple[str, ...]
    detail: str = ""


def _ok(*code: str) -> Extracted:
    return Extracted(ExtractionStatus.OK, tuple(code))


def _no(status: ExtractionStatus, detail: str) -> Extracted:
    return Extracted(status, (), detail)


def content_hash(code: str) -> str:
    """SHA-256 hex digest of ``code``, the identity used to deduplicate code per problem.

    Line endings are normalised to ``\\n`` and whitespace at the very end is dropped;
    nothing else changes (indentation and inner blank lines are significant).
    """
    normalised = code.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()


def pair_code(solution: str, test: str) -> str:
    """The module the sandbox runs for one (solution, test) pair: solution, blank line, test."""
    return solution + "\n\n" + test


# --------------------------------------------------------------------------- helpers


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _fenced_blocks(text: str) -> list[str]:
    """Bodies of fenced blocks, as CodeRM's ``extract_code`` finds them.

    Blocks opened by ```` ```python\\n```` and closed by ``\\n```` ``` ``; only if there
    is none, blocks with a bare ```` ```\\n```` opening. Non-greedy, so a block ends at
    the first closing fence.
    """
    blocks = _PYTHON_FENCE.findall(text)
    if not blocks:
        blocks = _BARE_FENCE.findall(text)
    return [str(block) for block in blocks]


def _single_block(text: str) -> str | Extracted:
    """The one fenced block of a chat completion, or the reason there is none."""
    if not text.strip():
        return _no(ExtractionStatus.EMPTY, "completion is empty")
    blocks = _fenced_blocks(_normalise_newlines(text))
    if not blocks:
        return _no(ExtractionStatus.NO_CODE_BLOCK, "no fenced code block")
    if len(blocks) > 1:
        return _no(ExtractionStatus.MULTIPLE_CODE_BLOCKS, f"{len(blocks)} fenced code blocks")
    return blocks[0]


def _parse(code: str) -> ast.Module | None:
    """``ast.parse`` that never warns (SyntaxWarning would be an error under pytest)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(code)
        except Exception:  # SyntaxError, ValueError (NUL bytes), RecursionError...
            return None


def _compiles(source: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(source, "<extracted>", "exec", dont_inherit=True)
        except Exception:
            return False
    return True


def _cut_at_stop(text: str) -> str:
    """Text before the earliest CodeT stop string (the whole text if there is none)."""
    end = len(text)
    for stop in CODET_STOP_STRINGS:
        index = text.find(stop)
        if index != -1:
            end = min(end, index)
    return text[:end]


# --------------------------------------------------------------------------- CodeRM


def extract_chat_solution(text: str) -> Extracted:
    """A chat completion's solution: the content of its single fenced block (CodeRM).

    Python-fenced blocks are looked for first, bare fences only if there is none. Zero
    or several blocks give no solution (CodeRM silently skips such responses; we record
    why). The block is returned as is, even if it does not parse: CodeRM does not check,
    and such a solution simply fails every test.
    """
    block = _single_block(text)
    if isinstance(block, Extracted):
        return block
    return _ok(block)


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    operands = [test.left, test.comparators[0]]
    names = {o.id for o in operands if isinstance(o, ast.Name)}
    constants = {o.value for o in operands if isinstance(o, ast.Constant)}
    return names == {"__name__"} and constants == {"__main__"}


def _import_lines(tree: ast.Module) -> list[str]:
    """Every import of the block, anywhere in it (CodeRM walks the whole tree), one a line."""
    lines: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            lines.extend(
                f"import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in node.names
            )
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            lines.extend(
                f"from {module} import {a.name}" + (f" as {a.asname}" if a.asname else "")
                for a in node.names
            )
    return lines


def _class_section(code: str, tree: ast.Module) -> str | None:
    """Source from the top-level class up to the first top-level ``def`` after it.

    Top-level ``if __name__ == "__main__":`` blocks inside that span are blanked. When a
    ``def`` ends the span, trailing lines containing ``#`` are dropped (CodeRM's
    ``remove_func`` drops any trailing line containing ``#``, not only comment lines).
    None if the class is not at module level.
    """
    index = next((i for i, n in enumerate(tree.body) if isinstance(n, ast.ClassDef)), None)
    if index is None:
        return None
    lines = code.split("\n")
    start = tree.body[index].lineno - 1
    end = len(lines)
    cut_at_def = False
    for node in tree.body[index + 1 :]:
        if isinstance(node, ast.FunctionDef):
            end = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            cut_at_def = True
            break
        if _is_main_guard(node):
            last = node.end_lineno if node.end_lineno is not None else node.lineno
            lines[node.lineno - 1 : last] = [""] * (last - node.lineno + 1)
    kept = lines[start:end]
    if cut_at_def:
        while len(kept) > 1 and "#" in kept[-1]:
            kept.pop()
    return "\n".join(kept).rstrip("\n")


def extract_chat_unittest(text: str) -> Extracted:
    """A chat completion's unit test, wrapped as CodeRM's ``extract_unit_test`` does.

    1. Exactly one fenced block (rules of :func:`extract_chat_solution`) that parses and
       defines exactly one class. Like CodeRM, classes are counted over the whole tree
       (``ast.walk``), so a nested class counts too.
    2. The exact tails ``if __name__ == '__main__':\\n    unittest.main()`` (either
       quote) are deleted; lines ``from your_module import X`` (one name, optional
       trailing comment) are deleted.
    3. All import statements of the block are kept, one alias a line, hoisted to the top.
    4. The text from the top-level ``class`` line (decorators dropped, as in CodeRM) up
       to the first top-level ``def`` after it is kept; trailing lines containing ``#``
       before that ``def`` are removed. Everything before the class and from that
       ``def`` on — normally the function under test, repeated by the model — is dropped.
    5. A driver is appended that loads the class's tests with
       ``unittest.TestLoader().loadTestsFromTestCase``, runs them with a
       ``TextTestRunner`` writing into an ``io.StringIO`` and binds ``result``.

    Deliberate deviations from the released code, none of which changes a verdict in
    ordinary output: (a) CodeRM slices at the text ``"\\nclass"``/``"\\ndef"``; we use the
    AST's top-level statements, so a block starting with ``class`` (no newline before
    it) keeps the class instead of keeping only its last character, and a decorated
    ``def`` is cut above its decorators instead of leaving a dangling ``@`` line; (b)
    other top-level ``if __name__ == "__main__":`` blocks inside the kept span are blanked
    too (CodeRM's executor runs the code in a namespace where ``__name__`` is not
    ``"__main__"``, so they never ran there; our sandbox may run it as ``__main__``);
    (c) if the block no longer parses after step 2 we report SYNTAX_ERROR instead of
    emitting a test that cannot run; (d) CRLF line endings are normalised first.
    """
    block = _single_block(text)
    if isinstance(block, Extracted):
        return block
    tree = _parse(block)
    if tree is None:
        return _no(ExtractionStatus.SYNTAX_ERROR, "code block does not parse")
    classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    if not classes:
        return _no(ExtractionStatus.NO_TEST_CLASS, "code block defines no class")
    if len(classes) > 1:
        return _no(ExtractionStatus.MULTIPLE_TEST_CLASSES, "classes: " + ", ".join(classes))
    code = block
    for tail in _MAIN_TAILS:
        code = code.replace(tail, "")
    code = _YOUR_MODULE_IMPORT.sub("", code)
    cleaned = _parse(code)
    if cleaned is None:
        return _no(ExtractionStatus.SYNTAX_ERROR, "code does not parse after removing the tail")
    section = _class_section(code, cleaned)
    if section is None:
        return _no(ExtractionStatus.NO_TEST_CLASS, f"class {classes[0]} is not at module level")
    imports = "\n".join(_import_lines(cleaned))
    head = imports + "\n\n" if imports else ""
    return _ok(head + section + _DRIVER.format(class_name=classes[0]))


# --------------------------------------------------------------------------- CodeT


def extract_completion_solution(prompt: str, text: str) -> Extracted:
    """A CodeT solution: ``prompt`` + the sample cut at the first stop string.

    As CodeT's ``PostProcessor.solution_extract``: the sample is cut before the earliest
    of ``\\nclass``, ``\\ndef``, ``\\n#``, ``\\nif``, ``\\nprint`` and is *not* stripped;
    its executor runs ``prompt + completion``, so the program returned is exactly that.
    CodeT keeps every sample, even an empty or non-compiling one (it just fails), so the
    status is always OK.
    """
    return _ok(prompt + _cut_at_stop(text))


def _assert_compiles(case: str) -> bool:
    """CodeT's ``_check_test_case_validation``: non-empty, mentions ``assert``, and
    compiles when indented into a ``try:`` block (the form its executor runs)."""
    if not case.strip() or "assert" not in case:
        return False
    body = case.replace("\n", "\n    ")
    return _compiles(f"try:\n    {body}\nexcept:\n    pass\n")


def extract_completion_asserts(
    text: str, entry_point: str, limit: int = DEFAULT_TEST_CASE_LIMIT
) -> Extracted:
    """CodeT test cases from one sample that continues a prompt ending in ``assert ``.

    As ``PostProcessor.test_case_extract`` plus the per-sample limit of
    ``evaluate_with_test_cases``: prefix ``assert `` to the sample, split on
    ``assert ``; keep non-blank pieces whose text (before cutting) contains the entry
    point; re-prefix ``assert `` and strip; cut each at the first stop string and strip;
    keep those that compile inside a ``try:`` block; return the first ``limit`` (the
    limit applies after filtering). Every item starts with ``assert``. CodeT then pools
    the limited lists of all samples of a problem and deduplicates them.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    name = entry_point.strip()
    pieces = [
        f"assert {part}".strip()
        for part in f"assert {text}".split("assert ")
        if name in part and part.strip()
    ]
    valid = [case for case in (_cut_at_stop(p).strip() for p in pieces) if _assert_compiles(case)]
    if not valid:
        reason = f"{len(pieces)} pieces name {name!r}, none compiles" if pieces else ""
        return _no(ExtractionStatus.NO_ASSERTS, reason or f"no assert names {name!r}")
    return _ok(*valid[:limit])


def extract_response(text: str) -> Extracted:
    """A reward request's response: its single fenced code block as a chat answer has
    it (:func:`extract_chat_solution`), or, with no fence at all, the whole text when
    it compiles as Python (a trainer may send the bare code). Anything else yields no
    code, with the reason."""
    result = extract_chat_solution(text)
    if result.status is ExtractionStatus.NO_CODE_BLOCK and text.strip() and _compiles(text):
        return _ok(text)
    return result

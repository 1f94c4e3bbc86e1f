"""Differential tests of shared/core/extraction_ref.py (CodeRM's own extraction).

Every expected string below was worked out by hand from the behaviour of CodeRM's
``preprocess/extract_solution.py`` and ``preprocess/extract_unit_test.py``: where a
response is dropped there, we expect a non-OK status; otherwise the exact text its
scripts write.
"""

from __future__ import annotations

import io
import unittest
from typing import Any

import pytest

from services.extractor.handlers import extract
from shared.core.extraction import Extracted
from shared.core.extraction_ref import (
    class_names_ref,
    code_blocks_ref,
    extract_solution_ref,
    extract_unittest_ref,
    extract_verbatim,
    import_lines_ref,
    pair_code_ref,
    remove_func_ref,
    wrap_unittest_ref,
)
from shared.db.models import Completion, Problem
from shared.enums import CompletionFormat, Role
from shared.enums import ExtractionStatus as S
from shared.enums import TestStyle as Style

F = "`" * 3

#: CodeRM's driver for a class named TestF, written out.
DRIVER = (
    "\n\n"
    "suite = unittest.TestLoader().loadTestsFromTestCase(TestF)\n"
    "runner = unittest.TextTestRunner(stream=output, verbosity=2)\n"
    "result = runner.run(suite)\n"
    "locals_dict['result'] = result\n"
)


def py(code: str) -> str:
    """A chat answer with ``code`` in one python-fenced block and prose around it."""
    return f"Here you go:\n{F}python\n{code}\n{F}\nThat is all."


def only(extracted: Extracted) -> str:
    assert extracted.status is S.OK, extracted.detail
    assert extracted.detail == ""
    assert len(extracted.code) == 1
    return extracted.code[0]


# ----------------------------------------------------------------- solutions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(py("def f(x):\n    return x + 1"), "def f(x):\n    return x + 1", id="python"),
        pytest.param(f"{F}\ndef f(x):\n    return x\n{F}", "def f(x):\n    return x", id="bare"),
        pytest.param(
            f"{F}\nprint(f(1))\n{F}\nand\n{F}python\ndef f(x):\n    return x\n{F}",
            "def f(x):\n    return x",
            id="python-fence-wins-over-bare",
        ),
        pytest.param(
            f"{F}js\nconsole.log(1)\n{F}\nThen run:\n{F}js\nf()\n{F}",
            "Then run:",
            id="bare-pattern-spans-between-two-js-blocks",
        ),
        pytest.param(py("def f(:\n    pass"), "def f(:\n    pass", id="parse-error-kept"),
        pytest.param(
            py("def f():\n    return 1   \n"), "def f():\n    return 1   \n", id="verbatim"
        ),
        pytest.param(f"{F}python\n\n{F}", "", id="empty-block-kept"),
        pytest.param(
            f"{F}python\nx = 1\r\ny = 2\n{F}", "x = 1\r\ny = 2", id="crlf-inside-lf-fences"
        ),
        pytest.param(py("s = 'Ä → 中'"), "s = 'Ä → 中'", id="non-ascii"),
    ],
)
def test_solution_kept(text: str, expected: str) -> None:
    assert only(extract_solution_ref(text)) == expected


@pytest.mark.parametrize(
    ("text", "status"),
    [
        pytest.param("def f(x):\n    return x\n", S.NO_CODE_BLOCK, id="no-block"),
        pytest.param(f"{F}py\ndef f(x):\n    return x\n{F}", S.NO_CODE_BLOCK, id="py-tag"),
        pytest.param(py("a = 1") + py("b = 2"), S.MULTIPLE_CODE_BLOCKS, id="two-blocks"),
        pytest.param(f"{F}\na\n{F}\n\n{F}\nb\n{F}", S.MULTIPLE_CODE_BLOCKS, id="two-bare"),
        pytest.param(
            py("def f(x):\n    return x").replace("\n", "\r\n"), S.NO_CODE_BLOCK, id="crlf"
        ),
        pytest.param("", S.EMPTY, id="empty"),
    ],
)
def test_solution_dropped(text: str, status: S) -> None:
    got = extract_solution_ref(text)
    assert (got.status, got.code) == (status, ())
    assert got.detail


def test_code_blocks_ref() -> None:
    assert code_blocks_ref(f"{F}python\na\n{F}\n{F}\nb\n{F}") == ["a"]
    assert code_blocks_ref(f"{F}\na\n{F}\n{F}\nb\n{F}") == ["a", "b"]
    assert code_blocks_ref(f"{F}python\na\n\n{F}") == ["a\n"]


# ----------------------------------------------------------------- unit tests

CLASS = (
    "class TestF(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(f(1), 2)"
)

UNITTEST_CASES: list[Any] = [
    pytest.param(
        py(f"import unittest\n\n{CLASS}\n"),
        "import unittest\n\n" + CLASS,
        id="python-fence",
    ),
    pytest.param(
        f"{F}\nimport unittest\n\n{CLASS}\n{F}",
        "import unittest\n\n" + CLASS,
        id="bare-fence",
    ),
    pytest.param(
        py(f"import unittest\n\n{CLASS}\n\nif __name__ == '__main__':\n    unittest.main()"),
        "import unittest\n\n" + CLASS,
        id="main-tail-single-quotes",
    ),
    pytest.param(
        py(f'import unittest\n\n{CLASS}\n\nif __name__ == "__main__":\n    unittest.main()'),
        "import unittest\n\n" + CLASS,
        id="main-tail-double-quotes",
    ),
    pytest.param(
        py(
            f"import unittest\n\n{CLASS}\n\nif __name__ == '__main__':\n"
            "    unittest.main(verbosity=2)"
        ),
        "import unittest\n\n"
        + CLASS
        + "\n\nif __name__ == '__main__':\n    unittest.main(verbosity=2)",
        id="main-tail-other-call-kept",
    ),
    pytest.param(
        py(f"import unittest\n\n{CLASS}\n\nif __name__ == '__main__':\n    unittest.main()  # go"),
        "import unittest\n\n" + CLASS + "\n\n  # go",
        id="main-tail-with-comment-leaves-the-comment",
    ),
    pytest.param(
        py(
            "import unittest\nimport math\n\n"
            f"{CLASS}\n\nif __name__ == '__main__':\n    unittest.main()\nelse:\n    pass"
        ),
        "import unittest\n\n" + CLASS + "\n\n\nelse:\n    pass",
        id="tail-removal-breaks-parse-imports-fall-back",
    ),
    pytest.param(
        py(f"import unittest\nfrom your_module import f\n\n{CLASS}"),
        "import unittest\n\n" + CLASS,
        id="your-module-one-name-removed",
    ),
    pytest.param(
        py(f"import unittest\nfrom your_module import f  # under test\n\n{CLASS}"),
        "import unittest\n\n" + CLASS,
        id="your-module-one-name-with-comment-removed",
    ),
    pytest.param(
        py(f"import unittest\nfrom your_module import a, b\n\n{CLASS}"),
        "import unittest\nfrom your_module import a\nfrom your_module import b\n\n" + CLASS,
        id="your-module-two-names-kept",
    ),
    pytest.param(
        py(
            "import unittest\n\nclass TestF(unittest.TestCase):\n    def test_one(self):\n"
            "        from your_module import f\n        self.assertEqual(f(1), 2)"
        ),
        "import unittest\nfrom your_module import f\n\nclass TestF(unittest.TestCase):\n"
        "    def test_one(self):\n        from your_module import f\n"
        "        self.assertEqual(f(1), 2)",
        id="indented-your-module-kept-and-hoisted",
    ),
    pytest.param(
        py(
            "import os\n\nclass TestF(unittest.TestCase):\n    def test_one(self):\n"
            "        import math\n        self.assertEqual(f(4), math.sqrt(4))\n\n"
            "import unittest\n"
        ),
        "import os\nimport unittest\nimport math\n\nclass TestF(unittest.TestCase):\n"
        "    def test_one(self):\n        import math\n"
        "        self.assertEqual(f(4), math.sqrt(4))\n\nimport unittest",
        id="method-import-hoisted-after-top-level-ones",
    ),
    pytest.param(
        py(
            "import unittest\nimport numpy as np\nfrom . import x\n"
            f"from .helpers import y as z\n\n{CLASS}"
        ),
        "import unittest\nimport numpy as np\nfrom None import x\nfrom helpers import y as z"
        "\n\n" + CLASS,
        id="relative-imports-from-None",
    ),
    pytest.param(
        py(CLASS),
        "\n)",
        id="starts-with-class-keeps-last-character",
    ),
    pytest.param(
        py(f"{CLASS}\n\nimport unittest"),
        "import unittest\nt",
        id="starts-with-class-then-import",
    ),
    pytest.param(
        py(
            f"import unittest\n\n{CLASS}\n\n# The function under test\n# (copied)\n"
            "def f(x):\n    return x + 1\n\nif __name__ == '__main__':\n    unittest.main()"
        ),
        "import unittest\n\n" + CLASS,
        id="function-after-class-and-comment-lines-dropped",
    ),
    pytest.param(
        py(
            "import unittest\n\nclass TestF(unittest.TestCase):\n"
            "    def test_hash(self):\n        self.assertEqual(f('#'), 1)\n"
            "    def test_last(self):\n        self.assertEqual(f('a#b'), 1)\n\n"
            "def f(s):\n    return s.count('#')"
        ),
        "import unittest\n\nclass TestF(unittest.TestCase):\n"
        "    def test_hash(self):\n        self.assertEqual(f('#'), 1)\n"
        "    def test_last(self):",
        id="hash-in-a-string-on-the-last-line-dropped",
    ),
    pytest.param(
        py(f"import unittest\n\n{CLASS}\n\n@functools.cache\ndef f(x):\n    return x + 1"),
        "import unittest\n\n" + CLASS + "\n\n@functools.cache",
        id="decorator-line-left-behind",
    ),
    pytest.param(
        py(f"import unittest\n\ndef helper():\n    return 2\n\n{CLASS}\n"),
        "import unittest\n\n" + CLASS,
        id="text-before-class-dropped",
    ),
    pytest.param(
        py(f"import unittest\nclassify = 3\n\n{CLASS}"),
        "import unittest\n\nclassify = 3\n\n" + CLASS,
        id="classify-counts-as-class",
    ),
    pytest.param(
        py(
            "import unittest\r\n\r\nclass TestF(unittest.TestCase):\r\n"
            "    def test_one(self):\r\n        self.assertEqual(f(1), 2)"
        ),
        "import unittest\n\nclass TestF(unittest.TestCase):\r\n"
        "    def test_one(self):\r\n        self.assertEqual(f(1), 2)",
        id="crlf-inside-lf-fences-kept",
    ),
]


@pytest.mark.parametrize(("text", "body"), UNITTEST_CASES)
def test_unittest_kept(text: str, body: str) -> None:
    assert only(extract_unittest_ref(text)) == body + DRIVER


@pytest.mark.parametrize(
    ("text", "status"),
    [
        pytest.param(f"import unittest\n\n{CLASS}\n", S.NO_CODE_BLOCK, id="no-block"),
        pytest.param(
            py(f"import unittest\n\n{CLASS}") + py("def f(x):\n    return x + 1"),
            S.MULTIPLE_CODE_BLOCKS,
            id="two-blocks",
        ),
        pytest.param(
            py(f"import unittest\n\n{CLASS}\n    def (:"), S.SYNTAX_ERROR, id="parse-error"
        ),
        pytest.param(py("assert f(1) == 2"), S.NO_TEST_CLASS, id="no-class"),
        pytest.param(
            py(f"import unittest\n\n{CLASS}\n\nclass TestG(unittest.TestCase):\n    pass"),
            S.MULTIPLE_TEST_CLASSES,
            id="two-classes",
        ),
        pytest.param(
            py(f"import unittest\n\n{CLASS}\n\n    class Inner:\n        pass"),
            S.MULTIPLE_TEST_CLASSES,
            id="nested-class-counts",
        ),
        pytest.param(
            py(f"import unittest\n\n{CLASS}").replace("\n", "\r\n"), S.NO_CODE_BLOCK, id="crlf"
        ),
        pytest.param("  \n", S.EMPTY, id="empty"),
    ],
)
def test_unittest_dropped(text: str, status: S) -> None:
    got = extract_unittest_ref(text)
    assert (got.status, got.code) == (status, ())
    assert got.detail


def test_helpers() -> None:
    assert class_names_ref("class A:\n    class B:\n        pass") == ["A", "B"]
    assert class_names_ref("class A(:") == []
    assert import_lines_ref("import a.b as c, d\nfrom .. import e") == (
        "import a.b as c\nimport d\nfrom None import e"
    )
    assert import_lines_ref("import a\nx = (") == "import unittest"
    assert import_lines_ref("x = 1") == ""
    assert remove_func_ref("import a\nclass T:\n    x = 1  # one\ndef f(): pass") == (
        "import a\n\nclass T:"
    )
    assert wrap_unittest_ref("x = 1\n\n\n", "TestF") == "x = 1" + DRIVER
    assert pair_code_ref("def f(): pass", "t") == "def f(): pass\n\nt"


# ----------------------------------------------------------------- verbatim code


def test_verbatim() -> None:
    test = "import unittest\r\n\nclass TestF: pass" + DRIVER + "\n\n"
    assert only(extract_verbatim(test)) == test
    assert only(extract_verbatim("def f(:")) == "def f(:"
    for blank in ("", " \n\t"):
        got = extract_verbatim(blank)
        assert (got.status, got.code) == (S.EMPTY, ())
        assert got.detail
        assert only(extract_verbatim(blank, solution=True)) == blank  # CodeRM keeps it


# ----------------------------------------------------------------- running the test


SOLUTION = "def f(x):\n    return x + 1"


@pytest.mark.parametrize(
    ("solution", "passes"), [(SOLUTION, True), ("def f(x):\n    return x", False)]
)
def test_wrapped_test_runs_in_coderm_namespace(solution: str, passes: bool) -> None:
    """The pair runs as CodeRM's executor runs it: ``output`` and ``locals_dict`` given."""
    text = py(
        f"import unittest\nfrom your_module import f\n\n{CLASS}\n\n# the function\n"
        f"{SOLUTION}\n\nif __name__ == '__main__':\n    unittest.main()"
    )
    output = io.StringIO()
    locals_dict: dict[str, Any] = {}
    namespace = {"output": output, "locals_dict": locals_dict}
    exec(pair_code_ref(solution, only(extract_unittest_ref(text))), namespace)
    result = locals_dict["result"]
    assert isinstance(result, unittest.TestResult)
    assert result.testsRun == 1
    assert result.wasSuccessful() is passes
    assert "test_one" in output.getvalue()


# ----------------------------------------------------------------- handler dispatch

PROBLEM = Problem(prompt="def f(x):\n", entry_point="f")
ANSWER = py(f"import unittest\n\n{CLASS}")


@pytest.mark.parametrize(
    ("fmt", "role", "text", "code", "style"),
    [
        (CompletionFormat.CODE, Role.SOLUTION, SOLUTION, SOLUTION, None),
        (CompletionFormat.CODE, Role.TEST, "t = 1\n", "t = 1\n", Style.UNITTEST),
        (CompletionFormat.CHAT_REF, Role.SOLUTION, py(SOLUTION), SOLUTION, None),
        (
            CompletionFormat.CHAT_REF,
            Role.TEST,
            ANSWER,
            "import unittest\n\n" + CLASS + DRIVER,
            Style.UNITTEST,
        ),
        (CompletionFormat.CHAT, Role.SOLUTION, py(SOLUTION), SOLUTION, None),
        (
            CompletionFormat.COMPLETION,
            Role.SOLUTION,
            "    return x\n",
            PROBLEM.prompt + "    return x\n",
            None,
        ),
    ],
)
def test_extract_dispatch(
    fmt: CompletionFormat, role: Role, text: str, code: str, style: Style | None
) -> None:
    completion = Completion(role=role.value, format=fmt.value, text=text)
    got, got_style = extract(completion, PROBLEM)
    assert (only(got), got_style) == (code, style)


def test_extract_dispatch_code_empty() -> None:
    got, style = extract(Completion(role="test", format="code", text=""), PROBLEM)
    assert (got.status, style) == (S.EMPTY, Style.UNITTEST)
    got, style = extract(Completion(role="solution", format="code", text=""), PROBLEM)
    assert (only(got), style) == ("", None)


def test_test_style_of_formats() -> None:
    assert CompletionFormat.COMPLETION.test_style() is Style.ASSERT
    assert {f.test_style() for f in CompletionFormat if f is not CompletionFormat.COMPLETION} == {
        Style.UNITTEST
    }

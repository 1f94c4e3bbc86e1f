"""Closed vocabularies shared by the messages, the database and the services."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a completion was sampled for."""

    SOLUTION = "solution"
    TEST = "test"


class CompletionFormat(StrEnum):
    """How a completion's text is laid out, which decides how it is extracted.

    ``completion``: a continuation of a plain prompt (CodeT style: a function body,
    or asserts after ``assert ``). ``chat``: a chat answer with markdown code blocks
    (CodeRM style, extracted by our rules). ``chat-ref``: a chat answer extracted by
    CodeRM's own scripts' rules, text for text. ``code``: the text already is the
    extracted code (a solution of CodeRM's ``sol_*.jsonl``, or a wrapped unit test of
    its ``ut_*.jsonl``), used verbatim.
    """

    COMPLETION = "completion"
    CHAT = "chat"
    CHAT_REF = "chat-ref"
    CODE = "code"

    @property
    def is_chat(self) -> bool:
        """Whether completions of this format are sampled from chat messages (``chat``,
        ``chat-ref``); ``completion`` continues a plain prompt, ``code`` is never
        sampled (it is imported)."""
        return self in (CompletionFormat.CHAT, CompletionFormat.CHAT_REF)

    def test_style(self) -> TestStyle:
        """How tests of this format run: asserts for ``completion``, a ``unittest``
        class otherwise."""
        return TestStyle.ASSERT if self is CompletionFormat.COMPLETION else TestStyle.UNITTEST


class ModelRole(StrEnum):
    """What a registered model may be used for in a run."""

    POLICY = "policy"
    UNIT_TEST = "unit_test"
    BOTH = "both"

    def serves(self, role: Role) -> bool:
        """Whether the model may sample completions of ``role``."""
        wanted = ModelRole.POLICY if role is Role.SOLUTION else ModelRole.UNIT_TEST
        return self in (wanted, ModelRole.BOTH)


class BackendName(StrEnum):
    """How a model's completions are obtained: ``vllm`` loads a checkpoint in the
    generator, ``openai`` calls an OpenAI-compatible endpoint, ``replay`` serves
    imported published generations."""

    VLLM = "vllm"
    OPENAI = "openai"
    REPLAY = "replay"


class TestStyle(StrEnum):
    """How a unit test is executed against a solution."""

    ASSERT = "assert"
    UNITTEST = "unittest"


class ExtractionStatus(StrEnum):
    """Why a completion did or did not yield code."""

    OK = "ok"
    NO_CODE_BLOCK = "no_code_block"
    MULTIPLE_CODE_BLOCKS = "multiple_code_blocks"
    SYNTAX_ERROR = "syntax_error"
    NO_TEST_CLASS = "no_test_class"
    MULTIPLE_TEST_CLASSES = "multiple_test_classes"
    NO_ASSERTS = "no_asserts"
    EMPTY = "empty"


class Outcome(StrEnum):
    """The finer result of one execution; only ``PASS`` counts as a pass."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    TIMEOUT = "timeout"
    CRASH = "crash"
    SANDBOX_ERROR = "sandbox_error"


class RunState(StrEnum):
    """Life cycle of a run."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class ProblemState(StrEnum):
    """Life cycle of one problem inside a run."""

    PENDING = "pending"
    EXTRACTED = "extracted"
    SCORED = "scored"
    EXTRACTING = "extracting"
    """Given more tests by a later round of a run with a test budget, whose tests are
    not extracted yet."""

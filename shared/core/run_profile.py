"""Run profiles: whose semantics a run follows where the published tools differ.

``strict`` (the default) is this system's own reading; ``coderm-ref`` reproduces CodeRM's
released scripts exactly where a difference can change a figure:

================  =====================================  =====================================
part              ``strict``                             ``coderm-ref``
================  =====================================  =====================================
execution         module namespace of its own; the       CodeRM's executor globals: ``unittest``,
                  test's module-level ``result`` is      ``output`` (a ``StringIO``) and
                  read                                   ``locals_dict`` injected, the result
                                                         read from ``locals_dict['result']``
test wrapping     ``TextTestRunner(stream=io.            CodeRM's ``extract_unit_test.py`` text
                  StringIO())``, module-level            (test models of format ``chat-ref``,
                  ``result``                             or imported CodeRM unit tests)
candidates        every sample counts in N; one          only samples with exactly one code
                  without code is incorrect              block (``extract_solution.py``), so
                                                         ``sol_id`` indexes those
labels            evalplus base *and* plus inputs        evalplus's ``plus_status`` alone
                                                         (``calculate_result.py``)
================  =====================================  =====================================

A run stores its profile in ``runs.config["profile"]``; its execution profile string
(the cache key of its verdicts) differs between the two, so cached results never mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TypeVar

from shared.enums import CompletionFormat

T = TypeVar("T")


class RunProfile(StrEnum):
    """Whose semantics a run follows (see the module docstring)."""

    STRICT = "strict"
    CODERM_REF = "coderm-ref"

    @property
    def reference_globals(self) -> bool:
        """Whether unittest pairs run with CodeRM's executor globals."""
        return self is RunProfile.CODERM_REF

    @property
    def keeps_codeless_samples(self) -> bool:
        """Whether a solution sample without code still counts in N (as incorrect)."""
        return self is RunProfile.STRICT

    def label(self, passed: bool, plus_passed: bool | None) -> bool:
        """A solution's correctness from its stored verdicts: the headline verdict, or
        under ``coderm-ref`` the plus inputs' alone where the benchmark has them."""
        if self is RunProfile.CODERM_REF and plus_passed is not None:
            return plus_passed
        return passed


def run_profile(config: dict[str, object]) -> RunProfile:
    """The profile a run's stored config names (runs made before profiles: ``strict``)."""
    return RunProfile(str(config.get("profile", RunProfile.STRICT.value)))


def candidate_samples(samples: Sequence[T | None], profile: RunProfile) -> list[T | None]:
    """A problem's solution samples (``None``: no code) as the profile counts them.

    ``coderm-ref`` keeps only samples with code, in sample order; a problem where no
    sample has code keeps them all (every strategy then scores 0, where CodeRM's script
    would stop with an error).
    """
    if profile.keeps_codeless_samples:
        return list(samples)
    with_code: list[T | None] = [s for s in samples if s is not None]
    return with_code if with_code else list(samples)


#: Test completion formats whose tests are wrapped as CodeRM wraps them, and so need
#: CodeRM's executor globals to run.
REFERENCE_WRAPPED = frozenset({"chat-ref", "code"})


def check_test_format(profile: RunProfile, test_format: CompletionFormat) -> None:
    """``ValueError`` unless the profile can run tests of the test model's format: tests
    wrapped as CodeRM wraps them need ``coderm-ref``'s globals, and ``coderm-ref`` needs
    them (our own wrapping binds a module-level ``result`` its executor never reads)."""
    wrapped = test_format.value in REFERENCE_WRAPPED
    if wrapped and profile is not RunProfile.CODERM_REF:
        raise ValueError(
            f"tests of format {test_format.value} are wrapped as CodeRM wraps them: "
            "run them with --profile coderm-ref"
        )
    if profile is RunProfile.CODERM_REF and test_format is CompletionFormat.CHAT:
        raise ValueError(
            "--profile coderm-ref runs tests wrapped as CodeRM wraps them: register the test "
            "model with --format chat-ref, or import CodeRM's unit tests (--format coderm-ut)"
        )

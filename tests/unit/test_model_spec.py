"""The registry's model entry, typed once for the CLI that writes it and the generator
that reads it back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from shared.core.model_spec import EngineConfig, ModelSpec


def _row(**values: Any) -> SimpleNamespace:
    """A ``models`` row as the database returns it (JSON columns as plain dicts)."""
    spec = ModelSpec(name="tiny", backend="vllm", checkpoint="/models/tiny")
    return SimpleNamespace(**{**spec.row_values(), **values})


def test_row_of_a_spec_reads_back_as_the_same_spec() -> None:
    """What the registry writes, the generator reads back equal, engine settings typed."""
    spec = ModelSpec(
        name="tiny",
        backend="vllm",
        checkpoint="/models/tiny",
        config={"engine_args": {"enforce_eager": True}},
    )
    read = ModelSpec.of_row(SimpleNamespace(**spec.row_values()))
    assert read == spec
    assert read.config.engine_args == {"enforce_eager": True}
    assert read.config.extra_body == {}


def test_rows_written_before_the_typed_config_still_read() -> None:
    """An empty or partial ``config`` column gets the defaults."""
    assert ModelSpec.of_row(_row(config={})).config == EngineConfig()
    body = {"chat_template_kwargs": {"enable_thinking": False}}
    assert ModelSpec.of_row(_row(config={"extra_body": body})).config.extra_body == body


def test_unknown_engine_setting_is_refused() -> None:
    """A misspelt key fails loudly instead of being ignored by the engine."""
    with pytest.raises(ValidationError, match="engine_arg"):
        ModelSpec.of_row(_row(config={"engine_arg": {}}))

"""A registered model's entry, typed once for the registry that writes it and the
generator that reads it back."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.enums import BackendName, CompletionFormat, ModelRole


class EngineConfig(BaseModel):
    """What an engine is built with beyond the model's columns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine_args: dict[str, Any] = Field(default_factory=dict)
    """vLLM ``LLM(...)`` keyword arguments (``vllm`` backend)."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Fields added to every request's JSON body (``openai`` backend)."""


class ModelSpec(BaseModel):
    """A model entry as the user gives it; checked per backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    backend: BackendName
    role: ModelRole = ModelRole.BOTH
    format: CompletionFormat = CompletionFormat.CHAT
    checkpoint: str | None = None
    fingerprint: str | None = None
    endpoint: str | None = None
    served_name: str | None = None
    api_key_ref: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = Field(default=None, ge=16)
    temperature: float = Field(default=0.8, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=2048, ge=1)
    config: EngineConfig = Field(default_factory=lambda: EngineConfig())

    @model_validator(mode="after")
    def _backend_needs(self) -> ModelSpec:
        if self.backend is BackendName.VLLM and not self.checkpoint:
            raise ValueError("a vllm model needs --checkpoint (a local model folder)")
        if self.backend is BackendName.OPENAI:
            url = urlparse(self.endpoint or "")
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError("an openai model needs --endpoint http(s)://host:port/v1")
            if not self.served_name:
                raise ValueError("an openai model needs --served-name (the API's model name)")
        return self

    def row_values(self) -> dict[str, Any]:
        """The column values of the ``models`` row."""
        return self.model_dump(mode="json")

    @classmethod
    def of_row(cls, row: object) -> ModelSpec:
        """The spec a registered ``models`` row was made from (its columns read by name)."""
        return cls.model_validate({name: getattr(row, name) for name in cls.model_fields})

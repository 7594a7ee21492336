"""Request bodies of the retrieval API, as OpenAI's `vector_stores.*` create/update/search params. The routes
validate a body with these (a 400 naming the field on a problem) and hand the model to the service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.retrieval.filters import Filter, parse_filter
from appliance.retrieval.models import Attributes, ChunkingStrategy, ExpiresAfter, StaticChunking

MAX_METADATA_KEYS = 16
MAX_RESULTS = 50
MAX_BATCH_FILES = 500


class AutoChunkingParam(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["auto"] = "auto"


class StaticChunkingParam(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["static"] = "static"
    static: StaticChunking


ChunkingParam = Annotated[AutoChunkingParam | StaticChunkingParam, Field(discriminator="type")]


def resolve_chunking(param: AutoChunkingParam | StaticChunkingParam | None,
                     default: ChunkingStrategy | None = None) -> ChunkingStrategy:
    """A strategy asked for, else the store's (`default`), else OpenAI's 800/400."""
    if isinstance(param, StaticChunkingParam):
        return ChunkingStrategy(static=param.static)
    if param is None and default is not None:
        return default
    return ChunkingStrategy()


def _metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys ({len(value)} given)")
    for key, item in value.items():
        if len(key) > 64 or len(item) > 512:
            raise ValueError(f"metadata {key[:64]!r}: keys are at most 64 characters, values at most 512")
    return value


def check_attributes(value: Attributes | None) -> Attributes | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} attributes ({len(value)} given)")
    for key, item in value.items():
        if len(key) > 64 or (isinstance(item, str) and len(item) > 512):
            raise ValueError(f"attribute {key[:64]!r}: keys are at most 64 characters, string values at most 512")
    return value


class CreateVectorStore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=256)
    description: str | None = Field(None, max_length=512)
    file_ids: list[str] = Field(default_factory=list, max_length=MAX_BATCH_FILES)
    chunking_strategy: ChunkingParam | None = None
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, str] | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class UpdateVectorStore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, str] | None = None

    _check_metadata = field_validator("metadata")(_metadata)


class AddFile(BaseModel):
    """`POST /v1/vector_stores/{id}/files`, and one entry of a batch's `files`."""

    model_config = ConfigDict(extra="forbid")

    file_id: str = Field(..., min_length=1, max_length=64)
    attributes: Attributes | None = None
    chunking_strategy: ChunkingParam | None = None

    _check_attributes = field_validator("attributes")(check_attributes)


class AddFileBatch(BaseModel):
    """`POST /v1/vector_stores/{id}/file_batches`: `file_ids` (sharing `attributes` and `chunking_strategy`)
    or `files` (each with its own)."""

    model_config = ConfigDict(extra="forbid")

    file_ids: list[str] = Field(default_factory=list, max_length=MAX_BATCH_FILES)
    files: list[AddFile] = Field(default_factory=list, max_length=MAX_BATCH_FILES)
    attributes: Attributes | None = None
    chunking_strategy: ChunkingParam | None = None

    _check_attributes = field_validator("attributes")(check_attributes)

    def entries(self) -> list[AddFile]:
        if self.file_ids and self.files:
            raise ValueError("give file_ids or files, not both")
        if not self.file_ids and not self.files:
            raise ValueError("no file: give file_ids or files")
        if self.files:
            return self.files
        return [AddFile(file_id=f, attributes=self.attributes, chunking_strategy=self.chunking_strategy)
                for f in self.file_ids]


class UpdateFileAttributes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attributes: Attributes | None

    _check_attributes = field_validator("attributes")(check_attributes)


class RankingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"  # none: vector similarity only
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)


class SearchRequest(BaseModel):
    """`POST /v1/vector_stores/{id}/search`. `rewrite_query` is accepted and ignored (no query rewriting)."""

    model_config = ConfigDict(extra="forbid")

    query: str | list[str]
    max_num_results: int = Field(10, ge=1, le=MAX_RESULTS)
    filters: dict[str, Any] | None = None
    ranking_options: RankingOptions = Field(default_factory=RankingOptions)
    rewrite_query: bool = False

    @field_validator("query")
    @classmethod
    def _some_text(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or not any(t.strip() for t in texts):
            raise ValueError("the query is empty")
        return value

    @field_validator("filters")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        parse_filter(value)
        return value

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else [q for q in self.query if q.strip()]

    def filter(self) -> Filter | None:
        return parse_filter(self.filters)

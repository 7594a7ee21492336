"""The objects the retrieval API returns, shaped as OpenAI's (the `openai` SDK's `types/file_object.py`,
`types/vector_store.py`, `types/vector_stores/*`, `types/vector_store_search_response.py`), so the routes return
them as they are (`model_dump(mode="json")`) and `client.files.*` / `client.vector_stores.*` parse them unchanged.

`Hit` is what the domain's search gives the gateway's `file_search` (text, score, file, attributes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

AttributeValue = str | float | bool
Attributes = dict[str, AttributeValue]
FilePurpose = Literal["assistants", "user_data"]  # the purposes retrieval accepts (file_search uses `assistants`)
StoreStatus = Literal["expired", "in_progress", "completed"]
FileStatus = Literal["in_progress", "completed", "cancelled", "failed"]
ErrorCode = Literal["server_error", "unsupported_file", "invalid_file"]

DEFAULT_CHUNK_TOKENS = 800  # OpenAI's defaults for `auto` and for a `static` strategy left out
DEFAULT_OVERLAP_TOKENS = 400


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FileObject(_Out):
    """`/v1/files` object."""

    id: str  # "file-…"
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileDeleted(_Out):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class StaticChunking(BaseModel):
    """Token counts of a static chunking strategy (OpenAI's bounds: size 100 to 4096, overlap at most half)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_chunk_size_tokens: int = Field(DEFAULT_CHUNK_TOKENS, ge=100, le=4096)
    chunk_overlap_tokens: int = Field(DEFAULT_OVERLAP_TOKENS, ge=0)

    def model_post_init(self, _context: Any) -> None:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError(f"chunk_overlap_tokens {self.chunk_overlap_tokens} is more than half of "
                             f"max_chunk_size_tokens {self.max_chunk_size_tokens}")


class ChunkingStrategy(_Out):
    """What a vector store file was chunked with (`auto` is reported as the static defaults it resolves to)."""

    type: Literal["static"] = "static"
    static: StaticChunking = Field(default_factory=StaticChunking)


class FileCounts(_Out):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    anchor: Literal["last_active_at"] = "last_active_at"
    days: int = Field(..., ge=1, le=365)


class VectorStore(_Out):
    """`/v1/vector_stores` object. `status`: `in_progress` while a file is being ingested, `expired` past
    `expires_at` (its searches are refused), else `completed`."""

    id: str  # "vs_…"
    object: Literal["vector_store"] = "vector_store"
    name: str
    created_at: int
    status: StoreStatus
    file_counts: FileCounts
    usage_bytes: int
    metadata: dict[str, str] | None = None
    expires_after: ExpiresAfter | None = None
    expires_at: int | None = None
    last_active_at: int | None = None


class VectorStoreDeleted(_Out):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: bool = True


class LastError(_Out):
    code: ErrorCode
    message: str


class VectorStoreFile(_Out):
    """`/v1/vector_stores/{id}/files` object; `id` is the file's id."""

    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    vector_store_id: str
    created_at: int
    status: FileStatus
    last_error: LastError | None = None
    usage_bytes: int = 0
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy = Field(default_factory=ChunkingStrategy)


class VectorStoreFileDeleted(_Out):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: bool = True


class VectorStoreFileBatch(_Out):
    id: str  # "vsfb_…"
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    vector_store_id: str
    created_at: int
    status: FileStatus
    file_counts: FileCounts


class FileContentPart(_Out):
    type: Literal["text"] = "text"
    text: str


class FileContentPage(_Out):
    """`GET /v1/vector_stores/{id}/files/{file_id}/content`: the file's parsed text, one part per chunk."""

    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[FileContentPart]
    has_more: bool = False
    next_page: str | None = None


class SearchResult(_Out):
    file_id: str
    filename: str
    score: float  # the chunk's cosine similarity to the query, 0 to 1
    attributes: Attributes | None = None
    content: list[FileContentPart]


class SearchPage(_Out):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


T = TypeVar("T", bound=BaseModel)


class ListPage(_Out, Generic[T]):
    """A cursor page (`limit`, `order`, `after`, `before`), as OpenAI's list endpoints answer."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, for `file_search` and the search page."""

    vector_store_id: str
    file_id: str
    filename: str
    score: float  # cosine similarity to the query, clamped to 0..1
    text: str
    attributes: Attributes = field(default_factory=dict)
    chunk_id: str = ""
    seq: int = 0  # the chunk's number in its file

    def result(self) -> SearchResult:
        return SearchResult(file_id=self.file_id, filename=self.filename, score=round(self.score, 6),
                            attributes=self.attributes or None, content=[FileContentPart(text=self.text)])

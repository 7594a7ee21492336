"""What an import found, as pydantic models: stored as report.json, in the SQLite row, and sent over the API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from appliance.datasets.semantic import SemanticSummary

# Enough for an operator to see the pattern; the true totals are kept alongside.
MAX_LISTED = 200


class RecordError(BaseModel):
    """One rejected record: where it is in the source file and what is wrong with it."""

    unit: str  # "line" (JSONL) or "row" (CSV and Parquet data rows)
    line: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.message}"


class DuplicateNote(BaseModel):
    """A record dropped because an earlier one (kept) has the same or nearly the same text, or (semantic) the same
    meaning in other words."""

    unit: str
    line: int
    duplicate_of: int
    kind: str  # "exact", "near" (MinHash) or "semantic" (embeddings)
    jaccard: float = 1.0  # of the two texts' word shingles (for a semantic pair: what MinHash saw)
    similarity: float | None = None  # semantic: the cosine of the two records' embeddings

    def __str__(self) -> str:
        how = {"exact": "exact duplicate",
               "semantic": f"semantic duplicate (cosine {self.similarity or 0:.3f}, Jaccard {self.jaccard:.2f})"
               }.get(self.kind, f"near duplicate (Jaccard {self.jaccard:.2f})")
        return f"{self.unit} {self.line}: {how} of {self.unit} {self.duplicate_of}"


class TokenStats(BaseModel):
    p50: int
    p90: int
    p99: int
    max: int


class ImportReport(BaseModel):
    format: str
    kind: str = "sft"  # the record kind (datasets.kinds): "sft", "preference" or "kto"; older reports are SFT
    numbering: str  # how the line/row numbers in errors count, e.g. "JSONL lines, 1-based"
    records_read: int = 0
    records_valid: int = 0
    records_invalid: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    semantic_duplicates: int = 0
    duplicates_removed: int = 0
    error_count: int = 0  # the true count; `errors` holds at most MAX_LISTED of them
    errors: list[RecordError] = Field(default_factory=list)
    duplicates: list[DuplicateNote] = Field(default_factory=list)
    shapes: dict[str, int] = Field(default_factory=dict)  # e.g. {"alpaca": 120, "messages": 3}
    token_counter: str = ""
    max_seq_length: int | None = None
    token_lengths: TokenStats | None = None  # over the records kept
    train_count: int = 0
    eval_count: int = 0
    eval_fraction: float = 0.1
    seed: int = 0
    near_dup_threshold: float = 0.9
    semantic_dedup: SemanticSummary | None = None  # when the import asked for it (the pairs are in duplicates)

    def add_error(self, error: RecordError) -> None:
        self.error_count += 1
        self.records_invalid += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(error)

    def add_duplicate(self, note: DuplicateNote) -> None:
        self.duplicates_removed += 1
        if note.kind == "exact":
            self.exact_duplicates += 1
            count = self.exact_duplicates
        elif note.kind == "semantic":
            self.semantic_duplicates += 1
            count = self.semantic_duplicates
        else:
            self.near_duplicates += 1
            count = self.near_duplicates
        if count <= MAX_LISTED:  # per kind: the semantic pairs, found last, are listed too
            self.duplicates.append(note)

    def first_errors(self, count: int = 5) -> str:
        """The first few defects on one line, for an error message."""
        listed = "; ".join(str(e) for e in self.errors[:count])
        more = self.error_count - min(count, len(self.errors))
        return listed + (f"; and {more} more" if more > 0 else "")

"""Training datasets: import JSONL/CSV/Parquet files, validate, deduplicate, split, store immutable versions."""

from appliance.datasets.errors import DatasetError, DatasetInvalid, DatasetNotFound
from appliance.datasets.report import DuplicateNote, ImportReport, RecordError, TokenStats
from appliance.datasets.split import content_id
from appliance.datasets.store import DatasetRecord, DatasetStore
from appliance.datasets.validate import ChatTokenizer

__all__ = [
    "ChatTokenizer",
    "DatasetError",
    "DatasetInvalid",
    "DatasetNotFound",
    "DatasetRecord",
    "DatasetStore",
    "DuplicateNote",
    "ImportReport",
    "RecordError",
    "TokenStats",
    "content_id",
]

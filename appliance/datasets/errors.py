"""Errors of dataset import: refusals the operator reads, and the per-record defect used inside validation."""

from __future__ import annotations

from appliance.errors import ApplianceError, StorageFull


class DatasetError(ApplianceError):
    """An import was refused or a dataset cannot be found; the message is for the operator."""


class DatasetStorageFull(StorageFull, DatasetError):
    """No space left in the datasets folder or the store: nothing was imported. The one 507 (`StorageFull`),
    also a DatasetError so that whoever reports a dataset import's refusals reports this one too."""


class DatasetNotFound(DatasetError):
    status, code = 404, "dataset_not_found"


class DatasetInvalid(DatasetError):
    """Strict mode met a defect, or no record at all was usable."""

    code = "dataset_invalid"


class RecordDefect(ApplianceError):
    """One record is unusable; the message names the defect (the caller adds the line or row)."""

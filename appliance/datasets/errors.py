"""Errors of dataset import: refusals the operator reads, and the per-record defect used inside validation."""

from __future__ import annotations

from appliance.errors import ApplianceError


class DatasetError(ApplianceError):
    """An import was refused or a dataset cannot be found; the message is for the operator."""


class DatasetStorageFull(DatasetError):
    """No space left in the datasets folder or the store: nothing was imported."""

    status, code = 507, "insufficient_storage"


class DatasetNotFound(DatasetError):
    status, code = 404, "dataset_not_found"


class DatasetInvalid(DatasetError):
    """Strict mode met a defect, or no record at all was usable."""

    code = "dataset_invalid"


class RecordDefect(ApplianceError):
    """One record is unusable; the message names the defect (the caller adds the line or row)."""

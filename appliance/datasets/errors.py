"""Errors of dataset import: refusals the operator reads, and the per-record defect used inside validation."""

from __future__ import annotations


class DatasetError(Exception):
    """An import was refused or a dataset cannot be found; the message is for the operator."""


class DatasetNotFound(DatasetError):
    pass


class DatasetInvalid(DatasetError):
    """Strict mode met a defect, or no record at all was usable."""


class RecordDefect(Exception):
    """One record is unusable; the message names the defect (the caller adds the line or row)."""

"""Retrieval's refusals, each an `ApplianceError` with its HTTP status, OpenAI-shaped by the web layer."""

from __future__ import annotations

from appliance.errors import ApplianceError, BadRequest, Conflict, NotFound


class UnsupportedFileType(BadRequest):
    """400: the upload is not one of the parsed types (named in the message)."""

    code = "unsupported_file"


class InvalidFile(BadRequest):
    """400: the content does not match its type (a .pdf that is no PDF, text that is not UTF-8)."""

    code = "invalid_file"


class FileTooLarge(ApplianceError):
    status, code = 413, "file_too_large"


class FileNotFound(NotFound):
    code = "file_not_found"


class VectorStoreNotFound(NotFound):
    code = "vector_store_not_found"


class VectorStoreExpired(Conflict):
    code = "vector_store_expired"


class BackendUnavailable(ApplianceError):
    """503: the store's vector backend cannot be reached or is not configured on this daemon."""

    status, code = 503, "retrieval_backend_unavailable"

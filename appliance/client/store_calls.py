"""The catalogue's calls for retrieval: files (`/v1/files`) and vector stores (`/v1/vector_stores`, their file
batches and search), the routes apps reach with the `openai` SDK, here for the CLI and the TUI. `StoreCalls`
extends `trial_calls.TrialCalls`; both clients serve it, so each call is still written once for the sync and the
async transport. The daemon's answers are OpenAI's objects, as JSON."""

from __future__ import annotations

from typing import Any, Final

import httpx

from appliance.client.calls import Json, R, S, _q
from appliance.client.trial_calls import TrialCalls

# An upload is up to the daemon's retrieval_max_file_bytes (64 MiB by default): no read timeout while it goes.
UPLOAD_TIMEOUT: Final = httpx.Timeout(15.0, write=None, read=120.0)
LIST_LIMIT: Final = 100


def without_none(body: dict[str, Any]) -> Json:
    return {k: v for k, v in body.items() if v is not None}


class StoreCalls(TrialCalls[R, S]):
    # -- /v1/files -------------------------------------------------------------------------------------
    def upload_file(self, filename: str, data: bytes, purpose: str = "assistants") -> R:
        """Upload a file for vector stores (txt, md, html, pdf, docx): the FileObject (`id`: file-…)."""
        return self._call("POST", "/v1/files", form=({"file": (filename, data)}, {"purpose": purpose}),
                          timeout=UPLOAD_TIMEOUT)

    def uploaded_files(self) -> R:
        """The uploaded files, newest first (a list page: `data`)."""
        return self._call("GET", "/v1/files")

    def delete_file(self, file_id: str) -> R:
        """The file leaves every store it is in, then goes."""
        return self._call("DELETE", f"/v1/files/{_q(file_id)}")

    # -- /v1/vector_stores -----------------------------------------------------------------------------
    def create_store(self, name: str, file_ids: list[str] | None = None, metadata: dict[str, str] | None = None,
                     chunking: Json | None = None) -> R:
        """A vector store (`id`: vs_…); `file_ids` are ingested by a job at once; `chunking`: a chunking
        strategy (`{"type": "static", "static": {...}}`)."""
        body = without_none({"name": name, "file_ids": file_ids, "metadata": metadata, "chunking_strategy": chunking})
        return self._call("POST", "/v1/vector_stores", json=body)

    def stores(self, limit: int = LIST_LIMIT) -> R:
        """The vector stores, newest first (a list page: `data`, `has_more`)."""
        return self._call("GET", "/v1/vector_stores", params={"limit": limit})

    def store(self, store_id: str) -> R:
        """One store: status, file counts, usage."""
        return self._call("GET", f"/v1/vector_stores/{_q(store_id)}")

    def delete_store(self, store_id: str) -> R:
        """The store and its chunks (its files stay uploaded)."""
        return self._call("DELETE", f"/v1/vector_stores/{_q(store_id)}")

    def store_files(self, store_id: str, limit: int = LIST_LIMIT) -> R:
        """The store's files with their status and last error (a list page)."""
        return self._call("GET", f"/v1/vector_stores/{_q(store_id)}/files", params={"limit": limit})

    def add_file_batch(self, store_id: str, file_ids: list[str], attributes: Json | None = None) -> R:
        """Uploaded files into the store, ingested by one job: the batch (`id`: vsfb_…, `status`, counts)."""
        body = without_none({"file_ids": file_ids, "attributes": attributes})
        return self._call("POST", f"/v1/vector_stores/{_q(store_id)}/file_batches", json=body)

    def file_batch(self, store_id: str, batch_id: str) -> R:
        return self._call("GET", f"/v1/vector_stores/{_q(store_id)}/file_batches/{_q(batch_id)}")

    def cancel_file_batch(self, store_id: str, batch_id: str) -> R:
        return self._call("POST", f"/v1/vector_stores/{_q(store_id)}/file_batches/{_q(batch_id)}/cancel")

    def search_store(self, store_id: str, query: str, max_results: int = 10, filters: Json | None = None,
                     score_threshold: float | None = None) -> R:
        """The store's best chunks for `query` (a search page: `data` of file_id, filename, score, content)."""
        ranking = {"score_threshold": score_threshold} if score_threshold is not None else None
        body = without_none({"query": query, "max_num_results": max_results, "filters": filters,
                             "ranking_options": ranking})
        return self._call("POST", f"/v1/vector_stores/{_q(store_id)}/search", json=body)

"""What `/v1/responses` keeps and reaches beyond one request: finished turns for `previous_response_id`, and
the retrieval service `file_search` asks."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from appliance.errors import NotFound

Json = dict[str, Any]


class Retriever(Protocol):
    """Search over the appliance's vector stores (`appliance.retrieval.service.RetrievalService.search`); hits
    best first, each with file_id, filename, score, text and attributes. Raises its `ApplianceError`s (an unknown
    store 404, a bad filter 400, the embeddings deployment down 503)."""

    async def search(self, store_ids: list[str], query: str, max_num_results: int = 10, filters: object = None,
                     score_threshold: float = 0.0, ranker: str = "auto") -> list[Any]: ...


class TurnStore:
    """Finished responses' conversations, for `previous_response_id`: per key, for `ttl_s`, at most `size`."""

    def __init__(self, ttl_s: float = 3600.0, size: int = 2000) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._turns: OrderedDict[str, tuple[str, list[Json], float]] = OrderedDict()

    def keep(self, response_id: str, key_id: str, messages: list[Json]) -> None:
        self._turns[response_id] = (key_id, messages, time.monotonic() + self.ttl_s)
        while len(self._turns) > self.size:
            self._turns.popitem(last=False)

    def get(self, response_id: str, key_id: str) -> list[Json]:
        kept = self._turns.get(response_id)
        if kept is None or kept[0] != key_id or kept[2] < time.monotonic():
            raise NotFound(f"no response {response_id!r} to continue (unknown, another key's, or older than "
                           f"{self.ttl_s:.0f} s)", param="previous_response_id", code="previous_response_not_found")
        return list(kept[1])

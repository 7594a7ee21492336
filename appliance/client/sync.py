"""The named calls over sync httpx, for the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from appliance.client.calls import STREAM_TIMEOUT, Form, Json, Reader, read_json
from appliance.client.errors import check, transport_error
from appliance.client.sse import data_events
from appliance.client.store_calls import StoreCalls
from appliance.client.transport import decode, headers, options


class DaemonClient(StoreCalls[Any, Iterator[Json]]):
    """Blocking calls; every failure is an ApiError (DaemonUnreachable when nothing answers)."""

    def __init__(self, base_url: str, token: str, transport: httpx.BaseTransport | None = None,
                 timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout,
                                  headers=headers(token))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, params: Json | None = None, json: Any = None,
              timeout: float | httpx.Timeout | None = None, read: Reader = read_json, form: Form | None = None) -> Any:
        try:
            response = self._http.request(method, path, **options(params, json, timeout, form))
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.base_url, method, path) from exc
        return decode(method, path, response, read)

    def _stream(self, method: str, path: str, *, json: Any = None) -> Iterator[Json]:
        try:
            with self._http.stream(method, path, json=json, timeout=STREAM_TIMEOUT) as response:
                if response.status_code >= 400:
                    response.read()
                    check(method, path, response)
                yield from data_events(response.iter_lines())
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.base_url, method, path, streaming=True) from exc

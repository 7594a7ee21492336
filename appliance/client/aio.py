"""The named calls over async httpx, for the TUI. The transport is a seam: tests replay recorded responses
through it (`httpx.MockTransport`) instead of faking the screens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx

from appliance.client.calls import STREAM_TIMEOUT, Form, Json, Reader, read_json
from appliance.client.errors import check, transport_error
from appliance.client.sse import END, parse_data_line
from appliance.client.store_calls import StoreCalls
from appliance.client.transport import decode, headers, options


class AsyncDaemonClient(StoreCalls[Awaitable[Any], AsyncIterator[Json]]):
    """Awaitable calls; every failure is an ApiError (DaemonUnreachable when nothing answers)."""

    def __init__(self, base_url: str, token: str, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout,
                                       headers=headers(token))

    async def aclose(self) -> None:
        await self._http.aclose()

    def _call(self, method: str, path: str, *, params: Json | None = None, json: Any = None,
              timeout: float | httpx.Timeout | None = None, read: Reader = read_json,
              form: Form | None = None) -> Awaitable[Any]:
        return self._request(method, path, options(params, json, timeout, form), read)

    async def _request(self, method: str, path: str, kwargs: dict[str, Any], read: Reader) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.base_url, method, path) from exc
        return decode(method, path, response, read)

    async def _stream(self, method: str, path: str, *, json: Any = None) -> AsyncIterator[Json]:
        try:
            async with self._http.stream(method, path, json=json, timeout=STREAM_TIMEOUT) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check(method, path, response)
                async for line in response.aiter_lines():
                    if (data := parse_data_line(line)) is END:
                        return  # the sync client's `data_events`, line by line
                    if isinstance(data, dict):
                        yield data
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.base_url, method, path, streaming=True) from exc

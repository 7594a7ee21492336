"""API key management (admin scope). The token is returned once, at creation."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from appliance.errors import BadRequest
from appliance.security.keys import ApiKey, CreatedKey, Scope, create_key, list_keys, revoke_key, set_quota
from appliance.security.usage import DAY_S, usage_summary
from appliance.web.auth import require
from appliance.web.state import appliance_of, usage_of

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])
usage_router = APIRouter(prefix="/api/v1")


# SQLite keeps an INTEGER in 64 bits: a larger quota must be a 422, not an OverflowError at the insert.
MAX_QUOTA = 2**63 - 1


class CreateKeyRequest(BaseModel):
    name: str
    scope: Scope = "inference"
    daily_token_quota: int | None = Field(None, ge=1, le=MAX_QUOTA,
                                          description="Tokens (prompt + completion) per UTC day")


class QuotaRequest(BaseModel):
    daily_token_quota: int | None = Field(..., ge=1, le=MAX_QUOTA,
                                          description="Tokens per UTC day; null lifts the quota")


class UsageRow(BaseModel):
    key: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class UsageReport(BaseModel):
    since: float
    rows: list[UsageRow]
    today: dict[str, dict[str, int | None]]  # per active key: tokens used today (UTC) and its quota


def _since(value: str | None) -> float:
    """Unix seconds or an ISO 8601 date/time; default: the start of today (UTC)."""
    if value is None:
        return float(int(time.time()) // DAY_S * DAY_S)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise BadRequest(f"since: {value!r} is neither Unix seconds nor an ISO 8601 date", param="since",
                         code="invalid_parameter") from None


@router.get("", response_model=list[ApiKey])
async def keys(request: Request, _: ApiKey = Depends(require("admin"))) -> list[ApiKey]:
    return list_keys(appliance_of(request).store)


@router.post("", response_model=CreatedKey, status_code=201)
async def create(body: CreateKeyRequest, request: Request, who: ApiKey = Depends(require("admin"))) -> CreatedKey:
    appliance = appliance_of(request)
    created = create_key(appliance.store, body.name, body.scope, body.daily_token_quota)
    appliance.store.audit(who.name, "key.create", body.name, {"scope": body.scope,
                                                              "daily_token_quota": body.daily_token_quota})
    return created


@router.put("/{name}/quota", response_model=ApiKey)
async def quota(name: str, body: QuotaRequest, request: Request, who: ApiKey = Depends(require("admin"))) -> ApiKey:
    """Set or lift (null) a key's daily token quota; over it, its inference requests get 429 until UTC midnight."""
    appliance = appliance_of(request)
    key = set_quota(appliance.store, name, body.daily_token_quota)
    appliance.store.audit(who.name, "key.quota", name, {"daily_token_quota": body.daily_token_quota})
    return key


@usage_router.get("/usage", response_model=UsageReport, tags=["keys"])
async def usage(request: Request, since: str | None = Query(None, description="Unix seconds or ISO 8601"),
                key: str | None = None, model: str | None = None,
                _: ApiKey = Depends(require("admin"))) -> UsageReport:
    """Requests and tokens per key and model since `since` (hourly resolution), and today's use per key."""
    meter = usage_of(request)
    start = _since(since)
    today = {k.name: {"tokens": meter.used_today(k.id), "quota": k.daily_token_quota}
             for k in list_keys(appliance_of(request).store) if k.revoked_at is None}
    rows = [UsageRow.model_validate(r) for r in usage_summary(meter.store, start, key, model)]
    return UsageReport(since=start, rows=rows, today=today)


@router.delete("/{name}", response_model=ApiKey)
async def revoke(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> ApiKey:
    appliance = appliance_of(request)
    revoked = revoke_key(appliance.store, name)
    appliance.store.audit(who.name, "key.revoke", revoked.name)
    return revoked

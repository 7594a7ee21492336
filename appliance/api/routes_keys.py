"""API key management (admin scope). The token is returned once, at creation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from appliance.security.keys import ApiKey, CreatedKey, Scope, create_key, list_keys, revoke_key
from appliance.web.auth import require
from appliance.web.state import appliance_of

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


class CreateKeyRequest(BaseModel):
    name: str
    scope: Scope = "inference"


@router.get("", response_model=list[ApiKey])
async def keys(request: Request, _: ApiKey = Depends(require("admin"))) -> list[ApiKey]:
    return list_keys(appliance_of(request).store)


@router.post("", response_model=CreatedKey, status_code=201)
async def create(body: CreateKeyRequest, request: Request, who: ApiKey = Depends(require("admin"))) -> CreatedKey:
    appliance = appliance_of(request)
    created = create_key(appliance.store, body.name, body.scope)
    appliance.store.audit(who.name, "key.create", body.name, {"scope": body.scope})
    return created


@router.delete("/{name}", response_model=ApiKey)
async def revoke(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> ApiKey:
    appliance = appliance_of(request)
    revoked = revoke_key(appliance.store, name)
    appliance.store.audit(who.name, "key.revoke", revoked.name)
    return revoked

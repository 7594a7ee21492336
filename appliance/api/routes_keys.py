"""API key management (admin scope). The token is returned once, at creation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from appliance.api.auth import require
from appliance.api.errors import Conflict, NotFound
from appliance.core import Appliance
from appliance.security.keys import ApiKey, CreatedKey, KeyError_, Scope, create_key, list_keys, revoke_key

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


class CreateKeyRequest(BaseModel):
    name: str
    scope: Scope = "inference"


@router.get("", response_model=list[ApiKey])
async def keys(request: Request, _: ApiKey = Depends(require("admin"))) -> list[ApiKey]:
    appliance: Appliance = request.app.state.appliance
    return list_keys(appliance.store)


@router.post("", response_model=CreatedKey, status_code=201)
async def create(body: CreateKeyRequest, request: Request, who: ApiKey = Depends(require("admin"))) -> CreatedKey:
    appliance: Appliance = request.app.state.appliance
    try:
        created = create_key(appliance.store, body.name, body.scope)
    except KeyError_ as exc:
        raise Conflict(str(exc), param="name") from exc
    appliance.store.audit(who.name, "key.create", body.name, {"scope": body.scope})
    return created


@router.delete("/{name}", response_model=ApiKey)
async def revoke(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> ApiKey:
    appliance: Appliance = request.app.state.appliance
    try:
        revoked = revoke_key(appliance.store, name)
    except KeyError_ as exc:
        raise NotFound(str(exc)) from exc
    appliance.store.audit(who.name, "key.revoke", revoked.name)
    return revoked

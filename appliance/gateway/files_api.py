"""`/v1/files`, as OpenAI's: upload (multipart: `file` and `purpose`), list, get, content, delete. Files are what
vector stores are made of (`/v1/vector_stores`). An upload is bounded twice: the request guard cuts a body over
`retrieval_max_file_bytes` plus the multipart framing while it arrives, and the file part itself is counted here
as it is read (413 either way, as JSON); its type is checked before anything is written (`retrieval.files`)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from appliance.errors import BadRequest
from appliance.gateway.retrieval_http import AFTER, INFERENCE, ORDER, Order, answer, off_loop
from appliance.retrieval.errors import FileTooLarge
from appliance.retrieval.files import PURPOSES
from appliance.web.state import retrieval_of

router = APIRouter(tags=["openai"])
READ_CHUNK = 1024 * 1024
MULTIPART_HELP = "send multipart/form-data with a `file` part and a `purpose` field (assistants or user_data)"


async def _read_bounded(upload: UploadFile, limit: int) -> bytes:
    """The part's bytes, refused as soon as they pass `limit`."""
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(f"{upload.filename}: over the limit of {limit} bytes (retrieval_max_file_bytes)",
                               param="file")
        parts.append(chunk)
    return b"".join(parts)


async def _upload(request: Request) -> tuple[UploadFile, str]:
    """The form's file part and purpose (Starlette spools a large part to a temporary file)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise BadRequest(f"not a multipart upload: {MULTIPART_HELP}", param="file", code="invalid_request")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except (HTTPException, ValueError, AssertionError) as exc:
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        raise BadRequest(f"the multipart body cannot be read ({detail}): {MULTIPART_HELP}", param="file",
                         code="invalid_request") from exc
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise BadRequest(f"no file part: {MULTIPART_HELP}", param="file")
    if not isinstance(purpose, str) or not purpose:
        raise BadRequest(f"purpose is required: one of {', '.join(PURPOSES)}", param="purpose")
    return upload, purpose


@router.post("/v1/files", dependencies=INFERENCE)
async def create_file(request: Request) -> JSONResponse:
    """Upload a file (txt, md, html, pdf, docx) for vector stores. 413 over `retrieval_max_file_bytes`; 400 for
    an unsupported type (`unsupported_file`, naming the ones taken) or content that does not match its name
    (`invalid_file`)."""
    service = retrieval_of(request)
    upload, purpose = await _upload(request)
    try:
        data = await _read_bounded(upload, service.files.max_bytes)
    finally:
        await request.close()
    return answer(await off_loop(service.create_file, upload.filename or "", data, purpose))


@router.get("/v1/files", dependencies=INFERENCE)
async def list_files(request: Request, purpose: str | None = Query(None, max_length=32),
                     limit: int = Query(10000, ge=1, le=10000), order: Order = ORDER,
                     after: str | None = AFTER) -> JSONResponse:
    """The uploaded files, newest first unless `order=asc`."""
    service = retrieval_of(request)
    return answer(await off_loop(service.list_files, purpose, limit, order, after))


@router.get("/v1/files/{file_id}", dependencies=INFERENCE)
async def get_file(file_id: str, request: Request) -> JSONResponse:
    return answer(await off_loop(retrieval_of(request).get_file, file_id))


@router.get("/v1/files/{file_id}/content", dependencies=INFERENCE)
async def file_content(file_id: str, request: Request) -> Response:
    """The bytes as uploaded, with their media type."""
    data, media_type = await off_loop(retrieval_of(request).file_content, file_id)
    return Response(data, media_type=media_type)


@router.delete("/v1/files/{file_id}", dependencies=INFERENCE)
async def delete_file(file_id: str, request: Request) -> JSONResponse:
    """The file leaves every vector store it is in (its chunks too), then goes."""
    return answer(await off_loop(retrieval_of(request).delete_file, file_id))

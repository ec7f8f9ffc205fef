"""Asynchronous jobs: submit (202 + handle), poll, fetch the result, cancel."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from faceflow.errors import NotFound, NotReady
from faceflow.jobs.handles import is_handle
from faceflow.jobs.operations import JobOperation, prepare
from faceflow.jobs.records import JobRecord, JobStatus
from faceflow.jobs.runner import JobRunner
from faceflow.service.guard import guard
from faceflow.service.schemas import (
    ErrorBody,
    FaceReportOut,
    image_request_body,
)
from faceflow.service.state import Services, services_of
from faceflow.service.upload import read_image

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(guard)])


class JobErrorOut(BaseModel):
    code: str = Field(description="the same stable code the sync endpoint would answer")
    message: str


class JobOut(BaseModel):
    handle: str = Field(description="random, unguessable; visible only to the submitting API key")
    operation: JobOperation
    status: JobStatus
    created_at: str = Field(description="ISO 8601, UTC")
    enqueued_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    attempts: int = Field(description="attempts started; a retry after a crash adds one")
    from_cache: bool = Field(description="finished at submission from the result cache")
    media_type: str | None = Field(None, description="the result's media type once finished")
    status_url: str
    result_url: str
    result: FaceReportOut | None = Field(
        None, description="detect/analyze: the JSON result, once finished"
    )
    error: JobErrorOut | None = None


_ERRORS = {
    400: "unknown operation or invalid option, empty body or missing field",
    401: "an API key is required",
    403: "the API key is not valid",
    404: "no such job: unknown, expired, or created by another API key",
    409: "the job is not in a state that allows this (e.g. cancel after it started)",
    413: "upload too large",
    415: "not a JPEG, PNG, WebP or GIF",
    422: "the job failed on its input (e.g. undecodable image, no face)",
    429: "rate limit exceeded (see Retry-After)",
    503: "job queue full or unavailable, or the service is starting (see Retry-After)",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _ERRORS[s]} for s in statuses}


Handle = Annotated[str, Path(description="the handle POST /v1/jobs returned")]
OperationQuery = Annotated[
    JobOperation,
    Query(description="what to do with the image"),
]


def _runner(services: Services) -> JobRunner:
    if services.jobs is None:
        raise NotReady("the job runner is starting", retry_after_s=1)
    return services.jobs


def _checked(handle: str) -> str:
    if not is_handle(handle):
        raise NotFound("no such job (unknown, expired or not yours)")
    return handle


def _job_body(request: Request, view: JobRecord, result: bytes | None = None) -> bytes:
    body = view.to_json()
    status_url = str(request.url_for("job_status", handle=view.handle))
    body["status_url"] = status_url
    body["result_url"] = str(request.url_for("job_result", handle=view.handle))
    encoded = json.dumps(body, separators=(",", ":")).encode()
    if result is None:
        return encoded
    # A JSON result is spliced in as it is stored, without parsing it again.
    return encoded[:-1] + b',"result":' + result + b"}"


@router.post(
    "",
    status_code=202,
    summary="Submit a job: 202 with a handle; identical work is done once",
    response_model=JobOut,
    responses={**_errors(400, 401, 403, 413, 429, 503)},
    openapi_extra=image_request_body(),
)
async def submit_job(
    request: Request,
    operation: OperationQuery,
    threshold: Annotated[
        float | None, Query(ge=0.0, le=1.0, description="face ops: minimum face score")
    ] = None,
    max_faces: Annotated[int | None, Query(ge=1, le=1000, description="face ops")] = None,
    min_face_px: Annotated[int | None, Query(ge=0, le=10_000, description="face ops")] = None,
    attributes: Annotated[
        str | None, Query(description="analyze/annotate: age,gender or none")
    ] = None,
    format: Annotated[str | None, Query(description="annotate: jpeg or png")] = None,
) -> Response:
    """Options are the query options of the matching sync endpoint (`/v1/analyze`, ...;
    id-photo: those of `/v1/id-photo` except `sheet`; id-photo-sheet: those of
    `/v1/id-photo/sheet`); every option in the query string is checked against that operation's
    options. The result, and its cache entry, are the sync
    endpoint's."""
    services = services_of(request)
    runner = _runner(services)
    upload = await read_image(request, services.settings.limits.max_upload_bytes)
    options = {k: v for k, v in request.query_params.items() if k != "operation"}
    submission = prepare(operation.value, upload.data, options, services.settings)
    view = await runner.submit(submission, request.state.api_key)
    body = _job_body(request, view)
    return Response(
        body,
        status_code=202,
        media_type="application/json",
        headers={"Location": str(request.url_for("job_status", handle=view.handle))},
    )


@router.get(
    "/{handle}",
    name="job_status",
    summary="A job's status: queued, started, finished, failed or canceled",
    response_model=JobOut,
    responses={**_errors(401, 403, 404, 429, 503)},
)
async def job_status(request: Request, handle: Handle) -> Response:
    """With the JSON result inline once a detect/analyze job is finished; image results are at
    `result_url`. A failed job carries the error code the sync endpoint would have answered."""
    services = services_of(request)
    runner = _runner(services)
    handle = _checked(handle)
    view = await runner.status(handle, request.state.api_key)
    inline = None
    if view.status is JobStatus.FINISHED and view.media_type == "application/json":
        view, entry = await runner.result(handle, request.state.api_key)
        inline = entry.body
    return Response(_job_body(request, view, inline), media_type="application/json")


@router.get(
    "/{handle}/result",
    name="job_result",
    summary="A finished job's result, exactly as the sync endpoint answers it",
    response_class=Response,
    responses={
        200: {
            "description": "the result: JSON (detect/analyze) or an image (annotate, id-photo)",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/FaceReportOut"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **_errors(401, 403, 404, 409, 422, 429, 503),
    },
)
async def job_result(request: Request, handle: Handle) -> Response:
    """409 while the job is queued or running; a failed job answers its error (e.g. 422)."""
    services = services_of(request)
    runner = _runner(services)
    view, entry = await runner.result(_checked(handle), request.state.api_key)
    headers = {"X-Job-Status": view.status.value}
    count = entry.meta.get("face_count")
    if isinstance(count, int):
        headers["X-Face-Count"] = str(count)
    return Response(entry.body, media_type=entry.media_type, headers=headers)


@router.delete(
    "/{handle}",
    summary="Cancel a queued job",
    response_model=JobOut,
    responses={**_errors(401, 403, 404, 409, 429, 503)},
)
async def cancel_job(request: Request, handle: Handle) -> Response:
    """Only a queued job can be canceled (409 once it started). Identical work submitted by
    others under other handles keeps running for them."""
    services = services_of(request)
    runner = _runner(services)
    view = await runner.cancel(_checked(handle), request.state.api_key)
    return JSONResponse(json.loads(_job_body(request, view)))

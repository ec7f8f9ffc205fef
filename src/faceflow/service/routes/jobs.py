"""Asynchronous jobs: submit (202 + handle), poll, fetch the result, cancel."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.responses import JSONResponse, Response

from faceflow.domain import Operation
from faceflow.errors import InvalidParameter, NotReady, Unavailable
from faceflow.imaging.formats import sniff_format
from faceflow.jobs.handles import is_handle, unknown_handle
from faceflow.jobs.records import JobRecord, JobStatus
from faceflow.jobs.runner import JobRunner
from faceflow.operations.registry import job_options, operation_specs, submission
from faceflow.service.answers import Answer
from faceflow.service.guard import guard
from faceflow.service.protocol import STOPPING_STATE, Stopping
from faceflow.service.routes.docs import root_path_of
from faceflow.service.schemas import (
    ErrorBody,
    FaceReportOut,
    image_request_body,
    operation_disabled_response,
)
from faceflow.service.state import Services, services_of
from faceflow.service.upload import read_image

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(guard)])


class JobErrorOut(BaseModel):
    """The error the sync endpoint would answer, details included (e.g. ``parameter``, ``min``
    and ``max`` for ``out_of_range``)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="the same stable code the sync endpoint would answer")
    message: str


class JobOut(BaseModel):
    handle: str = Field(description="random, unguessable; visible only to the submitting API key")
    operation: Operation
    status: JobStatus
    created_at: str = Field(description="ISO 8601, UTC: when this handle was submitted")
    enqueued_at: str | None = Field(
        None,
        description="when its work was queued: for a job that joined identical work already"
        " queued, that work's time, which may precede created_at",
    )
    started_at: str | None = Field(None, description="when its work started (the same)")
    ended_at: str | None = Field(None, description="when it reached a terminal state")
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
    404: "no such job: unknown, expired, created by another API key, or lost with an "
    "embedded-runner server that stopped since (jobs kept in memory)",
    409: "the job is not in a state that allows this (e.g. cancel after it started)",
    410: "the job's stored image expired before it ran (code `expired`); submit it again",
    413: "upload too large",
    415: "not a JPEG, PNG, WebP or GIF (or a form's fields: send multipart/form-data)",
    422: "the job failed on its input (e.g. undecodable image, no face)",
    # 400 and 415 from /result as well: a failed job answers the sync endpoint's error.
    429: "rate limit exceeded (see Retry-After)",
    503: "job queue full or unavailable, the service starting, or (embedded runner) stopping "
    "(see Retry-After)",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _ERRORS[s]} for s in statuses}


Handle = Annotated[str, Path(description="the handle POST /v1/jobs returned")]

# Values the models take as plain strings but parse further.
_PATTERNS = {
    "attributes": r"^(none|[ ,]*((age|gender)[ ,]*)*)$",
    "layout": r"^[a-z0-9-]+:[0-9]{1,3}(,[a-z0-9-]+:[0-9]{1,3}){0,11}$",
}


def _query_schema(model: type[Any]) -> dict[str, Any]:
    """``model``'s JSON schema as query options: definitions inlined (no ``$ref`` left to
    dangle), "or null" dropped (an absent option is the null), descriptions and titles off."""
    schema = TypeAdapter(model).json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def clean(node: Any) -> Any:
        if isinstance(node, list):
            return [clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return clean(definitions[node["$ref"].rsplit("/", 1)[-1]])
        options = node.get("anyOf")
        if options and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            merged = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            node = {**merged, **rest[0]} if len(rest) == 1 else {**merged, "anyOf": rest}
        return {
            k: clean(v) for k, v in node.items() if k not in ("title", "description", "default")
        }

    cleaned: dict[str, Any] = clean(schema)
    for name, pattern in _PATTERNS.items():
        if name in cleaned["properties"]:
            cleaned["properties"][name] = {"type": "string", "pattern": pattern}
    return cleaned


def job_options_parameter() -> dict[str, Any]:
    """The query of ``POST /v1/jobs`` as one exploded object: ``operation`` plus the options of
    that operation, one schema per operation (``oneOf``, told apart by ``operation``)."""
    variants = []
    for operation, spec in operation_specs().items():
        schema = _query_schema(spec.options)
        schema["properties"] = {"operation": {"const": operation.value}, **schema["properties"]}
        schema["required"] = ["operation"]
        variants.append(schema)
    return {
        "name": "options",
        "in": "query",
        "required": True,
        "style": "form",
        "explode": True,
        "description": "`operation`, then the query options of the matching sync endpoint",
        "schema": {"oneOf": variants},
    }


def _runner(services: Services) -> JobRunner:
    if services.jobs is None:
        raise NotReady("the job runner is starting", retry_after_s=1)
    return services.jobs


def _refuse_if_stopping(request: Request, services: Services) -> None:
    """An embedded job is refused once the server has begun to stop (an upload that was still
    arriving then): it would be lost with the process the next moment, after its 202. 503 lets
    the client send it again, to another node or once the server is back. A queue Redis keeps
    jobs: taken as ever."""
    stopping = request.scope.get("state", {}).get(STOPPING_STATE)
    if (
        services.settings.jobs.redis_url is None
        and isinstance(stopping, Stopping)
        and stopping.is_set
    ):
        raise Unavailable(
            "the server is stopping and keeps its jobs in memory: submit the job again",
            retry_after_s=1,
        )


def _checked(handle: str) -> str:
    if not is_handle(handle):
        raise unknown_handle()
    return handle


def job_url(request: Request, name: str, handle: str) -> str:
    """The URL of a job resource: absolute on the configured ``server.public_url`` (the prefix a
    proxy serves faceflow under is part of it), else a path from the host's root, under the
    root path (``server.root_path``: ``/faces/v1/jobs/...``; a client behind the proxy that
    followed ``/v1/jobs/...`` reached outside faceflow). Never built from the request's Host
    header, which the client wrote."""
    path = str(request.app.url_path_for(name, handle=handle))
    base = services_of(request).settings.server.public_url or root_path_of(request)
    return f"{base}{path}"


def _job_body(request: Request, view: JobRecord, result: bytes | None = None) -> bytes:
    body = view.to_json()
    body["status_url"] = job_url(request, "job_status", view.handle)
    body["result_url"] = job_url(request, "job_result", view.handle)
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
    responses={**_errors(400, 401, 403, 413, 415, 429, 503), **operation_disabled_response()},
    openapi_extra={**image_request_body(), "parameters": [job_options_parameter()]},
)
async def submit_job(request: Request) -> Response:
    """Options are the query options of the matching sync endpoint (`/v1/analyze`, ...;
    id-photo: those of `/v1/id-photo` except `sheet` and `source`; id-photo-sheet: those of
    `/v1/id-photo/sheet`); every option in the query string is checked against that operation's
    options. The result, and its cache entry, are the sync endpoint's."""
    services = services_of(request)
    runner = _runner(services)
    query = request.query_params
    if "operation" not in query:
        raise InvalidParameter(
            "operation is required: " + ", ".join(o.value for o in Operation),
            {"parameter": "operation"},
        )
    # The options are checked before the upload is read, as the sync routes check theirs: a job
    # with a bad option is refused for it, not for an empty body, and without reading 10 MB.
    options = {k: v for k, v in query.items() if k != "operation"}
    chosen = job_options(query["operation"], options, services.settings)
    # Taken once: a one-image form's ``Upload.data`` copies the image out of the body per call.
    upload = await read_image(request, services.settings.limits.max_upload_bytes)
    data = upload.data
    # Bytes no decoder takes are refused now, with the sync routes' 415 (faces.answer): queued,
    # they held a place in the queue and the client's share of it until a worker failed them.
    sniff_format(data)
    job = submission(chosen, data, await upload.hashed(), services.settings)
    _refuse_if_stopping(request, services)
    view = await runner.submit(job, request.state.api_key)
    body = _job_body(request, view)
    return Response(
        body,
        status_code=202,
        media_type="application/json",
        headers={"Location": job_url(request, "job_status", view.handle)},
    )


_INLINED = frozenset({Operation.DETECT.value, Operation.ANALYZE.value})
"""The operations whose finished job's status holds its result."""


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
    # Only a face report: an ID photo's JSON answer holds its image (megabytes of base64 sent
    # again with every poll), and the schema says a face report.
    if view.status is JobStatus.FINISHED and view.operation in _INLINED:
        view, entry = await runner.result(handle, request.state.api_key)
        inline = entry.body
    body = _job_body(request, view, inline)
    return Answer(body, budget=services.answer_budget, media_type="application/json")


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
        **_errors(400, 401, 403, 404, 410, 415, 422, 429, 503),
        409: {
            "model": ErrorBody,
            "description": "`conflict`: the job is queued or running (poll its status); "
            "`job_failed`: it failed for good on something other than its input (the failure's "
            "code, e.g. `worker_crashed`, is in `failure`). Final: no Retry-After",
        },
    },
)
async def job_result(request: Request, handle: Handle) -> Response:
    """409 `conflict` while the job is queued or running. A job that failed for good answers a
    final error without Retry-After: a failure on its input as the sync endpoint answers it
    (400/415/422, or 410 `expired`), any other failure 409 `job_failed` with the failure's
    code in `failure`."""
    services = services_of(request)
    runner = _runner(services)
    view, entry = await runner.result(_checked(handle), request.state.api_key)
    headers = {"X-Job-Status": view.status.value}
    count = entry.meta.get("face_count")
    if isinstance(count, int):
        headers["X-Face-Count"] = str(count)
    # An ID photo's verdict, as the sync route gives it: a photo's image answer carries its
    # report in this header alone (README: "jobs carry the same report").
    compliance = entry.meta.get("compliance")
    if isinstance(compliance, str):
        headers["X-Compliance"] = compliance
    return Answer(
        entry.body, budget=services.answer_budget, media_type=entry.media_type, headers=headers
    )


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

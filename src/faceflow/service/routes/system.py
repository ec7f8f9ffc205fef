"""Health, readiness, service facts and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from faceflow import __version__
from faceflow.models.catalog import required_models
from faceflow.service.guard import guard
from faceflow.service.schemas import InfoOut, ReadyOut, error_responses, image_request_body
from faceflow.service.state import Services, services_of
from faceflow.service.upload import read_upload

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="The process is up (liveness)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Every model loaded and warmed up in every inference process (readiness)",
    response_model=ReadyOut,
    responses=error_responses(503),
)
async def readyz(request: Request) -> Response:
    services = services_of(request)
    stats = services.pool.stats()
    # The example thumbnails are the pool's first tasks (ExampleThumbnails): ready after them.
    ready = services.pool.ready and services.thumbnails.settled
    body = {
        "ready": ready,
        "workers_ready": stats.ready_workers,
        "workers": stats.processes,
    }
    if not ready:
        message = services.start_up_error or "models are still loading"
        return JSONResponse(
            {**body, "error": {"code": "not_ready", "message": message}},
            status_code=503,
            # X-Error-Code as every error answer has it: faceflow_errors_total and the access
            # log read the code there (a not-ready node's 503s were counted under no code).
            headers={"Retry-After": "1", "X-Error-Code": "not_ready"},
        )
    return JSONResponse(body)


@router.get(
    "/v1/info",
    summary="Version, models, limits, cache and pool settings",
    response_model=InfoOut,
    responses=error_responses(401, 403, 429, 503),
    dependencies=[Depends(guard)],
)
async def info(request: Request) -> InfoOut:
    services = services_of(request)
    settings = services.settings
    return InfoOut(
        version=__version__,
        models=[
            {
                "name": spec.name,
                "role": spec.role.value,
                "version": spec.version,
                "sha256": spec.sha256,
                "licence": spec.licence,
                "size_bytes": spec.size_bytes,
                "source": spec.carrier.requirement,
            }
            for spec in required_models()
        ],
        limits=settings.limits.model_dump(),
        detection=settings.detection.model_dump(),
        cache={
            "memory_bytes": settings.cache.memory_bytes,
            "memory_items": services.cache.memory_stats().items,
            "redis": services.cache.redis_enabled,
            "redis_breaker_open": services.cache.breaker_open,
            "ttl_s": settings.cache.ttl_s,
        },
        pool={
            "processes": settings.runtime.processes,
            "max_waiting": settings.runtime.waiting_limit,
            "deadline_s": settings.runtime.deadline_s,
            "ready": services.pool.ready,
        },
        operations=[*settings.runtime.operations],
        jobs={"backend": "redis" if settings.jobs.redis_url else "embedded"},
        auth_required=services.api_keys.enabled,
        rate_limit=settings.server.rate_limit,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics of the API (all its HTTP workers)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 403, 503),
    },
)
async def metrics(request: Request) -> Response:
    body = await services_of(request).metrics.scrape()
    return Response(body, media_type="text/plain; version=0.0.4")


async def echo_size_body(
    services: Services, headers: Iterable[tuple[bytes, bytes]], chunks: AsyncIterator[bytes]
) -> bytes:
    """The answer of ``/v1/echo-size``, the trivial endpoint benchmarks compare against: the
    upload (ASGI ``headers`` and body ``chunks``) read as the image routes read it, then its
    size; no hashing, no cache, no inference. Its throughput is the ceiling for the cache-hit
    path. The hot path serves the route with it ahead of FastAPI and sends it as it sends a hit,
    so the ceiling costs per response what a hit costs; the route below documents it (and
    answers with it whenever FastAPI is reached)."""
    upload = await read_upload(headers, chunks, services.settings.limits.max_upload_bytes)
    return b'{"bytes":%d}' % upload.size


@router.post(
    "/v1/echo-size",
    summary="Read an upload like the image endpoints do and answer its size (HTTP ceiling)",
    response_model=dict[str, int],
    responses=error_responses(400, 401, 403, 413, 429, 503),
    openapi_extra=image_request_body(),
    dependencies=[Depends(guard)],
)
async def echo_size(request: Request) -> Response:
    services = services_of(request)
    body = await echo_size_body(services, request.scope["headers"], request.stream())
    return Response(body, media_type="application/json")
